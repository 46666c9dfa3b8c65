"""DDPM (model=ddpm, cddpm): the forward process, the schedules, the losses, the samplers and classifier-free
guidance against their closed forms, and bad sampler options refused by key."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from genlab.builder import build_family
from genlab.diffusion.guidance import drop_labels, guided
from genlab.diffusion.losses import denoising_loss
from genlab.diffusion.samplers import sample_diffusion
from genlab.diffusion.schedules import NoiseSchedule, scheduler_settings
from genlab.errors import ConfigError
from genlab.families.ddpm import DDPM
from genlab.nets.unet import UNet

T = 1000


def linear_alphas_cumprod(timesteps: int = T, start: float = 1e-4, end: float = 0.02) -> np.ndarray:
    """Ho et al. 2020: beta_t evenly spaced from 1e-4 to 0.02; abar_t = prod_{s <= t} (1 - beta_s)."""
    return np.cumprod(1 - np.linspace(start, end, timesteps, dtype=np.float64))


def cosine_abar(t: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * pi / 2)^2."""
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(0)


class Stub(nn.Module):
    """A denoiser whose output is a known function of its input: 0.5 x + t / 1000 (+ the label)."""

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        shift = t.view(-1, 1, 1, 1) / 1000 + (0 if labels is None else labels.view(-1, 1, 1, 1).float())
        return 0.5 * x + shift


def stub_module(**options) -> DDPM:
    return DDPM(net={"denoiser": Stub()}, image_shape=(1, 2, 2), **options)


# --- schedules and the forward process ---------------------------------------------------


@pytest.mark.parametrize("t", [0, 1, 250, 500, 999])
def test_the_linear_schedule_is_the_papers_betas_and_their_cumulative_product(t):
    schedule = NoiseSchedule("linear", T)
    assert schedule.betas[t].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * t / (T - 1), rel=1e-6)
    assert schedule.alphas_cumprod[t].item() == pytest.approx(linear_alphas_cumprod()[t], rel=1e-5)


@pytest.mark.parametrize("t", [0, 100, 500, 900])
def test_the_cosine_schedule_is_nichol_and_dhariwals_abar(t):
    # diffusers' alphas_cumprod[t] is abar after the (t+1)-th step: f((t+1)/T) / f(0) where beta is not capped
    assert NoiseSchedule("cosine", T).alphas_cumprod[t].item() == pytest.approx(cosine_abar(t + 1), rel=1e-5)
    assert NoiseSchedule("cosine", T).betas.max().item() == pytest.approx(0.999)  # the cap near t = T


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_forward_process_draws_from_its_closed_form_mean_and_variance(schedule):
    noise_schedule = NoiseSchedule(schedule, T)
    x0 = torch.tensor([-0.8, 0.1, 0.6]).view(1, 3, 1, 1).expand(40000, 3, 1, 1)
    torch.manual_seed(0)
    for t in (10, 300, 700):
        abar = noise_schedule.alphas_cumprod[t].item()
        xt = noise_schedule.q_sample(x0, torch.randn(x0.shape), torch.full((len(x0),), t))
        mean, variance = xt.mean(0).flatten(), xt.var(0).flatten()
        assert torch.allclose(mean, math.sqrt(abar) * x0[0].flatten(), atol=0.015)
        assert torch.allclose(variance, torch.full((3,), 1 - abar), rtol=0.03, atol=1e-3)


def test_the_v_target_is_salimans_and_hos_and_diffusers():
    from diffusers import DDPMScheduler

    schedule = NoiseSchedule("cosine", T, prediction="v")
    x0, noise = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    t = torch.tensor([0, 10, 500, 999])
    abar = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(schedule.target(x0, noise, t), abar.sqrt() * noise - (1 - abar).sqrt() * x0, atol=1e-6)
    reference = DDPMScheduler(**schedule.settings).get_velocity(x0, noise, t)
    assert torch.allclose(schedule.target(x0, noise, t), reference, atol=1e-6)
    assert torch.equal(NoiseSchedule("linear", T).target(x0, noise, t), noise)  # eps-prediction


