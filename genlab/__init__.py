"""genlab: train and compare generative image models from the command line."""

__version__ = "0.1.0"
