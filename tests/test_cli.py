"""The `genlab` command as a user meets it: help, clear errors without tracebacks, DDP re-execution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import make_mnist

GENLAB = str(Path(sys.executable).parent / "genlab")


def run(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([GENLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_subcommands(tmp_path):
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0 and "train" in result.stdout


def test_train_help_shows_the_config_groups_and_their_options(tmp_path):
    result = run("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    groups = dict(line.split(":", 1) for line in result.stdout.splitlines() if line[:1].isalpha() and ":" in line)
    assert groups["data"].split() == ["cifar10,", "mnist,", "mnist_mini"]
    assert groups["model/net"].split() == ["conv_vae,", "dcgan,", "mlp"]
    assert groups["model"].split() == [f"{m}," for m in "cgan cvae dcgan gan lsgan sngan vae wgan".split()] + ["wgan_gp"]
    for group in ("trainer", "experiment", "debug", "optimizer", "logger", "callbacks", "paths", "hydra"):
        assert group in groups
    assert "genlab train model=wgan_gp data=cifar10" in result.stdout


def test_unknown_subcommand_lists_the_valid_ones(tmp_path):
    result = run("trian", cwd=tmp_path)
    assert result.returncode == 2 and "unknown command 'trian'" in result.stderr and "train" in result.stderr


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run("train", "--cfg", "job", "model.latent_dim=7", cwd=tmp_path)
    assert result.returncode == 0 and "latent_dim: 7" in result.stdout


def test_unknown_model_lists_the_valid_ones(tmp_path):
    result = run("train", "model=wgann", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'model/wgann'" in result.stderr and "dcgan" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_offline_is_a_clear_error_not_a_traceback(tmp_path):
    result = run("train", "data=mnist", f"paths.data_dir={tmp_path / 'empty'}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"looked in {tmp_path / 'empty' / 'MNIST' / 'raw'}" in result.stderr
    assert "data.download=true" in result.stderr and "data=mnist_mini" in result.stderr
    assert "Traceback" not in result.stderr


def test_ddp_on_cpu_trains_two_ranks_into_one_run_folder(tmp_path):
    """Lightning re-executes sys.argv for rank 1: the `train` subcommand must survive that."""
    make_mnist(tmp_path / "data", n_train=96)
    result = run(
        "train", "trainer=ddp_cpu", "debug=limit", "data=mnist", f"paths.data_dir={tmp_path / 'data'}",
        "data.batch_size=8", "data.val_size=16", "model.latent_dim=8",
        "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8",
        "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "trainer.limit_train_batches=1.0",
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
