"""A run folder and what lives in it: the folder check, summary.json, checkpoints, loading a run back."""
