"""Flow matching (model=flow, cflow): the linear path, the loss, the time distributions and the Euler and
Heun integrators against their closed forms, and bad options refused by key."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from genlab.diffusion.losses import flow_matching_loss
from genlab.diffusion.paths import linear_path, path_velocity, u_shaped_times
from genlab.diffusion.samplers import sample_flow
from genlab.errors import ConfigError
from genlab.families.flow import TIME_SCALE, FlowMatching


class Stub(nn.Module):
    """A velocity net whose output is a known function of its input: 0.5 x + t / 1000."""

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        return 0.5 * x + t.view(-1, 1, 1, 1) / 1000


def stub_module(**options) -> FlowMatching:
    return FlowMatching(net={"denoiser": Stub()}, image_shape=(1, 2, 2), **options)


def test_the_linear_path_and_its_velocity_on_hand_made_tensors():
    x0, x1 = torch.tensor([[0.0, 2.0]]), torch.tensor([[4.0, -2.0]])
    assert torch.equal(linear_path(x0, x1, torch.tensor([0.25])), torch.tensor([[1.0, 1.0]]))
    assert torch.equal(linear_path(x0, x1, torch.tensor([0.0])), x0)
    assert torch.equal(linear_path(x0, x1, torch.tensor([1.0])), x1)
    assert torch.equal(path_velocity(x0, x1), torch.tensor([[4.0, -4.0]]))


def test_the_flow_matching_loss_is_the_squared_error_to_x1_minus_x0():
    x0, x1 = torch.tensor([[0.0, 2.0]]), torch.tensor([[4.0, -2.0]])
    prediction = torch.tensor([[3.0, -4.0]])
    assert flow_matching_loss(prediction, x0, x1).item() == pytest.approx(((3 - 4) ** 2 + 0) / 2)


def test_the_modules_loss_is_the_formula_on_the_same_draws():
    module = stub_module()
    images = torch.linspace(-1, 1, 24).view(6, 1, 2, 2)
    loss = module.objective(images, None, torch.Generator().manual_seed(4))
    draws = torch.Generator().manual_seed(4)  # the module's order: noise, then t
    noise = torch.randn(images.shape, generator=draws)
    t = torch.rand(6, generator=draws).view(-1, 1, 1, 1)
    xt = (1 - t) * noise + t * images
    expected = ((0.5 * xt + t * TIME_SCALE / 1000) - (images - noise)).pow(2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_logit_normal_times_have_the_asked_mean_and_spread_in_logit_space():
    torch.manual_seed(0)
    t = stub_module(time_distribution="logit_normal", time_mean=0.5, time_std=0.8).sample_times(100000)
    logits = torch.log(t / (1 - t))
    assert logits.mean().item() == pytest.approx(0.5, abs=0.01)
    assert logits.std().item() == pytest.approx(0.8, rel=0.01)
    uniform = stub_module().sample_times(100000)
    assert uniform.mean().item() == pytest.approx(0.5, abs=0.005) and uniform.min() >= 0 and uniform.max() < 1


def u_shaped_cdf(t: Tensor, a: float) -> Tensor:
    """The closed-form CDF of Lee et al.'s density a (e^{at} + e^{a(1 - t)}) / (2 (e^a - 1)) on [0, 1]."""
    return ((a * t).exp() - (a * (1 - t)).exp() + math.exp(a) - 1) / (2 * math.expm1(a))


