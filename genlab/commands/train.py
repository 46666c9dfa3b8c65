"""`genlab train`: build data, model and trainer from the composed config; fit; return the metric."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from genlab.commands.app import Job, hydra_app
from genlab.errors import ConfigError, GenlabError, TrainingInterrupted, is_integer, require
from genlab.run.folder import check_writable
from genlab.run.shell import command_line
from genlab.run.summary import write_summary

log = logging.getLogger("genlab")


def train(cfg: DictConfig, overrides: Sequence[str] = ()) -> float | None:
    """Fit the configured model; return `optimized_metric` as last logged (for sweepers). `overrides`: the
    command line that made the run, recorded in its summary.json and TensorBoard's HPARAMS tab."""
    require(is_integer(cfg.seed), "seed", cfg.seed, "an integer")
    check_writable(Path(cfg.paths.output_dir), cfg.paths.get("min_free_mb", 0))
    checkpoint = None
    if cfg.get("ckpt_path"):
        from genlab.run.checkpoints import load_checkpoint

        checkpoint = load_checkpoint(cfg.ckpt_path)  # a missing, broken or unsafe checkpoint fails here, first

    import pytorch_lightning as pl

    from genlab.builder import build

    from genlab.run.teacher import load_teacher, teacher_options

    options = teacher_options(cfg)
    teacher = None if options is None else load_teacher(options, cfg.paths)
    # alike on every DDP rank, so that the weights built next are too; once training starts each rank seeds its own
    # draws from (seed, rank) (TrainingModule.setup)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, model, trainer = build(cfg, teacher)
    if checkpoint is not None:
        from genlab.run.resume import check_checkpoint_fits, continues_in_place, keep_earlier_logs

        check_checkpoint_fits(checkpoint.get("state_dict", {}), model, cfg.ckpt_path, cfg)
        resumed_at = int((checkpoint.get("progress") or {}).get("generator_steps", 0))
        del checkpoint  # Lightning reads the file again, onto the training device
        if continues_in_place(cfg.get("resume_in"), cfg.ckpt_path):
            keep_earlier_logs(cfg.paths.output_dir, f"step_{model.generator_steps}_{int(time.time())}")
        elif model.posthoc_ema is not None:  # the new folder's snapshots begin with the earlier folder's
            from genlab.run.load import run_folder_of
            from genlab.run.posthoc_snapshots import carry_snapshots

            carried = carry_snapshots(run_folder_of(cfg.ckpt_path), cfg.paths.output_dir, resumed_at)
            log.info("post-hoc EMA: %d snapshots up to generator step %d carried over from %s", carried, resumed_at,
                     run_folder_of(cfg.ckpt_path))
    datamodule.setup("fit")  # missing or broken data fails here, before Lightning starts up
    datamodule.check_training_batches(trainer.world_size)
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    seconds = time.perf_counter() - started
    metric_name = cfg.get("optimized_metric")
    if metric_name and metric_name not in trainer.callback_metrics:
        raise GenlabError(
            f"optimized_metric={metric_name!r} was never logged; logged metrics: {', '.join(trainer.callback_metrics)}"
        )
    if trainer.is_global_zero:
        output_dir = cfg.paths.output_dir
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k != "step"}
        if cfg.get("evaluate") is not None:
            metrics.update(judged_at_the_end(cfg, model, trainer))
        # who judged the val/* sample-quality metrics (the domain classifier's key and weights), if any callback did
        judges = [callback.judge for callback in trainer.callbacks if getattr(callback, "judge", None)]
        write_summary(
            output_dir, "completed", metrics, metric_name, overrides=overrides, global_step=trainer.global_step,
            epochs=trainer.current_epoch, seconds=round(seconds, 1), **model.progress.axis(),
            **({"judge": judges[0]} if judges else {}),
            # a folder of the user's images: its classes in label order, the files left out, the decoded copy
            **({"data": datamodule.facts()} if hasattr(datamodule, "facts") else {}),
        )
        from genlab.run.hparams import run_hparams
        from genlab.trackers import Final
        from genlab.trackers.publish import log_final

        # the settings and summary.json's metrics to every tracker: TensorBoard's HPARAMS, MLflow's params, W&B's config
        curves = tuple(name for name in trainer.callback_metrics if name != "step" and not name.startswith("lr-"))
        log_final(trainer.loggers, Final(run_hparams(cfg, overrides), {name: float(value) for name, value in metrics.items()},
                                         curves, model.generator_steps))
        log.info("run folder: %s", output_dir)
        if (Path(output_dir) / "samples" / "last.png").is_file():
            log.info("samples:    %s/samples/last.png", output_dir)
        log.info("watch it:   %s", command_line(["tensorboard", "--logdir", str(cfg.paths.log_dir)]))
    return float(trainer.callback_metrics[metric_name]) if metric_name else None


