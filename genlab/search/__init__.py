"""Hyper-parameter search on Optuna: the search space, the study's storage, the sweeper's loop,
pruning inside a trial, re-running a sweep, and the study's part of `genlab report`.

The Hydra plugin in hydra_plugins/genlab_optuna_sweeper/ is a thin shell around `sweeper.py`, so
that Hydra's plugin scan at every start imports nothing heavy; docs/search.md has the whole story.
"""
