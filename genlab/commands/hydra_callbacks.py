"""Hydra's hooks into every command's run (configs/hydra/default.yaml lists them): the command's config checked
against its schema (genlab/schema/) and its run folder checked and locked before Hydra creates or writes into it,
and after a multirun the one command that compares its runs.

They live with the commands because they see Hydra's own config; what they decide is genlab/run/folder.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError, GenlabError, exit_with
from genlab.run.folder import check_new_run_folder, check_writable, first_missing
from genlab.run.lock import is_secondary_rank, lock_folder
from genlab.run.shell import command_line
from genlab.run.summary import FILENAME
from genlab.schema import COMMANDS, check_command

# run folder -> the topmost folder this command is about to create for it (the run folder itself, or an
# ancestor such as outputs/), noted before Hydra creates them: only such a folder may be discarded
CREATED_BY_THIS_COMMAND: dict[Path, Path] = {}


def created_top(folder: Path) -> Path | None:
    """The topmost folder this command created for run folder `folder`, or None when it was there before."""
    return CREATED_BY_THIS_COMMAND.get(folder.resolve())


def check_single_training(config: DictConfig, folder: Path) -> None:
    """A single `genlab train`: a folder of its own unless it continues its checkpoint's run in place, something
    left to train when it resumes, a readable teacher where the model distils one, and no sweep flag without a
    sweep."""
    from genlab.run.resume import check_something_to_continue, continues_in_place
    from genlab.run.teacher import check_teacher

    if config.get("resume_sweep"):
        raise ConfigError("resume_sweep=true continues a sweep: add -m with the sweep's overrides and"
                          " hydra.sweep.dir=<its folder> (genlab report <folder> prints the whole command)")
    ckpt_path = config.get("ckpt_path")
    if not (ckpt_path and continues_in_place(config.get("resume_in"), ckpt_path)):
        check_new_run_folder(folder, "train")
    if ckpt_path:
        check_something_to_continue(config, OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    check_teacher(config)  # a distilling family's teacher: set, and a run genlab can read


class RunFolderCheck(Callback):
    """Checks every key of the command's config (genlab/schema/) and the run (or sweep) folder before Hydra
    itself creates it, and notes whether this command creates a run folder (a refused command removes only
    such a folder: genlab/run/folder.py)."""

    def _check(self, key: str, config: DictConfig, command: str | None) -> None:
        HydraConfig.instance().set_config(config)  # the folder's name may use ${hydra:...}
        try:
            if command in COMMANDS:
                check_command(command, config)
            check_writable(Path(OmegaConf.select(config, key)), config.paths.get("min_free_mb", 0))
        except GenlabError as error:
            exit_with(error)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        command = kwargs.get("config_name")
        self._check("hydra.run.dir", config, command)
        folder = Path(OmegaConf.select(config, "hydra.run.dir"))
        top = first_missing(folder)
        if is_secondary_rank():  # a DDP rank Lightning (or SLURM) started: it shares rank 0's checked, locked folder
            return
        try:
            if command == "train":
                check_single_training(config, folder)
            else:
                check_new_run_folder(folder, str(command))
            lock_folder(folder, "run")
        except GenlabError as error:
            exit_with(error)
        if top is not None:
            CREATED_BY_THIS_COMMAND[folder.resolve()] = top

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # the keys are each job's to check (a sweep's values are not in this config): the sweepers check them
        self._check("hydra.sweep.dir", config, None)


def shown_path(folder: Path) -> str:
    """The folder relative to the working directory when it lies below it (what the user typed), else whole."""
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


class ReportCommand(Callback):
    """Prints `compare the runs: genlab report <hydra.sweep.dir>` when a multirun ends.

    Hydra skips on_multirun_end when a job failed (its sweeper raises after running them all), yet
    that is when the report helps most (it lists the command that re-runs each failed job), so the
    line is also left pending from on_multirun_start, for the command to print when it ends
    (commands/app.py calls announce_pending however it ends), and printed once either way.
    """

    def __init__(self) -> None:
        self.command: str | None = None
        self.sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)  # the folder's name may use ${hydra:...}
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        self.command, self.sweep_dir = command_line(["genlab", "report", shown_path(sweep_dir)]), sweep_dir
        PENDING.append(self)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.announce()

    def announce(self) -> None:
        """Print the command once, and only when the sweep left runs to compare (a refused one leaves none)."""
        if self.command and self.sweep_dir is not None and any(self.sweep_dir.rglob(FILENAME)):
            print(f"compare the runs: {self.command}", flush=True)
            self.command = None


# the report lines of this command's multiruns, until the command ends
PENDING: list[ReportCommand] = []


def announce_pending() -> None:
    """Print the report line of every multirun this command started, once, however the command ended."""
    while PENDING:
        PENDING.pop().announce()
