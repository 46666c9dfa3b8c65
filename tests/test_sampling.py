"""One sampling seam for every family: grids, val/fid, `genlab eval` and `genlab sample` call
GenerativeModule.sample and nothing else, so a family whose noise is an image refined over many
steps (as a diffusion model's) works with them unchanged."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from genlab.builder import build_module
from genlab.errors import ConfigError
from genlab.generation import interpolate, sample_batches, sample_grid
from genlab.modules.base import GenerativeModule

GENLAB = str(Path(sys.executable).parent / "genlab")
REPO = Path(__file__).resolve().parents[1]
SMALL_JUDGE = ("classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32")


class RefiningToy(GenerativeModule):
    """A toy many-step family: x_T ~ N(0, I) images, refined by a learned denoiser over `steps` steps,
    x_{k-1} = x_k + (D(x_k) - x_k) / k, plus fresh noise of scale `churn` / k drawn from the sampler's generator.

    Trained to map noisy digits back to digits (a one-step denoising loss). It exists to show that
    the callbacks and commands need nothing of a family beyond `noise_shape` and `decode`.
    """

    interpolation = "spherical"

    def __init__(self, optimizer, image_shape, num_classes: int = 0, on_nonfinite: str = "stop", speed=None) -> None:
        super().__init__(optimizer, tuple(image_shape), num_classes, on_nonfinite, speed)
        channels = image_shape[0]
        self.denoiser = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, channels, 3, padding=1))
        self.decode_calls: list[dict] = []

    def configure_optimizers(self):
        return self._make_optimizer("generator", self.parameters())

    def denoising_loss(self, clean: Tensor) -> Tensor:
        t = torch.rand(len(clean), 1, 1, 1, device=clean.device)
        noisy = (1 - t) * clean + t * torch.randn_like(clean)
        return F.mse_loss(self.denoiser(noisy), clean)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        self.generator_steps += 1
        loss = self.denoising_loss(batch[0])
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.denoising_loss(batch[0]))

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
               steps: int = 4, churn: float = 0.0) -> Tensor:
        self.decode_calls.append({"steps": steps, "churn": churn, "n": len(noise)})
        x = noise
        for k in range(steps, 0, -1):
            x = x + (self.denoiser(x) - x) / k
            if churn:
                fresh = torch.randn(x.shape, generator=generator, device="cpu" if generator else x.device)
                x = x + churn / k * fresh.to(x.device)
        return x.clamp(-1, 1)


TOY_MODEL = """# @package _global_
# the toy many-step family of tests/test_sampling.py, for genlab's own commands
model:
  _target_: tests.test_sampling.RefiningToy
  image_shape: ${data.image_shape}
  num_classes: 0
