"""Speed options change how the networks run, never what they compute: the same seed gives the
same losses; mixed precision really runs the convolutions in 16 bits; logging less often writes
the same values."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.plugins import MixedPrecision

from genlab.errors import ConfigError
from genlab.builder import build
from genlab.nets.speed import SpeedOptions
from tests.conftest import BARE

# a small VAE: BARE's net overrides name the GAN nets
VAE = (*(o for o in BARE if "base_channels" not in o), "model=vae",
       "model.net.encoder.base_channels=4", "model.net.decoder.base_channels=4")


def fit(cfg):
    """Train as `genlab train` does (seeded); returns the module, the trainer and its final metrics."""
    pl.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, {name: float(value) for name, value in trainer.callback_metrics.items()}


def record_first_conv(net: torch.nn.Module) -> list[dict]:
    """How the first convolution of a net ran, call by call: in NHWC or not, its output dtype,
    and whether torch.compile was tracing it."""
    calls: list[dict] = []
    conv = next(m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))

    def hook(module, inputs, output):
        calls.append({
            "nhwc": output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous(),
            "dtype": output.dtype,
            "compiling": torch.compiler.is_compiling(),
        })

    conv.register_forward_hook(hook)
    return calls


def assert_same_metrics(a: dict, b: dict, rel: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == pytest.approx(b[name], rel=rel, abs=1e-6), name


def test_channels_last_runs_the_convolutions_in_nhwc_and_gives_the_same_losses(compose_train, fake_data_root):
    """NHWC sums each convolution in another order: from the same weights, the same losses to float32 rounding
    (both layouts are about 1e-7 from float64 here). Over many steps that rounding is not bounded: Adam divides
    each gradient by its own running size, so a 1e-7 change in a near-zero gradient moves a weight by up to the
    learning rate, and after 8 WGAN-GP critic steps on one thread the two layouts' penalties differed by 7e-4.
    So the losses are compared at the first step, tightly, and the whole run checks that every convolution ran
    in NHWC."""
    data = ("data=cifar10", f"paths.data_dir={fake_data_root}")
    _, _, eager = fit(compose_train(*BARE, *data, "model=wgan_gp", "trainer.max_steps=1"))
    _, _, nhwc = fit(compose_train(*BARE, *data, "model=wgan_gp", "trainer.max_steps=1", "speed.channels_last=true"))
    assert any(name.startswith("train/") for name in eager)
    assert_same_metrics(nhwc, eager, rel=1e-5)

    cfg = compose_train(*BARE, *data, "model=wgan_gp", "speed.channels_last=true")
    pl.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    calls = record_first_conv(module.family.discriminator)
    trainer.fit(module, datamodule=datamodule)
    weight = module.family.discriminator.net[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert calls and all(call["nhwc"] for call in calls)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in trainer.callback_metrics.values())


@pytest.mark.slow
def test_compiled_networks_train_to_the_eager_losses_and_the_penalty_pass_stays_eager(compose_train, fake_data_root):
    # aot_eager traces and differentiates like the default inductor backend, without C++ compilation
    data = ("data=mnist", f"paths.data_dir={fake_data_root}")
    _, _, eager = fit(compose_train(*BARE, *data, "model=wgan_gp"))
    cfg = compose_train(*BARE, *data, "model=wgan_gp", "speed.compile=true", "speed.compile_options={backend:aot_eager}")
    pl.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    keys = set(module.state_dict())
    calls = record_first_conv(module.family.discriminator)
    trainer.fit(module, datamodule=datamodule)
    assert any(call["compiling"] for call in calls), "the critic was traced by torch.compile"
    # the gradient penalty is differentiated twice, which compiled graphs cannot do: it ran eagerly
    assert sum(not call["compiling"] for call in calls) >= 8
    assert set(module.state_dict()) == keys, "checkpoints of compiled runs load into eager modules"
    assert_same_metrics({k: float(v) for k, v in trainer.callback_metrics.items()}, eager, rel=1e-4)


@pytest.mark.slow
def test_compile_with_its_default_backend_trains_the_vae_to_the_eager_losses(compose_train, fake_data_root):
    data = ("data=mnist", f"paths.data_dir={fake_data_root}")
    _, _, eager = fit(compose_train(*VAE, *data))
    module, _, compiled = fit(compose_train(*VAE, *data, "speed.compile=true"))
    assert module.family.encoder._compiled_call_impl is not None and module.family.decoder._compiled_call_impl is not None
    assert_same_metrics(compiled, eager, rel=1e-4)


@pytest.mark.parametrize("model", ["wgan_gp", "vae"])
def test_bf16_mixed_runs_the_convolutions_in_bfloat16_and_keeps_float32_weights(compose_train, fake_data_root, model):
    overrides = VAE if model == "vae" else (*BARE, "model=wgan_gp")
    cfg = compose_train(*overrides, "data=mnist", f"paths.data_dir={fake_data_root}", "trainer.precision=bf16-mixed")
    pl.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    before = [p.detach().clone() for p in module.parameters()]
    calls = record_first_conv(module.family.discriminator if model == "wgan_gp" else module.family.encoder)
    trainer.fit(module, datamodule=datamodule)
    assert {call["dtype"] for call in calls} == {torch.bfloat16}
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters())), "the weights were trained"
    losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_16_mixed_scales_the_losses_and_keeps_the_gradient_penalty_in_float32(compose_train, fake_data_root):
    # the GPU recipe (float16 autocast + GradScaler) run on the CPU: Lightning itself maps 16-mixed to bf16 there
    cfg = compose_train(*BARE, "model=wgan_gp", "model.n_critic=2", "data=mnist", f"paths.data_dir={fake_data_root}")
    pl.seed_everything(0, verbose=False)
    datamodule, module, _ = build(cfg)
    calls = record_first_conv(module.family.discriminator)
    trainer = instantiate(cfg.trainer, precision=None, plugins=[MixedPrecision("16-mixed", "cpu")], logger=False,
                          callbacks=[])
    trainer.fit(module, datamodule=datamodule)
    dtypes = [call["dtype"] for call in calls]
    # per critic step: real and fake scores in float16, the penalty's pass in float32
    assert dtypes.count(torch.float16) > 0 and dtypes.count(torch.float32) == 8
    assert trainer.precision_plugin.scaler.get_scale() < 2.0**16, "the scaler ran (and backed off from overflow)"
    assert all(torch.isfinite(p).all() for p in module.parameters())


def csv_rows(run_dir: Path) -> dict[float, dict[str, str]]:
    """Training rows by batch: keyed by the images seen so far (the step axis counts generator updates,
    which two batches of a critic-heavy GAN share)."""
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return {float(row["train/images_seen"]): row for row in csv.DictReader(handle) if row.get("train/d_loss")}


def test_logging_every_third_batch_writes_the_same_values_on_those_batches(compose_train, fake_data_root, tmp_path):
    # training steps call self.log only on the batches whose logs are written (trainer.log_every_n_steps)
    runs = {}
    for every in (1, 3):
        cfg = compose_train(*(o for o in BARE if o != "~logger"), "model=wgan_gp", "model.n_critic=2", "data=mnist",
                            f"paths.data_dir={fake_data_root}", "logger=csv", f"trainer.log_every_n_steps={every}")
        cfg.paths.output_dir = str(tmp_path / f"every_{every}")
        fit(cfg)
        runs[every] = csv_rows(Path(cfg.paths.output_dir))
    # debug=limit: 2 epochs of 4 batches of 16 images
    sparse = runs[3]
    assert len(sparse) == 2 and len(runs[1]) == 8
    assert sorted(sparse) == [3 * 16.0, 6 * 16.0]
    for images, row in sparse.items():
        for name in ("train/d_loss", "train/g_loss", "train/gradient_penalty", "train/d_real", "step"):
            assert row[name] and row[name] == runs[1][images][name], (images, name)


def test_speed_options_are_checked_by_name_and_type():
    with pytest.raises(ConfigError, match="speed.complie is not a speed option; the options are: channels_last, compile"):
        SpeedOptions.from_config({"complie": True})
    with pytest.raises(ConfigError, match="speed.channels_last='yes' is not valid"):
        SpeedOptions.from_config({"channels_last": "yes"})
    assert SpeedOptions.from_config(None) == SpeedOptions()


# MeanFlow's target is a JVP (torch.func.jvp) through the UNet: a compiled UNet must give it the eager values
# (one epoch of 2 batches and 1 validation batch: the compiled graphs are traced once, for training and for validation)
MEANFLOW = ("trainer=cpu", "debug=limit", "trainer.enable_progress_bar=false", "data.batch_size=16", "data.val_size=16",
            "callbacks=none", "~logger", "model=meanflow", "model.net.denoiser.width=8", "model.unequal_share=0.5",
            "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1")


@pytest.mark.slow
def test_a_compiled_meanflow_unet_trains_to_the_eager_losses_through_its_jvp(compose_train, fake_data_root):
    data = ("data=mnist", f"paths.data_dir={fake_data_root}")
    _, _, eager = fit(compose_train(*MEANFLOW, *data))
    cfg = compose_train(*MEANFLOW, *data, "speed.compile=true", "speed.compile_options={backend:aot_eager}")
    pl.seed_everything(0, verbose=False)
    datamodule, module, trainer = build(cfg)
    calls = record_first_conv(module.family.denoiser)
    trainer.fit(module, datamodule=datamodule)
    assert any(call["compiling"] for call in calls), "the UNet was traced by torch.compile"
    assert {"train/loss", "val/loss"} <= eager.keys()  # training's losses and validation's compared alike
    assert_same_metrics({k: float(v) for k, v in trainer.callback_metrics.items()}, eager, rel=1e-4)
