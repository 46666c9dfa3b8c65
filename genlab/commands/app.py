"""What every genlab Hydra command shares: the set-up before Hydra runs (config resolvers, genlab's sweeper,
no library noise), the whole command line back in sys.argv while it runs (Lightning's DDP launcher
re-executes it), the facts of the Hydra job read once and handed down, user errors as one line (and no
run folder left by a refused command).

    @hydra_app("eval")
    def main(cfg: DictConfig, job: Job) -> None: ...

    main(["genlab", "eval", "ckpt_path=..."])      # what genlab/cli.py calls
"""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from omegaconf import DictConfig, OmegaConf

from genlab.errors import GenlabError, exit_with, report_user_errors

Result = TypeVar("Result")
FailureHook = Callable[[DictConfig, "Job", BaseException, "GenlabError | None"], None]


@dataclass(frozen=True)
class Job:
    """The Hydra job a command runs as, read from Hydra once, here: code below genlab/commands/ is given
    what it needs of it as arguments."""

    output_dir: Path
    # where Hydra keeps this job's config (.hydra, or .hydra/continued_<time> when a run goes on in its folder)
    config_dir: Path | None
    # this job's own command-line overrides (a sweep job's: its share of the sweep)
    overrides: list[str] = field(default_factory=list)
    in_sweep: bool = False

    @classmethod
    def current(cls) -> Job:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
        output_dir = Path(hydra.runtime.output_dir)
        return cls(output_dir, output_dir / hydra.output_subdir if hydra.output_subdir else None,
                   list(hydra.overrides.task), hydra.mode == RunMode.MULTIRUN)


def register_resolvers() -> None:
    """Resolvers that configs/hydra/default.yaml, shared by every command, relies on."""
    from genlab.data.folder.scan import class_count
    from genlab.run.folder import path_safe
    from genlab.run.resume import output_subdir, run_dir
    from genlab.run.sweep_rerun import output_subdir as rerun_output_subdir
    from genlab.trackers.naming import run_group, run_name

    # Sweep job folders are named after their overrides: no nested folders, no name too long for the file system
    OmegaConf.register_new_resolver("path_safe", path_safe, replace=True)
    # `genlab train ckpt_path=... resume_in=same` continues in the checkpoint's own run folder
    OmegaConf.register_new_resolver("resume_run_dir", run_dir, replace=True)
    OmegaConf.register_new_resolver("resume_output_subdir", output_subdir, replace=True)
    # `genlab train -m ... resume_sweep=true` keeps each job's own .hydra/ too
    OmegaConf.register_new_resolver("rerun_output_subdir", rerun_output_subdir, replace=True)
    # data=folder: data.num_classes is the number of class sub-folders of data.root (1 for a flat folder)
    OmegaConf.register_new_resolver("folder_classes", class_count, replace=True)
    # logger=mlflow, logger=wandb: a run named after its folder, grouped by the folder that holds it (its sweep)
    OmegaConf.register_new_resolver("run_group", run_group, replace=True)
    OmegaConf.register_new_resolver("run_name", run_name, replace=True)


# Lightning's rank_zero_info messages all go through this logger ("GPU available: ...", "`Trainer.fit`
# stopped: ..."); only its advertisements for the litlogger and litmodels packages are dropped.
LIGHTNING_INFO_LOGGER = "pytorch_lightning.utilities.rank_zero"


def is_lightning_advert(message: str) -> bool:
    """True for Lightning's "💡 Tip: ... try installing [litlogger]/[litmodels]" lines (logger_connector.py, callback_connector.py)."""
    return message.startswith("💡 Tip:") and ("[litlogger]" in message or "[litmodels]" in message)


def without_lightning_adverts(record: logging.LogRecord) -> bool:
    """Logging filter: keeps every record but Lightning's advertisements."""
    return not is_lightning_advert(str(record.msg))


def silence_library_noise() -> None:
    """Hide the two messages every run printed that say nothing about it; every other warning stays.

    Lightning has no switch for its tips (a level on its logger would hide its useful lines too),
    hence a filter on that logger. torch warns that `isinstance(treespec, LeafSpec)` is deprecated
    from Lightning's own code (pytorch_lightning/utilities/_pytree.py), which a user cannot change.
    """
    logger = logging.getLogger(LIGHTNING_INFO_LOGGER)
    if without_lightning_adverts not in logger.filters:
        logger.addFilter(without_lightning_adverts)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)


