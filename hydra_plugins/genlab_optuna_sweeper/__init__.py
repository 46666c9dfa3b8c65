"""genlab's Optuna sweeper plugin (Hydra finds it by scanning hydra_plugins/)."""
