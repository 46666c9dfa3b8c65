"""A new family is two files and no edit of genlab: a denoising objective genlab does not ship (EDM,
tests/edm.py with tests/configs/model/edm.yaml) trains, samples and is judged through genlab's own
commands, and its loss and sampler are what its paper writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from tests.conftest import run_genlab
from tests.edm import EDM

CONFIGS = Path(__file__).resolve().parent / "configs"
SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32")


class Stub(nn.Module):
    """F(x, t) = 0.5 x + t / 1000: a network whose output is a known function of its input."""

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        return 0.5 * x + t.view(-1, 1, 1, 1) / 1000


def test_the_loss_is_the_papers_weighted_denoising_error_on_the_same_draws():
    family = EDM(net={"denoiser": Stub()}, image_shape=(1, 2, 2))
    images = torch.linspace(-1, 1, 24).view(6, 1, 2, 2)
    loss = family.objective(images, None, torch.Generator().manual_seed(3))
    draws = torch.Generator().manual_seed(3)  # the family's order: ln sigma, then the noise
    sigma = (-1.2 + 1.2 * torch.randn(6, generator=draws)).exp().view(-1, 1, 1, 1)
    noisy = images + sigma * torch.randn(images.shape, generator=draws)
    total = sigma**2 + 0.25
    F = 0.5 * noisy / total.sqrt() + (sigma.log() / 4) * 250 / 1000
    D = 0.25 / total * noisy + sigma * 0.5 / total.sqrt() * F
    expected = (total / (sigma * 0.5) ** 2 * (D - images) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_sigmas_run_from_sigma_max_to_sigma_min_then_zero():
    sigmas = EDM(net={"denoiser": Stub()}, image_shape=(1, 2, 2)).sigmas(18)
    assert len(sigmas) == 19 and sigmas[0].item() == pytest.approx(80) and sigmas[17].item() == pytest.approx(0.002)
    assert sigmas[-1] == 0 and all(a > b for a, b in zip(sigmas.tolist(), sigmas[1:].tolist()))


MU, S = 0.2, 0.4  # the 1-D Gaussian "data set" y ~ N(MU, S^2) of the exact-denoiser test


def sampling_error(method: str, steps: int) -> float:
    """The largest distance between the sampler's images and the exact solution of the probability-flow ODE
    from the same noise, with the exact denoiser of y ~ N(MU, S^2): x_0 = MU + S / sqrt(S^2 + sigma_max^2) (x_T - MU)."""
    family = EDM(net={"denoiser": Stub()}, image_shape=(1, 1, 1), sampler={"method": method, "steps": steps})
    # D*(x; sigma) = E[y | y + sigma n = x] = MU + S^2 / (S^2 + sigma^2) (x - MU), the perfectly trained denoiser
    family.predict = lambda x, sigma, labels: MU + S**2 / (S**2 + sigma.double() ** 2) * (x.double() - MU)
    noise = torch.linspace(-1.5, 1.5, 11).view(-1, 1, 1, 1)  # images within [-1, 1], which the clamp leaves alone
    exact = MU + S / math.sqrt(S**2 + 80**2) * (80 * noise.double() - MU)
    return (family.sample(noise=noise).double() - exact).abs().max().item()


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("heun", 2)])
def test_the_sampler_converges_to_the_exact_flow_at_its_order(method, order):
    errors = [sampling_error(method, steps) for steps in (18, 36, 72)]
    for coarse, fine in zip(errors, errors[1:]):  # twice the steps: 2^order times smaller errors
        assert coarse / fine == pytest.approx(2**order, rel=0.2)
    if method == "heun":
        assert errors[1] < 0.01  # Heun's 36 steps (71 network evaluations) land within 1% of the data's range


@pytest.fixture(scope="module")
def edm_run(tmp_path_factory) -> tuple[Path, Path, tuple[str, ...]]:
    """The new family trained by `genlab train` with genlab's default callbacks: (workdir, run folder, judge settings)."""
    workdir = tmp_path_factory.mktemp("edm")
    judge = (f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE)
    run_dir = workdir / "run"
    result = run_genlab(
        "train", "model=edm", f"hydra.searchpath=[file://{CONFIGS}]", "debug=limit", "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar", "model.net.denoiser.width=8", "callbacks.sample_quality.n_samples=50",
        "callbacks.sample_quality.sampler={method:euler,steps:2}", "model.sampler.steps=3", f"hydra.run.dir={run_dir}",
        *judge, cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, run_dir, judge


@pytest.mark.slow
def test_a_new_family_trains_with_genlabs_loop_grid_and_val_fid(edm_run):
    _, run_dir, _ = edm_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["generator_steps"] == 8  # 2 epochs of 4 batches
    assert math.isfinite(summary["metrics"]["val/fid"]) and math.isfinite(summary["metrics"]["val/loss"])
    assert Image.open(run_dir / "samples" / "last.png").size == (8 * 30 + 2, 8 * 30 + 2)  # 8 x 8 samples of 28 px


@pytest.mark.slow
def test_a_new_family_is_judged_and_sampled_by_genlab_eval_and_sample(edm_run):
    workdir, run_dir, judge = edm_run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    # tests.edm.EDM is not a target genlab ships: its own user vouches for the run folder (genlab/run/trust.py)
    result = run_genlab("eval", f"ckpt_path={checkpoint}", "trust_run=true", "n_samples=40", "batch_size=20",
                        "extractor=classifier", "kid_subset_size=20", "progress=false", "sampler={steps:2}", *judge,
                        cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    entry = json.loads((run_dir / "checkpoints" / "metrics.json").read_text())["last.ckpt"]
    assert entry["protocol"]["sampler"] == {"method": "heun", "steps": 2, "evaluations": 4}  # Heun: 2 per step
    assert math.isfinite(entry["metrics"]["fid"])
    # the same domain classifier judged val/fid in training and this FID: its key and weights say so in both files
    trained_with = json.loads((run_dir / "summary.json").read_text())["judge"]["classifier"]
    judged_by = entry["protocol"]["judge"]
    assert judged_by["classifier"] == trained_with and len(trained_with["key"]) == 12
    assert judged_by["extractor"]["name"] == "classifier"
    assert judged_by["extractor"]["weights_sha256"] == trained_with["weights_sha256"]
    out = workdir / "png"
    result = run_genlab("sample", f"ckpt_path={checkpoint}", "trust_run=true", "n=16", "nrow=4", f"out={out}",
                        "n_interpolations=2", "interpolation_steps=5", "trajectory_rows=2", "trajectory_frames=4",
                        "sampler={steps:3}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(out / "sample_seed0.png").size == (4 * 30 + 2, 4 * 30 + 2)
    assert Image.open(out / "interpolation_seed0.png").size == (5 * 30 + 2, 2 * 30 + 2)
    assert Image.open(out / "trajectory_seed0.png").size == (4 * 30 + 2, 2 * 30 + 2)