def register_sweeper() -> None:
    """genlab's sweepers (the grid's, and Optuna's for hparams_search=...), registered with Hydra by hand.

    Hydra finds plugins by listing the folders of the `hydra_plugins` namespace, which works for an
    installed wheel but not for an editable install (`pip install -e .`, what `make` does): setuptools'
    editable finder imports the package yet cannot list it.
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.genlab_optuna_sweeper.genlab_optuna_sweeper import GenlabOptunaSweeper

    from hydra_plugins.genlab_grid_sweeper.genlab_grid_sweeper import GenlabGridSweeper

    Plugins.instance().register(GenlabOptunaSweeper)
    Plugins.instance().register(GenlabGridSweeper)


def set_up() -> None:
    """Everything a command needs in place before Hydra composes its config, done when it starts, not on import."""
    register_resolvers()
    register_sweeper()
    silence_library_noise()


@contextmanager
def full_command_line(argv: Sequence[str]) -> Iterator[None]:
    """Within this block sys.argv is the whole `genlab <command> ...` line `argv` again."""
    hydra_argv = sys.argv
    sys.argv = list(argv)
    try:
        yield
    finally:
        sys.argv = hydra_argv


def sampler_options(cfg: DictConfig) -> dict[str, Any]:
    """The command's `sampler` node as keyword arguments for the family's sample()."""
    node = cfg.get("sampler")
    return {} if node is None else dict(OmegaConf.to_container(node, resolve=True))


def discard_if_refused(job: Job, mistake: GenlabError | None) -> None:
    """A single run refused for the user's input leaves no run folder (genlab.run.folder says which may go).

    A bug keeps its folder and log for the traceback, and a sweep keeps every failed job's folder for
    `genlab report`. The folder is Hydra's own (hydra.runtime.output_dir), whatever paths.output_dir says.
    """
    from genlab.commands.hydra_callbacks import created_top
    from genlab.run.folder import discard_refused_run

    if mistake is None or job.in_sweep:
        return
    discard_refused_run(job.output_dir, created_top(job.output_dir))


def hydra_app(config_name: str, on_failure: FailureHook | None = None) -> Callable[[Callable[[DictConfig, Job], Result]], Callable[[Sequence[str]], Any]]:
    """Turn `work(cfg, job)` into the command's entry point `main(argv)`, composing configs/<config_name>.yaml
    from argv[2:] (argv: the whole `genlab <command> ...` line).

    `on_failure(cfg, job, error, user_error)` runs before an error is reported (train records it in summary.json).
    """

    def decorate(work: Callable[[DictConfig, Job], Result]) -> Callable[[Sequence[str]], Any]:
        def main(argv: Sequence[str]) -> Any:
            import hydra

            from genlab.commands.hydra_callbacks import announce_pending
            from genlab.run.lock import release_folders
            from genlab.schema import check_command

            set_up()

            @hydra.main(config_path="pkg://genlab.configs", config_name=config_name, version_base="1.3")
            @wraps(work)  # Hydra names the job (its log file: train.log) after the module of the function it unwraps
            def run(cfg: DictConfig) -> Result:
                silence_library_noise()  # again: a parallel launcher's worker process runs only this
                job = Job.current()

                def after_failure(error: BaseException, mistake: GenlabError | None) -> None:
                    if on_failure is not None:
                        on_failure(cfg, job, error, mistake)
                    discard_if_refused(job, mistake)
                    if mistake is None and not job.in_sweep:  # a bug: say what stays, and why
                        print(f"genlab: an unexpected error (a bug in genlab, please report it): its traceback follows;"
                              f" the folder {job.output_dir} keeps its log", file=sys.stderr, flush=True)

                with full_command_line(argv), report_user_errors(after_failure, sweep=job.in_sweep):
                    if job.in_sweep:  # a single run was checked before Hydra made its folder; a job has its own overrides
                        check_command(config_name, cfg)
                    return work(cfg, job)

            try:
                with full_command_line([argv[0], *argv[2:]]):  # Hydra parses sys.argv[1:] as its overrides
                    return run()
            except KeyboardInterrupt:  # a second Ctrl-C, or one outside training: what was written stays
                exit_with(GenlabError("interrupted: stopped at once; the checkpoints written before are intact"), 130)
            finally:
                announce_pending()  # a sweep's `genlab report` line, also when a job failed
                release_folders()

        return main

    return decorate