def test_u_shaped_times_invert_the_exponential_half_and_follow_the_closed_form_cdf():
    a = 4.0
    u = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    heads, tails = u_shaped_times(u, torch.ones_like(u), a), u_shaped_times(u, torch.zeros_like(u), a)
    half_cdf = lambda s: torch.expm1(a * s) / math.expm1(a)  # noqa: E731  the exponential half, C e^{as}
    assert torch.allclose(half_cdf(heads), u) and torch.allclose(half_cdf(1 - tails), u)
    assert torch.allclose(u_shaped_cdf(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), a),
                          torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    draws = torch.rand(2, 200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = u_shaped_times(draws[0], draws[1], a).sort().values
    empirical = torch.arange(1, len(t) + 1, dtype=torch.float64) / len(t)
    assert (empirical - u_shaped_cdf(t, a)).abs().max() < 0.004  # Kolmogorov-Smirnov, 1% level: 0.0036
    # the ends get cosh(a / 2) ~ 3.8 times the middle's density at a = 4: about a fifth of the draws fall in
    # [0, 0.05] and [0.95, 1] together, against a tenth under U(0, 1)
    ends = ((t < 0.05) | (t > 0.95)).double().mean().item()
    assert ends == pytest.approx(float(2 * u_shaped_cdf(torch.tensor(0.05, dtype=torch.float64), a)), abs=0.003)


def test_the_module_draws_u_shaped_times_from_its_generator_with_its_concentration():
    module = stub_module(time_distribution="u_shaped", time_concentration=2.5)
    draws = torch.rand(2, 64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(module.sample_times(64, torch.Generator().manual_seed(3)),
                       u_shaped_times(draws[0], draws[1], 2.5))


@pytest.mark.parametrize(("method", "factor"), [("euler", lambda h: 1 + h), ("heun", lambda h: 1 + h + h * h / 2)])
def test_euler_and_heun_take_their_textbook_steps(method, factor):
    # on dx/dt = x, one step multiplies by 1 + h (Euler) or 1 + h + h^2/2 (Heun, second order)
    x = torch.ones(1, 1, 1, 1)
    calls = []
    out = sample_flow(lambda x, t: calls.append(float(t)) or x, x, method, steps=8)
    assert out.item() == pytest.approx(factor(1 / 8) ** 8, rel=1e-6)
    assert abs(out.item() - math.e) < (0.2 if method == "euler" else 0.01)
    assert len(calls) == (8 if method == "euler" else 16) and calls[0] == 0.0
    assert calls[-1] == pytest.approx(7 / 8 if method == "euler" else 1.0)


MU, SIGMA = 0.2, 0.4  # the 1-D Gaussian "data set" x_1 ~ N(MU, SIGMA^2) of the exact-velocity tests


def exact_velocity(x: Tensor, t: Tensor) -> Tensor:
    """E[x_1 - x_0 | x_t] for x_0 ~ N(0, 1), x_1 ~ N(MU, SIGMA^2) on the linear path: a perfectly trained net."""
    t = float(t)
    variance = (1 - t) ** 2 + t**2 * SIGMA**2
    centred = x.double() - t * MU
    x1 = MU + t * SIGMA**2 * centred / variance
    x0 = (1 - t) * centred / variance
    return (x1 - x0).float()


@pytest.mark.parametrize(("method", "steps"), [("euler", 100), ("heun", 10)])
def test_each_flow_sampler_with_the_exact_velocity_draws_the_target_gaussian(method, steps):
    x = torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    samples = sample_flow(exact_velocity, x, method, steps)
    assert samples.mean().item() == pytest.approx(MU, abs=0.01)
    assert samples.std().item() == pytest.approx(SIGMA, rel=0.02)


def test_the_flow_sampler_is_deterministic_and_ignores_the_generator():
    module = stub_module(sampler={"method": "heun", "steps": 3})
    noise = module.sample_noise(2, torch.Generator().manual_seed(0))
    a = module.sample(noise=noise, generator=torch.Generator().manual_seed(1))
    b = module.sample(noise=noise, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert module.sampler_settings({"steps": 4}) == {"method": "heun", "steps": 4, "evaluations": 8}
    assert module.sampler_options() == ["method", "steps", "guidance"]


@pytest.mark.parametrize(("options", "message"), [
    ({"method": "ddim"}, r"sampler.method='ddim' is not known for this model; choose one of: euler, heun"),
    ({"steps": -2}, r"sampler.steps=-2 is not valid: it must be a positive integer"),
    ({"eta": 0.5}, r"sampler.eta is not an option of FlowMatching's sampler; its options: method, steps, guidance"),
    ({"guidance": 3}, r"sampler.guidance=3 needs a conditional model"),
])
def test_bad_sampler_options_are_refused_by_key(options, message):
    with pytest.raises(ConfigError, match=message):
        stub_module(sampler={"method": "euler", "steps": 2}).sample(1, **options)


@pytest.mark.parametrize(("options", "message"), [
    ({"time_distribution": "beta"},
     r"model.time_distribution='beta' is not known; choose one of: uniform, logit_normal, u_shaped"),
    ({"time_distribution": "u_shaped", "time_concentration": 0}, r"model.time_concentration=0 is not valid"),
    ({"time_std": 0}, r"model.time_std=0 is not valid"),
    ({"sampler": {"method": "dpm++"}}, r"sampler.method='dpm\+\+' is not known"),
])
def test_bad_model_settings_are_refused_by_key(options, message):
    with pytest.raises(ConfigError, match=message):
        stub_module(**options)


def test_a_sampler_without_steps_names_the_key_to_set():
    with pytest.raises(ConfigError, match=r"sampler.steps has no value: set model.sampler.steps"):
        stub_module(sampler={"method": "euler"}).sample(1)