def judged_at_the_end(cfg: DictConfig, model: Any, trainer: Any) -> dict[str, float]:
    """`evaluate`: the trained weights judged as `genlab eval` judges a checkpoint (configs/eval.yaml's protocol,
    the run's own domain classifier settings, then `evaluate`'s keys), as test/<metric>; with
    `evaluate.raw_weights=true` a run that keeps an EMA is judged with its raw weights too (test_raw/<metric>).
    The EMA's results also go into metrics.json beside checkpoints/last.ckpt, whose weights they are."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import ConfigKeyError

    from genlab.commands.evaluate import judge
    from genlab.run.metrics_file import write_results

    settings = OmegaConf.to_container(cfg.evaluate, resolve=True)
    require(isinstance(settings, dict), "evaluate", settings, "null or a mapping of genlab eval's keys, e.g. {n_samples: 1000}")
    raw_too = settings.pop("raw_weights", False)
    require(isinstance(raw_too, bool), "evaluate.raw_weights", raw_too, "true or false")
    if GlobalHydra.instance().is_initialized():  # inside genlab train
        protocol = compose("eval", overrides=["ckpt_path=end"])
    else:
        with initialize_config_module("genlab.configs", version_base="1.3"):
            protocol = compose("eval", overrides=["ckpt_path=end"])
    with open_dict(protocol):
        protocol.paths, protocol.classifier = cfg.paths, cfg.classifier
    try:
        protocol = OmegaConf.merge(protocol, {"progress": False, **settings})
    except ConfigKeyError as error:
        raise ConfigError(f"evaluate.{error.key} is not a key of genlab eval (configs/eval.yaml): drop it") from None
    last = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt" if trainer.checkpoint_callback is not None else None
    checkpoint = str(last) if last is not None and last.is_file() else "the weights at the end of training"
    device, was = str(model.device), model.samples_from_ema
    results = judge(model, cfg, protocol, device, checkpoint)
    if last is not None and last.is_file():
        write_results(results, last)
    judged = {f"test/{name}": value for name, value in results["metrics"].items()}
    # an image-to-image run's task baseline under the same protocol, beside it in summary.json and genlab report
    judged.update({f"test_baseline/{name}": value for name, value in results.get("baseline", {}).items()})
    if raw_too and model.ema is not None:
        model.samples_from_ema = False
        try:
            raw = judge(model, cfg, protocol, device, checkpoint)
        finally:
            model.samples_from_ema = was
        judged.update({f"test_raw/{name}": value for name, value in raw["metrics"].items()})
    log.info("at the end of training: %s", ", ".join(f"{name} {value:.4g}" for name, value in judged.items()
                                                     if name.endswith(("/fid", "/coverage_entropy", "/label_accuracy"))))
    return judged


def record_failure(cfg: DictConfig, job: Job, error: BaseException, mistake: GenlabError | None) -> None:
    """summary.json of a run that did not complete: `interrupted` (resumable, genlab report says how) or `failed`."""
    interrupted = isinstance(mistake, TrainingInterrupted)
    from genlab.run.resume import continues_in_place

    summary = Path(cfg.paths.output_dir) / "summary.json"
    if not interrupted and summary.is_file() and continues_in_place(cfg.get("resume_in"), cfg.get("ckpt_path")):
        # a refused continuation leaves the run as it was: its summary, and no record of the attempt
        if job.config_dir is not None:
            shutil.rmtree(job.config_dir, ignore_errors=True)
        return
    write_summary(cfg.paths.output_dir, "interrupted" if interrupted else "failed",
                  error=str(mistake or f"{type(error).__name__}: {error}"), overrides=job.overrides)


@hydra_app("train", on_failure=record_failure)
def main(cfg: DictConfig, job: Job) -> float | None:
    from genlab.run.resume import with_run_config
    from genlab.run.sweep_rerun import earlier_result, resumed_in_place
    from genlab.search.outcomes import TrialPruned
    from genlab.search.trial import record_pruned

    earlier = earlier_result(cfg, job.in_sweep)  # resume_sweep=true: a job that completed before is not trained again ...
    if earlier is not None:
        return earlier.value
    try:  # ... and an unfinished one goes on from its checkpoint, in its own folder
        return train(resumed_in_place(cfg, job.in_sweep) or with_run_config(cfg, job.overrides, job.config_dir),
                     job.overrides)
    except TrialPruned as pruned:  # an Optuna trial its pruner stopped: summary.json says `pruned`
        return record_pruned(cfg, pruned, job.overrides)
