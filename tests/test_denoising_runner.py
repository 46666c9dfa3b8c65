"""The many-step families under the GANs' runner, unchanged: an interrupted ddpm or flow run resumes to the
weights of the same run left alone (EMA included), bf16-mixed runs the UNet in bfloat16 with float32 weights,
and a NaN loss stops the run before it reaches the weights (or is skipped with on_nonfinite=skip)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from genlab.builder import build
from genlab.callbacks.interrupt import GracefulInterrupt, TrainingInterrupted
from genlab.errors import DivergenceError
from tests.test_resume import SignalAt, fitted

# trains the UNet families (resume, bf16, divergence): seconds each
pytestmark = pytest.mark.slow

# 2 epochs of 4 batches of 16 (debug=limit), an 8-channel UNet, no callbacks or logger
SMALL = ("trainer=cpu", "debug=limit", "trainer.enable_progress_bar=false", "data.val_size=16",
         "model.net.denoiser.width=8", "callbacks=none", "~logger")
FAMILIES = ["ddpm", "flow"]


def compose(compose_train, fake_data_root, model: str, *overrides: str):
    return compose_train(*SMALL, f"model={model}", "data=mnist", f"paths.data_dir={fake_data_root}", *overrides)


@pytest.mark.parametrize("model", FAMILIES)
def test_an_interrupted_run_resumes_to_the_weights_and_average_of_the_run_left_alone(
    compose_train, fake_data_root, tmp_path, model
):
    cfg = compose(compose_train, fake_data_root, model, "trainer.max_epochs=3")
    alone = fitted(cfg)
    graceful = GracefulInterrupt(tmp_path / "checkpoints")
    with pytest.raises(TrainingInterrupted):
        fitted(cfg, callbacks=[SignalAt(graceful, 5), graceful])  # mid-epoch 1
    resumed = fitted(cfg, ckpt_path=str(tmp_path / "checkpoints" / "interrupted.ckpt"))
    assert resumed.generator_steps == alone.generator_steps == 12
    expected, got = alone.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys() and any(name.startswith("ema.") for name in expected)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


@pytest.mark.parametrize("model", FAMILIES)
def test_bf16_mixed_runs_the_unet_in_bfloat16_and_keeps_float32_weights(compose_train, fake_data_root, model):
    cfg = compose(compose_train, fake_data_root, model, "trainer.precision=bf16-mixed")
    pl.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    dtypes = []
    first_conv = next(m for m in module.family.denoiser.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda _module, _inputs, output: dtypes.append(output.dtype))
    before = [p.detach().clone() for p in module.family.denoiser.parameters()]
    trainer.fit(module, datamodule=datamodule)
    assert set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.family.denoiser.parameters())), "the weights were trained"


def poison(module, from_step: int) -> None:
    """Make the denoising loss NaN from the given training step (counted from 1) on."""
    honest = module.family.objective

    def objective(*args, **kwargs):
        value = honest(*args, **kwargs)
        return value * float("nan") if module.generator_steps + 1 >= from_step else value

    module.family.objective = objective


@pytest.mark.parametrize("model", FAMILIES)
def test_a_nan_loss_stops_the_run_before_it_reaches_the_weights(compose_train, fake_data_root, model):
    cfg = compose(compose_train, fake_data_root, model)
    datamodule, module, trainer = build(cfg)
    poison(module, from_step=6)
    with pytest.raises(DivergenceError, match=r"train/loss became nan at step 5 \(epoch 1\)"):
        trainer.fit(module, datamodule=datamodule)
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_on_nonfinite_skip_skips_the_bad_denoising_steps_and_trains_on(compose_train, fake_data_root):
    cfg = compose(compose_train, fake_data_root, "ddpm", "on_nonfinite=skip")
    datamodule, module, trainer = build(cfg)
    poison(module, from_step=6)
    before = [p.detach().clone() for p in module.family.denoiser.parameters()]
    after_last_finite_step = []

    class Snapshot(pl.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            if module.generator_steps == 5:
                after_last_finite_step.extend(p.detach().clone() for p in module.family.denoiser.parameters())

    trainer.callbacks.append(Snapshot())
    trainer.fit(module, datamodule=datamodule)
    assert module.progress.skipped_steps == 3 and module.generator_steps == 8
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.family.denoiser.parameters())), "the 5 finite steps trained"
    # the 3 skipped steps left the weights where the last finite one put them
    assert all(torch.equal(a, b) for a, b in zip(after_last_finite_step, module.family.denoiser.parameters()))
