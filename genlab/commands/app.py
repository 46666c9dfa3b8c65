"""What every genlab Hydra command shares: the config resolvers, the whole command line back in
sys.argv while it runs (Lightning's DDP launcher re-executes it), user errors as one line (and no
run folder left by a refused command), and no library noise that says nothing about the run.

    @hydra_app("eval")
    def main(cfg: DictConfig) -> None: ...
"""

from __future__ import annotations

import logging
import warnings
from functools import wraps
from pathlib import Path
from typing import Any, Callable, TypeVar

import hydra
from omegaconf import DictConfig, OmegaConf

from genlab.cli import full_command_line
from genlab.errors import GenlabError, in_sweep, report_user_errors

Result = TypeVar("Result")
FailureHook = Callable[[DictConfig, BaseException, "GenlabError | None"], None]


def register_resolvers() -> None:
    """Resolvers that configs/hydra/default.yaml, shared by every command, relies on."""
    # Sweep job folders are named after their overrides; a group override like model/net=mlp
    # must not turn into nested folders.
    OmegaConf.register_new_resolver("path_safe", lambda text: str(text).replace("/", "."), replace=True)
    # `genlab train ckpt_path=... resume_in=same` continues in the checkpoint's own run folder
    from genlab.run.resume import output_subdir, run_dir

    OmegaConf.register_new_resolver("resume_run_dir", run_dir, replace=True)
    OmegaConf.register_new_resolver("resume_output_subdir", output_subdir, replace=True)
    # `genlab train -m ... resume_sweep=true` keeps each job's own .hydra/ too
    from genlab.run.sweep_rerun import output_subdir as rerun_output_subdir

    OmegaConf.register_new_resolver("rerun_output_subdir", rerun_output_subdir, replace=True)


register_resolvers()

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


silence_library_noise()


def sampler_options(cfg: DictConfig) -> dict[str, Any]:
    """The command's `sampler` node as keyword arguments for GenerativeModule.sample."""
    node = cfg.get("sampler")
    return {} if node is None else dict(OmegaConf.to_container(node, resolve=True))


def discard_if_refused(mistake: GenlabError | None) -> None:
    """A single run refused for the user's input leaves no run folder (genlab.run.folder says which may go).

    A bug keeps its folder and log for the traceback, and a sweep keeps every failed job's folder for
    `genlab report`. The folder is Hydra's own (hydra.runtime.output_dir), whatever paths.output_dir says.
    """
    from hydra.core.hydra_config import HydraConfig

    from genlab.run.folder import discard_refused_run

    if mistake is None or in_sweep() or not HydraConfig.initialized():
        return
    discard_refused_run(Path(HydraConfig.get().runtime.output_dir))


def hydra_app(config_name: str, on_failure: FailureHook | None = None) -> Callable[[Callable[[DictConfig], Result]], Callable[[], Any]]:
    """Turn `work(cfg)` into a Hydra entry point composing configs/<config_name>.yaml.

    `on_failure(cfg, error, user_error)` runs before an error is reported (train records it in summary.json).
    """

    def decorate(work: Callable[[DictConfig], Result]) -> Callable[[], Any]:
        @hydra.main(config_path="pkg://genlab.configs", config_name=config_name, version_base="1.3")
        @wraps(work)
        def main(cfg: DictConfig) -> Result:
            def after_failure(error: BaseException, mistake: GenlabError | None) -> None:
                if on_failure is not None:
                    on_failure(cfg, error, mistake)
                discard_if_refused(mistake)

            with full_command_line(), report_user_errors(after_failure):
                return work(cfg)

        return main

    return decorate
