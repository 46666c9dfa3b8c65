"""Resuming: a run interrupted at any batch and resumed ends with the weights of the same run left alone."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab.builder import build, build_trainer
from genlab.callbacks.interrupt import GracefulInterrupt, TrainingInterrupted
from tests.conftest import BARE

# a small VAE: BARE's net overrides name the GAN nets
VAE = (*(o for o in BARE if "base_channels" not in o), "model=vae",
       "model.net.encoder.base_channels=4", "model.net.decoder.base_channels=4")
GAN = (*BARE, "model=dcgan")


class SignalAt(pl.Callback):
    """Delivers what a SIGTERM handler would, at the start of a chosen batch (counted over epochs)."""

    def __init__(self, graceful: GracefulInterrupt, batch: int) -> None:
        self.graceful, self.batch = graceful, batch

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.fit_loop.total_batch_idx == self.batch:
            self.graceful.received = signal.SIGTERM


def fitted(cfg, ckpt_path: str | None = None, callbacks=()) -> pl.LightningModule:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as genlab train does
    datamodule, module, _ = build(cfg)
    trainer = build_trainer(cfg, callbacks=list(callbacks))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("family", [GAN, VAE], ids=["dcgan", "vae"])
@pytest.mark.parametrize("interrupt_at", [5, 4])  # mid-epoch 1, and its very first batch
def test_a_run_interrupted_mid_epoch_and_resumed_ends_with_the_weights_of_the_run_left_alone(
    compose_train, fake_data_root, tmp_path, family, interrupt_at
):
    # 3 epochs of 4 batches, validation at each epoch's end
    cfg = compose_train(*family, "data=mnist", f"paths.data_dir={fake_data_root}", "trainer.max_epochs=3")
    alone = fitted(cfg)

    graceful = GracefulInterrupt(tmp_path / "checkpoints")
    with pytest.raises(TrainingInterrupted):
        fitted(cfg, callbacks=[SignalAt(graceful, interrupt_at), graceful])
    checkpoint = tmp_path / "checkpoints" / "interrupted.ckpt"
    with pytest.warns() as warned:
        resumed = fitted(cfg, ckpt_path=str(checkpoint))
    assert not any("not resumable" in str(w.message) for w in warned), "Lightning sees a resumable loader"
    assert resumed.generator_steps == alone.generator_steps and resumed.images_seen == alone.images_seen
    expected, got = alone.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_the_loader_goes_on_with_the_next_batch_of_the_same_epochs_permutation(compose_train, fake_data_root):
    cfg = compose_train(*GAN, "data=mnist", f"paths.data_dir={fake_data_root}")
    datamodule, _, _ = build(cfg)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(3)
    batches = iter(loader)
    whole_epoch = [labels for _, labels in loader]
    next(batches), next(batches)
    state = loader.state_dict()
    assert state == {"epoch": 3, "batches": 2}

    fresh = datamodule.train_dataloader()
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(3)
    rest = [labels for _, labels in fresh]
    assert len(rest) == len(whole_epoch) - 2
    assert all(torch.equal(a, b) for a, b in zip(rest, whole_epoch[2:]))
    # a state from an earlier epoch (a checkpoint written at that epoch's end) skips nothing
    later = datamodule.train_dataloader()
    later.load_state_dict(state)
    later.sampler.set_epoch(4)
    assert len(list(later)) == len(whole_epoch)
