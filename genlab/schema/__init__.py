"""Every command's config, declared key by key and checked before the command does any work.

`check_command("train", cfg)` walks the composed config against the command's schema (genlab/schema/train.py,
genlab/schema/sample.py, genlab/schema/export.py: each key's type, range and choices; keys a node does not declare
only where the callable that builds it takes them), then the checks that read several keys or the machine
(genlab/schema/machine.py). Hydra's callback calls it before any folder is made (genlab/commands/hydra_callbacks.py),
and a sweep's job again with its own overrides.
"""

from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig

from genlab.schema.export import Export
from genlab.schema.machine import check_loading, check_train
from genlab.schema.sample import Eval, Sample
from genlab.schema.train import Train
from genlab.schema.walk import Schema, check

# command (its primary config's name) -> (the schema of its config, the checks across keys)
COMMANDS: dict[str, tuple[type[Schema], Callable[[DictConfig], None]]] = {
    "train": (Train, check_train),
    "eval": (Eval, check_loading),
    "sample": (Sample, check_loading),
    "export": (Export, check_loading),
}


def check_command(command: str, cfg: DictConfig) -> None:
    """Refuse, with one ConfigError naming the key, the first value of `cfg` that `command` cannot work with."""
    schema, across = COMMANDS[command]
    check(cfg, schema, where=command, ignore=("hydra",))
    across(cfg)
