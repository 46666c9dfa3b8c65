"""Hyper-parameter search on Optuna: the search space, its checks, the study's storage, the sweeper's
loop and its trials' bookkeeping, pruning inside a trial, and the study's part of `genlab report`.

The Hydra plugin in hydra_plugins/genlab_optuna_sweeper/ is a thin shell around `sweeper.py`, so
that Hydra's plugin scan at every start imports nothing heavy; docs/search.md has the whole story.
"""
