"""A sweep job's way through `genlab train` when the sweep is run again, or stopped by a pruner.

`genlab train -m <the sweep's overrides> resume_sweep=true hydra.sweep.dir=<its folder>` launches
every job again; each one looks at its own folder first: a job that completed returns its recorded
metric without training, an interrupted or failed one goes on from its last checkpoint in its own
folder (`resume_in=same`), and one that never got a checkpoint trains from the start. Deciding
inside the job works with any launcher (basic, parallel processes, submitit on a cluster).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, open_dict

from genlab.errors import in_sweep
from genlab.run.summary import FILENAME, read_summary, write_summary
from genlab.search.outcomes import TrialPruned

log = logging.getLogger("genlab")


@dataclass
class Earlier:
    """What a completed job recorded: the metric a sweeper optimizes (None without optimized_metric)."""

    value: float | None


def rerunning(cfg: DictConfig) -> bool:
    """`resume_sweep=true` inside a job of a multirun (a single run ignores it)."""
    return bool(cfg.get("resume_sweep")) and in_sweep()


def earlier_result(cfg: DictConfig) -> Earlier | None:
    """A re-run sweep's job that completed before: its recorded result, and it is not trained again."""
    path = Path(cfg.paths.output_dir) / FILENAME
    if not rerunning(cfg) or not path.is_file():
        return None
    summary = read_summary(path)
    if summary.get("status") not in ("completed", "pruned"):
        return None
    metric = cfg.get("optimized_metric")
    value = summary.get("metrics", {}).get(metric) if metric else None
    log.info("resume_sweep: %s %s before; not run again", path.parent, summary["status"])
    return Earlier(None if value is None else float(value))


def resume_checkpoint(folder: Path) -> Path | None:
    """The checkpoint an unfinished run goes on from: the later of interrupted.ckpt (written on a signal)
    and last.ckpt (every epoch), so that a run resumed once and stopped again loses nothing."""
    found = [p for p in (folder / "checkpoints" / n for n in ("interrupted.ckpt", "last.ckpt")) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def resumed_in_place(cfg: DictConfig) -> DictConfig | None:
    """A re-run sweep's unfinished job: its own config, continued from its checkpoint in its own folder."""
    if not rerunning(cfg) or cfg.get("ckpt_path"):
        return None
    checkpoint = resume_checkpoint(Path(cfg.paths.output_dir))
    if checkpoint is None:
        return None
    log.info("resume_sweep: %s goes on from %s", cfg.paths.output_dir, checkpoint)
    resumed = cfg.copy()
    with open_dict(resumed):
        resumed.ckpt_path, resumed.resume_in = str(checkpoint), "same"
    return resumed


def mark_continued(folder: Path, successor: str) -> None:
    """Note in an interrupted run's summary.json which run went on from its checkpoint (genlab report
    then offers no resume command for it)."""
    path = folder / FILENAME
    if path.is_file():
        summary = read_summary(path)
        summary["continued_in"] = successor
        path.write_text(json.dumps(summary, indent=2))


def record_pruned(cfg: DictConfig, pruned: TrialPruned) -> float:
    """summary.json of a trial its pruner stopped: status `pruned`, why, and its metrics at that point."""
    write_summary(cfg.paths.output_dir, "pruned", pruned.metrics, cfg.get("optimized_metric"), error=str(pruned),
                  **pruned.progress)
    log.info("%s", pruned)
    return pruned.value if not math.isnan(pruned.value) else math.nan
