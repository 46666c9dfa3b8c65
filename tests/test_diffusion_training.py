"""Short real trainings on mnist_mini: the denoising losses fall, and a conditional flow draws the class asked for."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from genlab.builder import build
from genlab.metrics.conditioning import label_accuracy, requested_labels


def short_run(compose_train, model: str, batches: int, epochs: int, *overrides: str) -> tuple[pl.LightningModule, list[float]]:
    """`model` with an 8-channel UNet at 2x the default rate for `epochs` x `batches`; the loss of every batch."""
    cfg = compose_train(
        f"model={model}", "trainer=cpu", f"trainer.limit_train_batches={batches}", "trainer.limit_val_batches=0",
        f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false", "callbacks=none", "~logger",
        "optimizer.lr=2e-3", "model.net.denoiser.width=8", "seed=0", *overrides,
    )
    pl.seed_everything(cfg.seed, verbose=False)
    datamodule, model_, trainer = build(cfg)
    losses: list[float] = []

    class Losses(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer.callbacks.append(Losses())
    trainer.fit(model_, datamodule=datamodule)
    return model_, losses


@pytest.mark.slow
@pytest.mark.parametrize(("prediction", "schedule"), [("epsilon", "linear"), ("v", "cosine")])
def test_a_short_ddpm_run_lowers_its_loss(compose_train, prediction, schedule):
    # the paper's eps and linear betas, and the default v and cosine; 30 batches each
    model, losses = short_run(compose_train, "ddpm", 30, 1, f"model.prediction={prediction}", f"model.schedule={schedule}")
    assert model.generator_steps == 30 and model.images_seen == 30 * 64
    if prediction == "epsilon":  # it starts at E||eps||^2 = 1: the output layer is zero-initialised
        assert sum(losses[:5]) / 5 > 0.9
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


@pytest.mark.slow
def test_a_short_conditional_flow_run_lowers_its_loss_and_draws_the_class_asked_for(compose_train, small_mnist_judge):
    # measured: loss 1.66 -> 0.51 over 50 batches; label accuracy 0.41 at guidance 3 (0.2 at guidance 1; chance 0.1)
    model, losses = short_run(compose_train, "cflow", batches=25, epochs=2)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    judge = small_mnist_judge  # conftest's SMALL_MNIST_JUDGE (93% on the test digits), trained once a session
    samples = model.sample(100, generator=torch.Generator().manual_seed(1), method="euler", steps=6, guidance=3.0)
    with torch.no_grad():
        accuracy = label_accuracy(judge.probabilities(samples), requested_labels(100, 10))
    print(f"cflow, 50 batches: label accuracy {accuracy:.2f} at guidance 3")
    assert accuracy > 0.2
