"""`genlab train`: instantiate data, model, trainer from the composed config; fit; return the metric."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from genlab.cli import full_command_line
from genlab.errors import GenlabError, report_user_errors
from genlab.run_folder import check_writable
from genlab.run_summary import write_summary
from genlab.validation import validate

log = logging.getLogger("genlab")

# Sweep job folders are named after their overrides; a group override like model/net=mlp
# must not turn into nested folders.
OmegaConf.register_new_resolver("path_safe", lambda text: str(text).replace("/", "."), replace=True)


def instantiate_list(configs: DictConfig | None) -> list[Any]:
    """Build every `_target_` entry of a dict-of-configs group (callbacks, logger)."""
    from hydra.utils import instantiate

    if not configs:
        return []
    return [instantiate(node) for node in configs.values() if isinstance(node, DictConfig) and "_target_" in node]


def build_model(cfg: DictConfig) -> Any:
    """The LightningModule a config describes, with its optimizers, divergence rule and speed options."""
    from hydra.utils import instantiate

    optimizer = instantiate(cfg.optimizer, _convert_="all")
    return instantiate(
        cfg.model, optimizer=optimizer, on_nonfinite=cfg.get("on_nonfinite", "stop"), speed=cfg.get("speed"),
        _convert_="partial",
    )


def build(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """The datamodule, the LightningModule and the Trainer a config describes."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    model = build_model(cfg)
    loggers = instantiate_list(cfg.get("logger"))
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not loggers:  # a learning-rate monitor only reports to loggers, and Lightning refuses it without one
        from pytorch_lightning.callbacks import LearningRateMonitor

        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def train(cfg: DictConfig) -> float | None:
    """Fit the configured model; return `optimized_metric` as last logged (for sweepers)."""
    validate(cfg)
    check_writable(Path(cfg.paths.output_dir), cfg.paths.get("min_free_mb", 0))
    if cfg.get("ckpt_path"):
        from genlab.checkpoints import load_checkpoint

        load_checkpoint(cfg.ckpt_path)  # a missing, broken or unsafe checkpoint fails here, first

    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, model, trainer = build(cfg)
    datamodule.setup("fit")  # missing or broken data fails here, before Lightning starts up
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metric_name = cfg.get("optimized_metric")
    if metric_name and metric_name not in trainer.callback_metrics:
        raise GenlabError(
            f"optimized_metric={metric_name!r} was never logged; logged metrics: {', '.join(trainer.callback_metrics)}"
        )
    if trainer.is_global_zero:
        output_dir = cfg.paths.output_dir
        write_summary(
            output_dir, "completed", trainer.callback_metrics, metric_name,
            global_step=trainer.global_step, epochs=trainer.current_epoch,
        )
        log.info("run folder: %s", output_dir)
        log.info("samples:    %s/samples/last.png", output_dir)
        log.info("watch it:   tensorboard --logdir %s", cfg.paths.log_dir)
    return float(trainer.callback_metrics[metric_name]) if metric_name else None


@hydra.main(config_path="pkg://genlab.configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    def record_failure(error: BaseException, mistake: GenlabError | None) -> None:
        write_summary(cfg.paths.output_dir, "failed", error=str(mistake or f"{type(error).__name__}: {error}"))

    with full_command_line(), report_user_errors(record_failure):
        return train(cfg)