# --- losses ------------------------------------------------------------------------------


def test_the_simple_loss_is_the_mean_squared_error_over_pixels():
    prediction = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])
    assert denoising_loss(prediction, target).item() == pytest.approx((1 + 4 + 0 + 4) / 4)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_the_ddpm_loss_of_a_batch_is_the_formula_on_the_same_draws(prediction):
    module = stub_module(prediction=prediction)
    images = torch.linspace(-1, 1, 24).view(6, 1, 2, 2)
    loss = module.objective(images, None, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)  # the same draws, in the module's order: noise, then t
    noise = torch.randn(images.shape, generator=draws)
    t = torch.randint(0, T, (6,), generator=draws)
    abar = torch.tensor(linear_alphas_cumprod()[t.numpy()], dtype=torch.float32).view(-1, 1, 1, 1)
    xt = abar.sqrt() * images + (1 - abar).sqrt() * noise
    target = noise if prediction == "epsilon" else abar.sqrt() * noise - (1 - abar).sqrt() * images
    expected = ((0.5 * xt + t.view(-1, 1, 1, 1) / 1000) - target).pow(2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


# --- samplers ------------------------------------------------------------------------------

MU, SIGMA = 0.2, 0.4  # the 1-D Gaussian "data set" of the exact-score sampler tests (2% of it beyond [-1, 1])


def exact_prediction(settings: dict, prediction: str, schedule: str = "linear"):
    """E[eps | x_t] (or E[v | x_t]) for x_0 ~ N(MU, SIGMA^2): the output of a perfectly trained network."""
    abars = NoiseSchedule(**{"schedule": schedule, "timesteps": T, "prediction": prediction}).alphas_cumprod

    def predict(x: Tensor, t: Tensor) -> Tensor:
        abar = abars[int(t)].double()
        variance = abar * SIGMA**2 + 1 - abar
        centred = x.double() - abar.sqrt() * MU
        eps = (1 - abar).sqrt() * centred / variance
        if prediction == "epsilon":
            return eps.float()
        x0 = MU + abar.sqrt() * SIGMA**2 * centred / variance
        return (abar.sqrt() * eps - (1 - abar).sqrt() * x0).float()

    return predict


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
# Step counts at which each sampler has converged on this Gaussian. Fewer steps lose spread, as the papers'
# samplers do: ancestral DDPM at 100 strided steps (its beta~ leaves out Var[x_0 | x_t], the gap Nichol &
# Dhariwal's learned variances close), DDIM at 50 uniform steps (-6%), DPM-Solver++ at 20 (+5%).
@pytest.mark.parametrize(("method", "steps", "eta"), [("ddpm", 1000, 0.0), ("ddim", 200, 0.0), ("ddim", 1000, 1.0),
                                                      ("dpm++", 50, 0.0)])
def test_each_sampler_with_the_exact_score_draws_the_target_gaussian(method, steps, eta, prediction):
    settings = scheduler_settings("linear", T, prediction)
    x = torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    samples = sample_diffusion(exact_prediction(settings, prediction), x, settings, method, steps, eta,
                               generator=torch.Generator().manual_seed(1)).clamp(-1, 1)
    # images are clamped to [-1, 1], so the target is the clamped Gaussian's mean and spread
    target = (MU + SIGMA * torch.randn(10**6, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    assert samples.mean().item() == pytest.approx(target.mean().item(), abs=0.01)
    assert samples.std().item() == pytest.approx(target.std().item(), rel=0.03)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize(("method", "steps"), [("dpm++", 20), ("dpm++", 50), ("ddim", 200)])
def test_the_samplers_draw_the_target_gaussian_on_the_cosine_schedule_too(method, steps, prediction):
    # the cosine schedule's sigma_max ~2e4 once collapsed dpm++'s Karras steps onto t = T - 1 (an IndexError)
    settings = scheduler_settings("cosine", T, prediction)
    x = torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    samples = sample_diffusion(exact_prediction(settings, prediction, "cosine"), x, settings, method, steps,
                               generator=torch.Generator().manual_seed(1)).clamp(-1, 1)
    target = (MU + SIGMA * torch.randn(10**6, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    assert samples.mean().item() == pytest.approx(target.mean().item(), abs=0.01)
    assert samples.std().item() == pytest.approx(target.std().item(), rel=0.05)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 20, 50])
def test_dpm_solver_steps_through_distinct_decreasing_timesteps(schedule, steps):
    from genlab.diffusion.samplers import diffusion_scheduler

    scheduler = diffusion_scheduler("dpm++", scheduler_settings(schedule, T, "epsilon"))
    scheduler.set_timesteps(steps)
    times = scheduler.timesteps.tolist()
    assert len(times) == steps and all(a > b for a, b in zip(times, times[1:]))


@pytest.fixture(scope="module")
def small_ddpm(tmp_path_factory):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=["model=cddpm", "model.net.denoiser.width=8"])
    torch.manual_seed(0)
    family = build_family(cfg)
    # random, non-zero output layers: the zero-initialised net would predict eps = 0 everywhere
    nn.init.normal_(family.denoiser.out[-1].weight, std=0.3)
    return family


def test_ddim_with_eta_0_is_deterministic_and_eta_1_draws_from_the_generator(small_ddpm):
    ddim = dict(method="ddim", steps=5, eta=0.0)
    noise = small_ddpm.sample_noise(3, torch.Generator().manual_seed(0))
    first = small_ddpm.sample(noise=noise, generator=torch.Generator().manual_seed(1), **ddim)
    other_seed = small_ddpm.sample(noise=noise, generator=torch.Generator().manual_seed(2), **ddim)
    assert torch.equal(first, other_seed), "DDIM at eta = 0 draws no noise after x_T"
    stochastic = dict(method="ddim", steps=5, eta=1.0)
    a = small_ddpm.sample(noise=noise, generator=torch.Generator().manual_seed(1), **stochastic)
    b = small_ddpm.sample(noise=noise, generator=torch.Generator().manual_seed(1), **stochastic)
    c = small_ddpm.sample(noise=noise, generator=torch.Generator().manual_seed(2), **stochastic)
    assert torch.isfinite(a).all(), "DDIM at eta = 1 on the cosine schedule (abar_T ~ 2e-9) stays finite"
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_ancestral_sampler_is_fixed_by_the_seed(small_ddpm):
    a = small_ddpm.sample(4, generator=torch.Generator().manual_seed(3), method="ddpm", steps=4)
    b = small_ddpm.sample(4, generator=torch.Generator().manual_seed(3), method="ddpm", steps=4)
    assert torch.equal(a, b) and a.shape == (4, 1, 28, 28) and a.abs().max() <= 1


def test_sampler_settings_record_the_method_steps_and_network_evaluations(small_ddpm):
    assert small_ddpm.sampler_settings({}) == {"method": "dpm++", "steps": 20, "guidance": 2.0, "evaluations": 80 // 2}
    assert small_ddpm.sampler_settings({"guidance": 1.0, "steps": 7})["evaluations"] == 7
    assert small_ddpm.sampler_options() == ["method", "steps", "eta", "guidance"]


def test_the_trajectory_runs_from_the_noise_to_the_sample(small_ddpm):
    frames = small_ddpm.trajectory(2, 4, torch.Generator().manual_seed(0), method="ddim", steps=6)
    noise = small_ddpm.sample_noise(2, torch.Generator().manual_seed(0)).clamp(-1, 1)
    final = small_ddpm.sample(noise=small_ddpm.sample_noise(2, torch.Generator().manual_seed(0)), method="ddim", steps=6)
    assert frames.shape == (2, 4, 1, 28, 28)
    assert torch.equal(frames[:, 0], noise) and torch.allclose(frames[:, -1], final)


# --- classifier-free guidance ------------------------------------------------------------------


def test_guidance_mixes_the_conditional_and_unconditional_predictions():
    calls = []

    def predict(x, t, labels):
        calls.append(len(x))
        return x * 0 + labels.view(-1, 1).float()  # "cond" = label, "uncond" = the null label (10)

    x, labels = torch.zeros(3, 1), torch.tensor([0, 4, 7])
    out = guided(predict, x, torch.tensor(5.0), labels, scale=3.0, null_label=10)
    assert torch.allclose(out.flatten(), 10 + 3.0 * (labels.float() - 10))
    assert calls == [6], "one batched call for both predictions"
    assert torch.equal(guided(predict, x, torch.tensor(5.0), labels, 1.0, 10).flatten(), labels.float())


def test_label_dropout_replaces_the_asked_share_with_the_null_label():
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (100000,))
    dropped = drop_labels(labels, 0.2, null_label=10)
    share = (dropped == 10).float().mean().item()
    assert share == pytest.approx(0.2, abs=0.005)
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept])


