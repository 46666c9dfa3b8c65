"""One sampling seam for every family: grids, val/fid, `genlab eval` and `genlab sample` call
TrainingModule.sample (the family's sample with the run's EMA) and nothing else, so a family whose
noise is an image refined over many steps (as a diffusion model's) works with them unchanged."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.builder import build_module, build_optimizers
from genlab.errors import ConfigError
from genlab.families.base import OneLossFamily
from genlab.generation import interpolate, sample_batches, sample_grid
from genlab.modules.base import TrainingModule
from genlab.modules.one_player import OnePlayer


class RefiningToy(OneLossFamily):
    """A toy many-step family: x_T ~ N(0, I) images, refined by a learned denoiser over `steps` steps,
    x_{k-1} = x_k + (D(x_k) - x_k) / k, plus fresh noise of scale `churn` / k drawn from the sampler's generator.

    It exists to show that grids, metric batches and interpolations need nothing of a family beyond
    `noise_shape` and `decode` (tests/test_new_family.py trains a real one through every command).
    """

    interpolation = "spherical"

    def __init__(self, image_shape, num_classes: int = 0) -> None:
        super().__init__(tuple(image_shape), num_classes)
        channels = image_shape[0]
        self.denoiser = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, channels, 3, padding=1))
        self.decode_calls: list[dict] = []

    def image_network(self) -> nn.Module:
        return self.denoiser

    def parameters_of(self, role: str):
        return self.denoiser.parameters()

    def loss(self, images: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        t = torch.rand(len(images), 1, 1, 1, device=images.device)
        noisy = (1 - t) * images + t * torch.randn_like(images)
        return {"loss": F.mse_loss(self.denoiser(noisy), images)}

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


def toy_module(compose_train) -> TrainingModule:
    """The toy family under genlab's one-player loop, as genlab.builder would put it there."""
    return OnePlayer(RefiningToy([1, 28, 28]), optimizer=build_optimizers(compose_train("model=vae")))


def test_sampling_options_reach_the_familys_sampler_and_a_seed_fixes_the_images(compose_train):
    module = toy_module(compose_train)
    assert module.family.sampler_options() == ["steps", "churn"]
    first = module.sample(6, generator=torch.Generator().manual_seed(3), steps=5, churn=0.3)
    again = module.sample(6, generator=torch.Generator().manual_seed(3), steps=5, churn=0.3)
    assert first.shape == (6, 1, 28, 28) and torch.equal(first, again)
    assert module.family.decode_calls[-1] == {"steps": 5, "churn": 0.3, "n": 6}
    other = module.sample(6, generator=torch.Generator().manual_seed(3), steps=5, churn=0.6)
    assert not torch.equal(first, other), "the sampler's own noise comes from the same generator"


def test_an_option_the_sampler_does_not_take_is_refused_by_name(compose_train):
    with pytest.raises(ConfigError, match=r"sampler.stepz is not an option of RefiningToy's sampler; its options: steps, churn"):
        toy_module(compose_train).sample(2, stepz=3)
    with pytest.raises(ConfigError, match=r"sampler.steps is not an option of GAN's sampler; its options: none"):
        build_module(compose_train("model=dcgan")).sample(2, steps=3)


def test_grids_and_metric_batches_of_a_conditional_model_follow_the_classes(compose_train):
    module = build_module(compose_train("model=cgan"))
    seen: list[Tensor] = []
    honest = module.family.decode
    module.family.decode = lambda noise, labels=None, generator=None: seen.append(labels.cpu()) or honest(noise, labels)
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
