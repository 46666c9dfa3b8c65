"""What every genlab Hydra command shares: the config resolvers, the whole command line back in
sys.argv while it runs (Lightning's DDP launcher re-executes it), and user errors as one line.

    @hydra_app("eval")
    def main(cfg: DictConfig) -> None: ...
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable, TypeVar

import hydra
from omegaconf import DictConfig, OmegaConf

from genlab.cli import full_command_line
from genlab.errors import GenlabError, report_user_errors

Result = TypeVar("Result")
FailureHook = Callable[[DictConfig, BaseException, "GenlabError | None"], None]


def register_resolvers() -> None:
    """Resolvers that configs/hydra/default.yaml, shared by every command, relies on."""
    # Sweep job folders are named after their overrides; a group override like model/net=mlp
    # must not turn into nested folders.
    OmegaConf.register_new_resolver("path_safe", lambda text: str(text).replace("/", "."), replace=True)


register_resolvers()


def sampler_options(cfg: DictConfig) -> dict[str, Any]:
    """The command's `sampler` node as keyword arguments for GenerativeModule.sample."""
    node = cfg.get("sampler")
    return {} if node is None else dict(OmegaConf.to_container(node, resolve=True))


def hydra_app(config_name: str, on_failure: FailureHook | None = None) -> Callable[[Callable[[DictConfig], Result]], Callable[[], Any]]:
    """Turn `work(cfg)` into a Hydra entry point composing configs/<config_name>.yaml.

    `on_failure(cfg, error, user_error)` runs before an error is reported (train records it in summary.json).
    """

    def decorate(work: Callable[[DictConfig], Result]) -> Callable[[], Any]:
        @hydra.main(config_path="pkg://genlab.configs", config_name=config_name, version_base="1.3")
        @wraps(work)
        def main(cfg: DictConfig) -> Result:
            hook = None if on_failure is None else (lambda error, mistake: on_failure(cfg, error, mistake))
            with full_command_line(), report_user_errors(hook):
                return work(cfg)

        return main

    return decorate
