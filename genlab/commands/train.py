"""`genlab train`: build data, model and trainer from the composed config; fit; return the metric."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig

from genlab.commands.app import hydra_app
from genlab.errors import GenlabError, is_integer, require
from genlab.run.folder import check_writable
from genlab.run.summary import write_summary
from genlab.search.plugin import register_sweeper

log = logging.getLogger("genlab")

# hparams_search=...: genlab's Optuna sweeper, which Hydra's plugin scan misses in an editable install
register_sweeper()


def train(cfg: DictConfig) -> float | None:
    """Fit the configured model; return `optimized_metric` as last logged (for sweepers)."""
    require(is_integer(cfg.seed), "seed", cfg.seed, "an integer")
    check_writable(Path(cfg.paths.output_dir), cfg.paths.get("min_free_mb", 0))
    checkpoint = None
    if cfg.get("ckpt_path"):
        from genlab.run.checkpoints import load_checkpoint

        checkpoint = load_checkpoint(cfg.ckpt_path)  # a missing, broken or unsafe checkpoint fails here, first

    import pytorch_lightning as pl

    from genlab.builder import build

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, model, trainer = build(cfg)
    if checkpoint is not None:
        from genlab.run.resume import check_checkpoint_fits, continues_in_place, keep_earlier_logs

        check_checkpoint_fits(checkpoint.get("state_dict", {}), model, cfg.ckpt_path, cfg)
        del checkpoint  # Lightning reads the file again, onto the training device
        if continues_in_place(cfg.get("resume_in"), cfg.ckpt_path):
            keep_earlier_logs(cfg.paths.output_dir, f"step_{model.generator_steps}_{int(time.time())}")
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
            output_dir, "completed", {k: v for k, v in trainer.callback_metrics.items() if k != "step"}, metric_name,
            global_step=trainer.global_step, epochs=trainer.current_epoch, **model.progress(),
        )
        from genlab.run.hparams import log_hparams, run_hparams
        from genlab.run.summary import task_overrides

        logged = [name for name in trainer.callback_metrics if name != "step" and not name.startswith("lr-")]
        log_hparams(trainer.loggers, run_hparams(cfg, task_overrides()), logged)
        log.info("run folder: %s", output_dir)
        log.info("samples:    %s/samples/last.png", output_dir)
        log.info("watch it:   tensorboard --logdir %s", cfg.paths.log_dir)
    return float(trainer.callback_metrics[metric_name]) if metric_name else None


def record_failure(cfg: DictConfig, error: BaseException, mistake: GenlabError | None) -> None:
    """summary.json of a run that did not complete: `interrupted` (resumable, genlab report says how) or `failed`."""
    interrupted = type(mistake).__name__ == "TrainingInterrupted"  # genlab.callbacks.interrupt, not imported for this
    from genlab.run.resume import continues_in_place

    summary = Path(cfg.paths.output_dir) / "summary.json"
    if not interrupted and summary.is_file() and continues_in_place(cfg.get("resume_in"), cfg.get("ckpt_path")):
        # a refused continuation leaves the run as it was: its summary, and no record of the attempt
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized() and HydraConfig.get().output_subdir:
            shutil.rmtree(Path(cfg.paths.output_dir) / HydraConfig.get().output_subdir, ignore_errors=True)
        return
    write_summary(cfg.paths.output_dir, "interrupted" if interrupted else "failed",
                  error=str(mistake or f"{type(error).__name__}: {error}"))


@hydra_app("train", on_failure=record_failure)
def main(cfg: DictConfig) -> float | None:
    from genlab.run.resume import with_run_config
    from genlab.run.sweep_rerun import earlier_result, resumed_in_place
    from genlab.search.outcomes import TrialPruned
    from genlab.search.trial import record_pruned

    earlier = earlier_result(cfg)  # resume_sweep=true: a job that completed before is not trained again ...
    if earlier is not None:
        return earlier.value
    try:  # ... and an unfinished one goes on from its checkpoint, in its own folder
        return train(resumed_in_place(cfg) or with_run_config(cfg))
    except TrialPruned as pruned:  # an Optuna trial its pruner stopped: summary.json says `pruned`
        return record_pruned(cfg, pruned)
