"""Each family's math lives in one object that a plain PyTorch loop trains and samples without Lightning
(or Hydra): tests/plain_loop_demo.py does it for a GAN, the VAE, DDPM and flow matching in a fresh
interpreter, and each learns there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# trains four families for 30 steps each in a fresh interpreter
pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parent / "plain_loop_demo.py"


@pytest.fixture(scope="module")
def measured() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(DEMO.parents[1]), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_plain_loop_loads_neither_lightning_nor_hydra(measured):
    assert measured["modules"] == []


def test_a_gan_trained_by_hand_moves_its_samples_towards_real_digits(measured):
    # Fréchet distance of 4x4-pooled pixels to 500 held-out digits, after 60 critic and generator steps (measured 37 -> 5.5)
    assert measured["gan"]["after"] < 0.5 * measured["gan"]["before"]


def test_a_vae_trained_by_hand_raises_its_held_out_elbo(measured):
    # nats per digit, after 30 steps (measured -546 -> -261; an untrained Bernoulli decoder costs about 784 log 2)
    assert measured["vae"]["after"] > measured["vae"]["before"] + 150


@pytest.mark.parametrize("family", ["ddpm", "flow"])
def test_a_denoising_family_trained_by_hand_lowers_its_loss_and_samples_with_its_average(measured, family):
    # mean loss of the last 10 of 30 steps against the first 10 (measured ddpm 0.83 -> 0.43, flow 1.71 -> 0.77)
    result = measured[family]
    assert result["after"] < 0.7 * result["before"]
    assert result["samples_finite"] and result["samples_shape"] == [8, 1, 28, 28]
