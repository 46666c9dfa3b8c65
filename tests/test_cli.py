"""The `genlab` command as a user meets it: help, clear errors without tracebacks, DDP re-execution."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import make_mnist

GENLAB = str(Path(sys.executable).parent / "genlab")


def run(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([GENLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_subcommand_with_what_it_does(tmp_path):
    from genlab.cli import SUBCOMMANDS

    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: genlab <command>")
    listed = [line.split(None, 1) for line in result.stdout.splitlines() if line.startswith("  ") and line.strip()]
    assert [(name, about.strip()) for name, about in listed] == [(name, about) for name, (_, about) in SUBCOMMANDS.items()]
    assert [name for name, _ in listed] == ["train", "eval", "sample", "report", "export"]


def test_train_help_shows_the_config_groups_and_their_options(tmp_path):
    result = run("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    groups: dict[str, str] = {}
    for line in result.stdout.splitlines():  # the groups' lines come first, the composed config's after
        if line[:1].isalpha() and ":" in line:
            groups.setdefault(*line.split(":", 1))
    assert groups["data"].split() == ["cifar10,", "folder,", "mnist,", "mnist_mini"]
    assert groups["model/net"].split() == ["conv_vae,", "cyclegan,", "dcgan,", "dcgan_auxiliary,", "dcgan_projection,",
                                           "dcgan_projection_small,", "dcgan_small,", "mlp,", "palette_unet,", "pix2pix,", "unet"]
    assert groups["optimizer"].split() == ["adam,", "adam_fast,", "adam_r3gan,", "adam_unet,", "adam_vae,", "adam_wgan_gp,",
                                           "rmsprop,", "sgd"]
    models = ("acgan ccd cd cddpm cflow cgan cict cmeanflow creflow cvae cyclegan dcgan ddpm flow gan ict lsgan meanflow"
              " palette palette_flow pix2pix reflow regress rpgan sngan vae wgan")
    assert groups["model"].split() == [f"{m}," for m in models.split()] + ["wgan_gp"]
    assert groups["task"].split() == ["colorize,", "colorize_digits,", "denoise,", "edges,", "inpaint,", "restyle,", "superres"]
    for group in ("trainer", "experiment", "recipe", "debug", "logger", "callbacks", "paths", "hydra", "hydra/launcher"):
        assert group in groups
    assert "genlab train model=wgan_gp data=cifar10" in result.stdout


def test_train_help_for_a_group_shows_each_option_with_its_keys_and_defaults(tmp_path):
    result = run("train", "--help", "data", cwd=tmp_path)
    assert result.returncode == 0
    assert "== data=mnist_mini (configs/data/mnist_mini.yaml) ==" in result.stdout
    assert "  data.batch_size=64\n" in result.stdout and "  data.batch_size=128\n" in result.stdout  # mnist_mini's, cifar10's
    assert "(default: mnist_mini)" in result.stdout


def test_train_help_for_a_nested_group_shows_its_keys_under_its_package(tmp_path):
    result = run("train", "--help", "model/net", cwd=tmp_path)
    assert result.returncode == 0
    assert "== model/net=mlp " in result.stdout and "  model.net.discriminator.norm=batch\n" in result.stdout


@pytest.mark.slow
def test_train_help_for_the_model_group_shows_what_a_variant_inherits_and_the_optimizer_a_model_picks(tmp_path):
    from tests.conftest import run_genlab

    text = run_genlab("train", "--help", "model", cwd=tmp_path).stdout
    lsgan = text[text.index("== model=lsgan "):text.index("== model=meanflow ")]  # lsgan.yaml holds its loss alone
    assert "  model.loss=least_squares\n" in lsgan and "  model.net.generator._target_=genlab.nets.dcgan.Generator\n" in lsgan
    assert "picks:" not in lsgan  # DCGAN's nets and the default optimizer
    wgan = text[text.index("== model=wgan "):text.index("== model=wgan_gp ")]
    assert "  picks: optimizer=rmsprop\n" in wgan and "  model.regularizers.weight_clipping.clip_value=0.01\n" in wgan


def test_train_help_for_a_group_does_not_import_torch(tmp_path):
    probe = ("import sys; from genlab.cli import main; main(['genlab', 'train', '--help', 'data']);"
             " print('torch imported' if 'torch' in sys.modules else 'torch not imported', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "batch_size" in result.stdout
    assert result.stderr.strip() == "torch not imported"


def test_help_for_an_unknown_group_lists_the_valid_ones_in_one_line(tmp_path):
    result = run("train", "--help", "dta", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "no config group 'dta'" in line and "data, debug" in line and "model/net" in line


@pytest.mark.parametrize("reader", ["head -1", "true"])
@pytest.mark.parametrize("command", ["--help", "train --help", "eval --help", "train --help data", "report --help"])
def test_help_survives_a_reader_that_closes_the_pipe(tmp_path, command, reader):
    # unbuffered output writes while the reader is gone (`head -1` after its line, `true` at once)
    shell = f"{GENLAB} {command} | {reader}; exit ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
    assert len(result.stdout.splitlines()) == (1 if reader == "head -1" else 0)


def test_unknown_subcommand_lists_the_valid_ones(tmp_path):
    result = run("trian", cwd=tmp_path)
    assert result.returncode == 2 and "unknown command 'trian'" in result.stderr and "train" in result.stderr


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run("train", "--cfg", "job", "model.latent_dim=7", cwd=tmp_path)
    assert result.returncode == 0 and "latent_dim: 7" in result.stdout


@pytest.mark.slow
def test_ddp_on_cpu_trains_two_ranks_into_one_run_folder(tmp_path):
    """Lightning re-executes sys.argv for rank 1: the `train` subcommand must survive that."""
    make_mnist(tmp_path / "data", n_train=96)
    result = run(
        "train", "trainer=ddp_cpu", "debug=limit", "data=mnist", f"paths.data_dir={tmp_path / 'data'}",
        "data.batch_size=8", "data.val_size=16", "model.latent_dim=8",
        "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8",
        "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "trainer.limit_train_batches=1.0",
        "callbacks.sample_quality.n_samples=32",  # val/fid still judged under DDP, on 32 samples (not 1,000)
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "GLOBAL_RANK: 0" in output and "GLOBAL_RANK: 1" in output
    runs = list((tmp_path / "outputs" / "debug" / "runs").iterdir())
    assert len(runs) == 1
    checkpoint = torch.load(runs[0] / "checkpoints" / "last.ckpt", weights_only=False)
    # 80 training digits, batches of 8: one process would take 10 batches an epoch; each of the two
    # ranks takes its 40-digit shard in 5. 5 batches x 2 epochs x 2 optimizer steps:
    assert checkpoint["global_step"] == 20
    assert len(list(runs[0].rglob("summary.json"))) == 1
    assert math.isfinite(json.loads((runs[0] / "summary.json").read_text())["metrics"]["val/fid"])


@pytest.mark.slow
def test_ddp_on_cpu_trains_a_denoising_family_into_one_run_folder(tmp_path):
    """The many-step families under DDP as the GANs: two ranks, one folder, the UNet's updates counted once each."""
    make_mnist(tmp_path / "data", n_train=96)
    result = run(
        "train", "model=flow", "trainer=ddp_cpu", "debug=limit", "data=mnist", f"paths.data_dir={tmp_path / 'data'}",
        "data.batch_size=8", "data.val_size=16", "model.net.denoiser.width=8", "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar", "trainer.limit_train_batches=1.0", "callbacks.sample_quality.n_samples=32",
        "callbacks.sample_quality.sampler={method: euler, steps: 2}", "model.sampler.steps=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "GLOBAL_RANK: 0" in output and "GLOBAL_RANK: 1" in output
    [run_dir] = list((tmp_path / "outputs" / "debug" / "runs").iterdir())
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    # each rank takes 5 of the 10 batches of 8 an epoch, 2 epochs, one optimizer step a batch
    assert checkpoint["global_step"] == 10 and checkpoint["progress"]["generator_steps"] == 10
    assert "ema" in "".join(checkpoint["state_dict"]) and len(list(run_dir.rglob("summary.json"))) == 1
