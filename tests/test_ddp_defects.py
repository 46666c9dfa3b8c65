"""What multi-GPU and GPU training need beyond one CPU process: every tensor on the input's device, each DDP rank
its own noise with the weights in sync, decisions taken by every rank together, no collective that one rank runs
alone, each rank's random state in checkpoints, no host read per step, losses in float32 under mixed precision.

The DDP tests run `genlab train trainer=ddp_cpu`: two gloo processes on the CPU, which take DDP's code path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.augment import AdaptiveDiffAugment
from genlab.families.gan import GAN
from genlab.nets.mlp import Discriminator, Generator
from tests.conftest import Finished

ROOT = Path(__file__).resolve().parents[1]
GENLAB = str(Path(sys.executable).parent / "genlab")
# two ranks of 5 batches of 8 digits an epoch (80 training digits), small nets, nothing judged
DDP = ("trainer=ddp_cpu", "data=mnist", "data.batch_size=8", "data.val_size=16", "trainer.limit_val_batches=1",
       "model.latent_dim=8", "model.net.generator.base_channels=8",
       "model.net.discriminator.base_channels=8", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
       "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "logger=csv")


def train_ddp(*args: str, cwd: Path, timeout: int = 240) -> Finished:
    """`genlab train <args>` as its own process group (rank 0 starts rank 1), killed whole if it outlives `timeout`:
    a desynchronised collective waits for ever. tests/ddp_probe.py is importable from both ranks."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    process = subprocess.Popen([GENLAB, "train", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail(f"the DDP run still ran after {timeout} s (a rank waits for the other): {stderr[-2000:]}")
    return Finished(process.returncode, stdout, stderr)


def probe(path: Path, *options: str) -> tuple[str, ...]:
    return ("+callbacks.probe._target_=tests.ddp_probe.Probe", f"+callbacks.probe.path={path}",
            *(f"+callbacks.probe.{option}" for option in options))


def ranks(path: Path) -> list[dict]:
    return [torch.load(path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


def assert_same_parameters(first: dict, second: dict) -> None:
    assert first.keys() == second.keys() and first
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name} differs between the ranks"


# --- 1. ADA on the critic's device ------------------------------------------------------


def test_ada_sums_its_signs_and_images_on_the_device_of_the_critics_scores():
    ada = AdaptiveDiffAugment(target=0.6, interval=2, speed_kimg=0.001)
    seen = []

    def reduce(totals: torch.Tensor) -> torch.Tensor:  # DDP's sum, which needs one device; answers r_t = 0.625
        seen.append(totals.device)
        return torch.tensor([20.0, 32.0])

    for step in (1, 2):  # `meta` stands for the GPU: a CPU tensor beside it would not stack
        ada.observe(torch.tensor(0.5, device="meta"), 16, step, reduce)
    assert seen == [torch.device("meta")]
    assert ada.p == 1.0  # r_t 0.625 > 0.6: p rises by 32 images / 1 image, to its bound


def test_a_gans_logged_augment_probability_is_on_the_critics_device():
    gan = GAN({"generator": Generator(8, (1, 4, 4), hidden=(8,)), "discriminator": Discriminator((1, 4, 4), hidden=(8,))},
              latent_dim=8, augment=AdaptiveDiffAugment(interval=4))
    logs = gan.observe(torch.tensor(0.5, device="meta"), 16, 1)
    assert logs["augment_p"].device == torch.device("meta")
