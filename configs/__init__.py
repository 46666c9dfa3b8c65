"""genlab's Hydra configs, installed as the package `genlab.configs` (see pyproject.toml)."""
