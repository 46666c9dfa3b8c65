"""How trackers name a run and group it: by the run folder, so that each tracker reads as `outputs/` does.

Registered as the resolvers `run_group` and `run_name` (genlab/commands/app.py) for configs/logger/*.yaml.
"""

from __future__ import annotations

from pathlib import Path


def run_group(output_dir: str, log_dir: str) -> str:
    """The folder that holds the run folder, relative to `paths.log_dir`: `train/runs` for single runs,
    `train/multiruns/<date>` for a sweep's jobs, `train/searches/<study>` for a search's trials; the
    folder's own name when it lies elsewhere (`hydra.sweep.dir=/tmp/lr_sweep`: `lr_sweep`)."""
    parent = Path(output_dir).parent
    try:
        return parent.relative_to(log_dir).as_posix()
    except ValueError:
        return parent.name


def run_name(output_dir: str) -> str:
    """The run folder's name: its date for a single run, `<job>_<overrides>` in a sweep, `trial_<n>` in a search."""
    return Path(output_dir).name
