"""`train` end to end on each data set in its real format: losses, checkpoints, logs, resuming, seeding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genlab.commands.train import train
from tests.conftest import FAST, logged


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_a_few_steps_on_real_format_data_write_checkpoints_and_logs(compose_train, fake_data_root, dataset):
    cfg = compose_train(*FAST, f"data={dataset}", f"paths.data_dir={fake_data_root}", "logger=many",
                        "optimized_metric=train/d_loss")
    result = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert result is not None and math.isfinite(result)
    for name in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake"):
        values = [v for _, v in logged(run, name)]
        assert values and all(math.isfinite(v) for v in values), name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "samples" / "last.png").is_file()


@pytest.mark.slow
def test_resuming_continues_from_the_saved_global_step(compose_train, fake_data_root, tmp_path):
    first = compose_train(*FAST, "data=mnist", f"paths.data_dir={fake_data_root}", "logger=csv")
    train(first)
    saved = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved_state = torch.load(saved, weights_only=False)
    # debug=limit: 2 epochs of 4 batches, one critic and one generator optimizer step each
    assert saved_state["global_step"] == 16
    assert saved_state["progress"] == {"generator_steps": 8, "images_seen": 8 * 16, "critic_steps": 8, "batches": 8,
                                       "skipped_steps": 0}

    second = compose_train(*FAST, "data=mnist", f"paths.data_dir={fake_data_root}", "logger=csv",
                           f"ckpt_path={saved}", "trainer.max_epochs=3")
    second.paths.output_dir = str(tmp_path / "resumed")
    train(second)
    resumed = torch.load(Path(second.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 24 and resumed["epoch"] == saved_state["epoch"] + 1
    # the resumed run trained one epoch only, logging from batch 8 on
    assert min(step for step, _ in logged(Path(second.paths.output_dir), "train/d_loss")) >= 8
    assert resumed["optimizer_states"][0]["state"], "optimizer state was restored and carried on"
    assert resumed["progress"] == {"generator_steps": 12, "images_seen": 12 * 16, "critic_steps": 12, "batches": 12,
                                   "skipped_steps": 0}, "the common axis carried on too"
    assert [value for _, value in logged(Path(second.paths.output_dir), "train/generator_steps")][-1] == 12


@pytest.mark.slow
def test_the_same_seed_gives_the_same_losses(compose_train, fake_data_root, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = compose_train(*FAST, "data=mnist", f"paths.data_dir={fake_data_root}", "logger=csv", "seed=7")
        cfg.paths.output_dir = str(tmp_path / name)
        train(cfg)
        runs.append(logged(Path(cfg.paths.output_dir), "train/g_loss"))
    assert runs[0] == runs[1] and len(runs[0]) >= 2


def test_every_logged_value_sits_at_x_equals_generator_updates(compose_train, fake_data_root):
    """Scalars, sample images and learning rates share one axis that means the same for every family."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_train(*FAST, "model=wgan_gp", "model.n_critic=2", "data=mnist", f"paths.data_dir={fake_data_root}",
                        "logger=tensorboard", "callbacks.sample_quality=null", "callbacks.best_checkpoint=null")
    train(cfg)
    run = Path(cfg.paths.output_dir)
    (events,) = {p.parent for p in run.rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    # debug=limit: 2 epochs of 4 batches; a generator update every second batch: 4 in all
    generator_steps = {e.step: e.value for e in accumulator.Scalars("train/generator_steps")}
    assert generator_steps and all(step == value for step, value in generator_steps.items())
    assert max(e.step for e in accumulator.Scalars("val/d_loss")) == 4
    assert [e.step for e in accumulator.Images("samples")] == [2, 4]  # after each epoch
    assert {e.step for e in accumulator.Scalars("lr-Adam")} <= {0, 2, 4}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["generator_steps"] == 4 and "step" not in summary["metrics"]


def test_a_completed_run_fills_tensorboards_hparams_tab_with_its_settings_and_metrics(compose_train, fake_data_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    cfg = compose_train(*FAST, "data=mnist", f"paths.data_dir={fake_data_root}", "logger=tensorboard",
                        "optimizer.lr=3e-4", "callbacks.sample_quality=null", "callbacks.best_checkpoint=null")
    train(cfg)
    (events,) = {p.parent for p in Path(cfg.paths.output_dir).rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    session = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["optimizer.lr"].number_value == pytest.approx(3e-4)
    assert session.hparams["model._target_"].string_value == "genlab.families.gan.GAN"
    assert session.hparams["data.name"].string_value == "mnist"
    columns = {info.name.tag for info in experiment.metric_infos}
    assert {"val/d_loss", "train/g_loss", "train/generator_steps"} <= columns and "step" not in columns
    assert "val/d_loss" in accumulator.Tags()["scalars"]  # the column's values: the run's own scalar
