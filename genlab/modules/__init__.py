"""LightningModules: how each model family trains, nothing more."""
