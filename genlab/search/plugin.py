"""Registers genlab's Optuna sweeper with Hydra by hand.

Hydra finds plugins by listing the folders of the `hydra_plugins` namespace, which works for an
installed wheel but not for an editable install (`pip install -e .`, what `make` does): setuptools'
editable finder imports the package yet cannot list it. Registering the class closes that gap.
"""

from __future__ import annotations


def register_sweeper() -> None:
    from hydra.core.plugins import Plugins

    from hydra_plugins.genlab_optuna_sweeper.genlab_optuna_sweeper import GenlabOptunaSweeper

    Plugins.instance().register(GenlabOptunaSweeper)
