"""A grid sweep (`genlab train -m ...`) that keeps genlab's promises, for Hydra's basic sweeper to run.

- Every job's config is composed and checked (genlab/schema/) before the first job starts: a bad value in
  one job refuses the whole sweep in one line, naming the job.
- A failed job is recorded (its summary.json, its log) and the others run; the sweep then ends with one
  line per failed job and a non-zero exit, not Hydra's traceback.
- Ctrl-C or SIGTERM stops the sweep as it stops a run: the running job writes its checkpoint, no further
  job starts, and the command that continues the sweep is printed (exit 130 or 143).
- A sweep folder is never reused by accident: a new sweep refuses a folder that holds anything;
  `resume_sweep=true` refuses a folder that holds no sweep, or one that ran other overrides; two commands
  cannot work in one sweep folder at once (genlab/run/lock.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from genlab.errors import ConfigError, GenlabError, TrainingInterrupted, exit_with, first_line, user_error
from genlab.run.folder import contents
from genlab.run.lock import lock_folder
from genlab.run.shell import command_line, hydra_override

SWEEP_RECORD = "multirun.yaml"  # Hydra's record of a sweep's config, in its folder


def describes_the_sweep(override: str) -> bool:
    """Overrides that say how the sweep runs (where, whether it continues, which launcher), not what it trains."""
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "resume_sweep" or key.startswith(("hydra.", "hydra/"))


def what_it_trains(overrides: Sequence[str]) -> list[str]:
    return sorted(o for o in overrides if not describes_the_sweep(o))


def check_sweep_folder(sweep_dir: Path, resume: bool, overrides: Sequence[str]) -> None:
    """A new sweep gets a folder of its own; `resume_sweep=true` names a sweep folder that ran these overrides."""
    held = contents(sweep_dir)
    if not resume:
        if held:
            raise ConfigError(f"hydra.sweep.dir={sweep_dir} already holds {', '.join(held[:3])}: a new sweep never writes"
                              " over another; continue that sweep with resume_sweep=true, or leave hydra.sweep.dir out")
        return
    record = sweep_dir / SWEEP_RECORD
    if not record.is_file():
        raise ConfigError(f"resume_sweep=true: hydra.sweep.dir={sweep_dir} holds no sweep (no {SWEEP_RECORD}): point"
                          " hydra.sweep.dir at the folder of the sweep to continue (genlab report prints its command)")
    try:
        recorded = OmegaConf.select(OmegaConf.load(record), "hydra.overrides.task")
        ran = OmegaConf.to_container(recorded, resolve=False) if recorded is not None else []
    except Exception as error:
        raise ConfigError(f"resume_sweep=true: {record} cannot be read ({first_line(error)})") from None
    before, now = what_it_trains(ran), what_it_trains(overrides)
    if before != now:
        missing = [o for o in before if o not in now] or ["nothing"]
        added = [o for o in now if o not in before] or ["nothing"]
        raise ConfigError(f"resume_sweep=true: the sweep in {sweep_dir} ran {' '.join(before)}; this command drops"
                          f" {' '.join(missing)} and adds {' '.join(added)}: give the sweep's own overrides")


def continue_command(overrides: Sequence[str], sweep_dir: Path) -> str:
    """The command line that continues this sweep where it stopped (quoted for the shell)."""
    kept = [o for o in overrides if not o.startswith(("resume_sweep=", "hydra.sweep.dir="))]
    return command_line(["genlab", "train", "-m", *kept, "resume_sweep=true", hydra_override("hydra.sweep.dir", sweep_dir)])


def batch_size(sweeper: Any) -> int | None:
    """Jobs launched together: as many as the launcher runs at once, so a stopped sweep starts no new one."""
    if sweeper.max_batch_size:
        return sweeper.max_batch_size
    n_jobs = OmegaConf.select(sweeper.config, "hydra.launcher.n_jobs", default=None)
    return n_jobs if isinstance(n_jobs, int) and n_jobs > 0 else 1


def check_jobs(sweeper: Any, jobs: Sequence[Sequence[str]]) -> None:
    """Compose each job's config and check it, before any job starts."""
    from genlab.schema import COMMANDS, check_command
    from genlab.schema.machine import check_one_process_per_job

    command = OmegaConf.select(sweeper.config, "hydra.job.config_name")
    shared = set.intersection(*(set(job) for job in jobs)) if len(jobs) > 1 else set()
    for number, overrides in enumerate(jobs):
        named = f"job {number} ({' '.join(o for o in overrides if o not in shared)})"  # by what sets it apart
        try:
            config = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config, list(overrides))
            if command in COMMANDS:
                check_command(command, config)
            check_one_process_per_job(config)
        except GenlabError as error:
            exit_with(ConfigError(f"{named}: {error}"))
        except Exception as error:  # Hydra's own: an option or key that does not exist
            exit_with(ConfigError(f"{named}: {first_line(error)}"))


def run_grid(sweeper: Any, arguments: list[str]) -> list[Sequence[Any]]:
    """BasicSweeper.sweep with the promises above."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.utils import JobStatus

    config = sweeper.config
    params = sweeper._parse_config() + list(arguments)
    parsed = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader).parse_overrides(params)
    sweeper.overrides = sweeper.split_arguments(parsed, batch_size(sweeper))
    jobs = [job for batch in sweeper.overrides for job in batch]
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    # as typed: an override may hold an interpolation only a job can resolve (hydra.sweep.subdir=job_${hydra.job.num})
    overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    # how it launches (hydra/launcher=parallel, its n_jobs) belongs in the command that continues it; where is given apart
    launch = [o for o in OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
              if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    try:
        check_jobs(sweeper, jobs)
        check_sweep_folder(sweep_dir, bool(OmegaConf.select(config, "resume_sweep", default=False)), overrides)
        lock_folder(sweep_dir, "sweep")
    except GenlabError as error:
        exit_with(error)
    OmegaConf.save(config, sweep_dir / SWEEP_RECORD)
    continuing = continue_command([*overrides, *launch], sweep_dir)

    returns, failed, number = [], [], 0
    try:
        while not sweeper.is_done():
            batch = sweeper.get_job_batch()
            results = sweeper.launcher.launch(batch, initial_job_idx=number)
            returns.append(results)
            for job, result in zip(batch, results):
                if result.status == JobStatus.FAILED:
                    error = result._return_value
                    mistake = user_error(error) if isinstance(error, BaseException) else None
                    if isinstance(mistake, TrainingInterrupted):
                        exit_with(GenlabError(f"{first_line(mistake).split(':')[0]}: the sweep stopped at job {number},"
                                              f" its checkpoint kept; continue the sweep with: {continuing}"), mistake.exit_code)
                    failed.append(f"job {number} ({' '.join(job)}) failed: {first_line(mistake or error)}")
                number += 1
    except KeyboardInterrupt:  # a second Ctrl-C, or the parallel launcher's workers stopped under it
        exit_with(GenlabError("interrupted: stopped at once; the checkpoints written before are intact; continue the"
                              f" sweep with: {continuing}"), 130)
    if failed:
        for line in failed:
            print(f"genlab: {line}", file=sys.stderr)
        exit_with(GenlabError(f"{len(failed)} of {len(jobs)} jobs failed (their folders keep their logs);"
                           f" `genlab report {sweep_dir}` lists the command that re-runs each"), 1)
    return returns
