"""A grid sweep's job when the sweep is run again: `genlab train -m <the sweep's overrides>
resume_sweep=true hydra.sweep.dir=<its folder>` launches every job again, and each looks at its own folder
first: a job that completed returns its recorded metric without training, an interrupted or failed one
goes on from its last checkpoint in its own folder (`resume_in=same`), and one that never got a
checkpoint trains from the start. Deciding inside the job works with any launcher (basic, parallel
processes, submitit on a cluster). Hydra records the re-run in the job's .hydra/continued_<time>/,
beside the job's own .hydra/ (output_subdir).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, open_dict

from genlab.run.summary import FILENAME, read_summary

log = logging.getLogger("genlab")


@dataclass
class Earlier:
    """What a completed job recorded: the metric a sweeper optimizes (None without optimized_metric)."""

    value: float | None


def rerunning(cfg: DictConfig, in_sweep: bool) -> bool:
    """`resume_sweep=true` inside a job of a multirun (a single run, `in_sweep` false, ignores it)."""
    return bool(cfg.get("resume_sweep")) and in_sweep


def output_subdir(subdir: str, resume_sweep: bool | str | None, output_dir: str, stamp: str) -> str:
    """hydra.output_subdir of a re-run sweep's job that ran before: .hydra/continued_<stamp>, so that its
    own .hydra/ (the config and overrides it was trained with) is never overwritten; else `subdir`."""
    again = str(resume_sweep).lower() == "true"
    if again and subdir == ".hydra" and (Path(output_dir) / ".hydra").is_dir():
        return f".hydra/continued_{stamp}"
    return subdir


def earlier_result(cfg: DictConfig, in_sweep: bool) -> Earlier | None:
    """A re-run sweep's job that completed before: its recorded result, and it is not trained again."""
    path = Path(cfg.paths.output_dir) / FILENAME
    if not rerunning(cfg, in_sweep) or not path.is_file():
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


def resumed_in_place(cfg: DictConfig, in_sweep: bool) -> DictConfig | None:
    """A re-run sweep's unfinished job: its own config, continued from its checkpoint in its own folder."""
    if not rerunning(cfg, in_sweep) or cfg.get("ckpt_path"):
        return None
    checkpoint = resume_checkpoint(Path(cfg.paths.output_dir))
    if checkpoint is None:
        return None
    log.info("resume_sweep: %s goes on from %s", cfg.paths.output_dir, checkpoint)
    resumed = cfg.copy()
    with open_dict(resumed):
        resumed.ckpt_path, resumed.resume_in = str(checkpoint), "same"
    return resumed