# --- the UNet ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "mults", "attention"), [((1, 28, 28), (1, 2, 2), (7,)), ((3, 32, 32), (1, 2, 2, 2), (16,))])
def test_the_unet_maps_an_image_to_its_shape_and_sees_the_time_and_class(shape, mults, attention):
    torch.manual_seed(0)
    net = UNet(shape, width=8, channel_mults=mults, attention_resolutions=attention, num_classes=10)
    for parameter in net.parameters():  # the zero-initialised last layers of each block would hide the embedding
        if not parameter.any():
            nn.init.normal_(parameter, std=0.1)
    x = torch.randn(2, *shape)
    out = net(x, torch.tensor([10.0, 10.0]), torch.tensor([1, 1]))
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, torch.tensor([900.0, 900.0]), torch.tensor([1, 1])))
    assert not torch.allclose(out, net(x, torch.tensor([10.0, 10.0]), torch.tensor([2, 2])))
    assert not torch.allclose(out, net(x, torch.tensor([10.0, 10.0]), None)), "no labels: the null class"


def test_a_unet_too_deep_for_the_image_is_refused_by_key():
    with pytest.raises(ConfigError, match=r"model.net.denoiser.channel_mults"):
        UNet((1, 28, 28), channel_mults=(1, 2, 2, 2))


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"method": "euler"}, r"sampler.method='euler' is not known for this model; choose one of: ddpm, ddim, dpm\+\+"),
    ({"steps": 0}, r"sampler.steps=0 is not valid"),
    ({"steps": 1001}, r"sampler.steps=1001 is not valid: it must be a positive integer of at most model.timesteps=1000"),
    ({"steps": 2.5}, r"sampler.steps=2.5 is not valid"),
    ({"method": "dpm++", "eta": 0.5}, r"sampler.eta=0.5 applies to method=ddim only"),
    ({"method": "ddim", "eta": -1}, r"sampler.eta=-1 is not valid"),
    ({"guidance": 2.0}, r"sampler.guidance=2.0 needs a conditional model"),
])
def test_bad_sampler_options_are_refused_by_key(options, message):
    with pytest.raises(ConfigError, match=message):
        stub_module(sampler={"method": "ddim", "steps": 3}).sample(1, **options)


@pytest.mark.parametrize(("options", "message"), [
    ({"schedule": "quadratic"}, r"model.schedule='quadratic' is not known; choose one of: linear, cosine"),
    ({"prediction": "x0"}, r"model.prediction='x0' is not known; choose one of: epsilon, v"),
    ({"timesteps": 0}, r"model.timesteps=0 is not valid"),
    ({"sampler": {"method": "heun", "steps": 3}}, r"sampler.method='heun' is not known"),
    ({"sampler": {"stepz": 3}}, r"model.sampler.stepz is not a sampler option"),
    ({"label_dropout": 1.0}, r"model.label_dropout=1.0 is not valid"),
])
def test_bad_model_settings_are_refused_by_key(options, message):
    with pytest.raises(ConfigError, match=message):
        stub_module(**options)


def test_a_conditional_model_with_negative_guidance_is_refused(small_ddpm):
    with pytest.raises(ConfigError, match=r"sampler.guidance=-1.0 is not valid"):
        small_ddpm.sample(2, guidance=-1.0, steps=2)
