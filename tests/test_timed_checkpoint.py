"""genlab.callbacks.timed_checkpoint: a checkpoint per interval of training time, for GANs (manual optimization) too."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from genlab.builder import build
from genlab.callbacks import timed_checkpoint
from genlab.callbacks.timed_checkpoint import TimedCheckpoint
from genlab.errors import ConfigError


class FakeClock:
    """time.monotonic that advances `step` seconds per reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_a_checkpoint_per_interval_of_training_time_named_by_generator_updates(compose_train, tmp_path, monkeypatch, model):
    # 10 batches, the clock read once at the start and once per batch end, 20 s a reading: intervals of one minute
    # fall due after batches 3, 6 and 9 (60, 120, 180 s), one checkpoint each
    monkeypatch.setattr(timed_checkpoint, "monotonic", FakeClock(20.0))
    cfg = compose_train(f"model={model}", "trainer=cpu", "trainer.limit_train_batches=10", "trainer.limit_val_batches=0",
                        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "callbacks=none", "~logger",
                        "data.batch_size=8")
    datamodule, module, trainer = build(cfg)
    trainer.callbacks.append(TimedCheckpoint(tmp_path, minutes=1))
    trainer.fit(module, datamodule=datamodule)
    names = sorted(path.name for path in tmp_path.glob("timed_*.ckpt"))
    assert names == ["timed_3.ckpt", "timed_6.ckpt", "timed_9.ckpt"]  # dcgan and the VAE: one generator update a batch
    minutes = [torch.load(tmp_path / name, weights_only=True)["training_minutes"] for name in names]
    assert minutes == pytest.approx([1.0, 2.0, 3.0])


def test_each_checkpoint_records_the_minutes_it_was_written_at_when_intervals_pass_unseen(compose_train, tmp_path,
                                                                                         monkeypatch):
    # 50 s a reading, intervals of 30 s: after batch 1 (50 s) and batch 2 (100 s, intervals 2 and 3 passed in one
    # batch) one checkpoint each, which say 50 and 100 s, not 30 and 60
    monkeypatch.setattr(timed_checkpoint, "monotonic", FakeClock(50.0))
    cfg = compose_train("model=vae", "trainer=cpu", "trainer.limit_train_batches=2", "trainer.limit_val_batches=0",
                        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "callbacks=none", "~logger",
                        "data.batch_size=8")
    datamodule, module, trainer = build(cfg)
    trainer.callbacks.append(TimedCheckpoint(tmp_path, minutes=0.5))
    trainer.fit(module, datamodule=datamodule)
    written = {path.name: torch.load(path, weights_only=True)["training_minutes"] for path in tmp_path.glob("timed_*")}
    assert written == pytest.approx({"timed_1.ckpt": 50 / 60, "timed_2.ckpt": 100 / 60})


def test_the_interval_must_be_positive():
    with pytest.raises(ConfigError, match="callbacks.timed_checkpoint.minutes"):
        TimedCheckpoint("x", minutes=0)
