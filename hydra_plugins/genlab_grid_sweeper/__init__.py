"""genlab's grid sweeper plugin (Hydra accepts sweepers only from the hydra_plugins namespace)."""