"""


def toy_module(compose_train) -> RefiningToy:
    cfg = compose_train("model=vae")
    cfg.model = {"_target_": "tests.test_sampling.RefiningToy", "image_shape": [1, 28, 28]}
    return build_module(cfg)


def test_sampling_options_reach_the_familys_sampler_and_a_seed_fixes_the_images(compose_train):
    module = toy_module(compose_train)
    assert module.sampler_options() == ["steps", "churn"]
    first = module.sample(6, generator=torch.Generator().manual_seed(3), steps=5, churn=0.3)
    again = module.sample(6, generator=torch.Generator().manual_seed(3), steps=5, churn=0.3)
    assert first.shape == (6, 1, 28, 28) and torch.equal(first, again)
    assert module.decode_calls[-1] == {"steps": 5, "churn": 0.3, "n": 6}
    other = module.sample(6, generator=torch.Generator().manual_seed(3), steps=5, churn=0.6)
    assert not torch.equal(first, other), "the sampler's own noise comes from the same generator"


def test_an_option_the_sampler_does_not_take_is_refused_by_name(compose_train):
    with pytest.raises(ConfigError, match=r"sampler.stepz is not an option of RefiningToy's sampler; its options: steps, churn"):
        toy_module(compose_train).sample(2, stepz=3)
    with pytest.raises(ConfigError, match=r"sampler.steps is not an option of AdversarialModule's sampler; its options: none"):
        build_module(compose_train("model=dcgan")).sample(2, steps=3)


def test_grids_and_metric_batches_of_a_conditional_model_follow_the_classes(compose_train):
    module = build_module(compose_train("model=cgan"))
    seen: list[Tensor] = []
    honest = module.decode
    module.decode = lambda noise, labels=None, generator=None: seen.append(labels.cpu()) or honest(noise, labels)
    images, per_row = sample_grid(module, 20, 8, torch.Generator().manual_seed(0))
    assert images.shape[0] == 20 and per_row == 2
    assert torch.equal(seen[-1], torch.arange(10).repeat_interleave(2))
    batches = list(sample_batches(module, 25, 10, seed=0))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert torch.equal(torch.cat(seen[-3:]), torch.arange(25) % 10)


def test_spherical_interpolation_keeps_the_norm_that_a_straight_line_loses():
    # two orthogonal noise images of equal norm: the chord's midpoint has 1/sqrt(2) of their norm, the arc's all of it
    start = torch.zeros(1, 1, 2, 2)
    end = torch.zeros(1, 1, 2, 2)
    start[0, 0, 0, 0], end[0, 0, 1, 1] = 3.0, 3.0
    t = torch.tensor([0.0, 0.5, 1.0])
    straight = interpolate(start, end, t, spherical=False)
    arc = interpolate(start, end, t, spherical=True)
    assert straight.shape == arc.shape == (1, 3, 1, 2, 2)
    assert straight[0, 1].norm().item() == pytest.approx(3 / math.sqrt(2))
    assert [p.norm().item() for p in arc[0]] == pytest.approx([3.0, 3.0, 3.0])
    assert torch.allclose(arc[0, 0], start[0]) and torch.allclose(arc[0, 2], end[0], atol=1e-6)


def genlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([GENLAB, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> tuple[Path, Path, tuple[str, ...]]:
    """The toy family trained by `genlab train` with the default callbacks: (workdir, run folder, common args)."""
    workdir = tmp_path_factory.mktemp("toyrun")
    (workdir / "user_configs" / "model").mkdir(parents=True)
    (workdir / "user_configs" / "model" / "refining_toy.yaml").write_text(TOY_MODEL)
    common = (f"paths.cache_dir={workdir / 'cache'}", *SMALL_JUDGE)
    run_dir = workdir / "run"
    result = genlab(
        "train", "model=refining_toy", f"hydra.searchpath=[file://{workdir / 'user_configs'}]", "debug=limit",
        "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "callbacks.sample_quality.n_samples=100",
        "callbacks.sample_quality.sampler={steps:2}", "callbacks.sample_grid.sampler={steps:3,churn:0.1}",
        f"hydra.run.dir={run_dir}", *common, cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, run_dir, common


def test_a_many_step_family_trains_with_the_grid_and_val_fid_callbacks_unchanged(toy_run):
    _, run_dir, _ = toy_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["val/fid"] > 0 and summary["generator_steps"] == 8
    grid = Image.open(run_dir / "samples" / "last.png")
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8 x 8 samples of 28 px, 2 px padding


def test_eval_and_sample_work_on_a_many_step_family_over_several_checkpoints(toy_run):
    workdir, run_dir, common = toy_run
    checkpoints = [run_dir / "checkpoints" / name for name in ("last.ckpt", "best.ckpt")]
    result = genlab("eval", "-m", f"ckpt_path={checkpoints[0]},{checkpoints[1]}", "n_samples=60", "batch_size=30",
                    "extractor=classifier", "kid_subset_size=30", "progress=false", "sampler={steps:2}", *common, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run_dir / "checkpoints" / "metrics.json").read_text())
    assert set(results) == {"last.ckpt", "best.ckpt"}
    for entry in results.values():
        assert entry["protocol"]["sampler"] == {"steps": 2} and math.isfinite(entry["metrics"]["fid"])

    out = workdir / "png"
    result = genlab("sample", "-m", f"ckpt_path={checkpoints[0]}", "seed=1,2", "n=16", "nrow=4", f"out={out}",
                    "n_interpolations=2", "interpolation_steps=5", "sampler={steps:3}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    for seed in (1, 2):
        assert Image.open(out / f"sample_seed{seed}.png").size == (4 * 30 + 2, 4 * 30 + 2)
        assert Image.open(out / f"interpolation_seed{seed}.png").size == (5 * 30 + 2, 2 * 30 + 2)
