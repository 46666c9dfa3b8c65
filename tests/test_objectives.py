"""Each objective against its published formula on hand-made values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genlab import objectives as obj
from genlab.errors import ConfigError

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-3.0, 0.0, 1.5])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_gan_discriminator_loss_is_binary_cross_entropy():
    expected = -mean(math.log(sigmoid(r)) for r in REAL) - mean(math.log(1 - sigmoid(f)) for f in FAKE)
    assert obj.gan_discriminator_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_generator_loss_is_log_one_minus_d():
    expected = mean(math.log(1 - sigmoid(f)) for f in FAKE)
    assert obj.gan_minimax_generator_loss(FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_nonsaturating_generator_loss_is_minus_log_d():
    expected = -mean(math.log(sigmoid(f)) for f in FAKE)
    assert obj.gan_nonsaturating_generator_loss(FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_wasserstein_losses():
    assert obj.wasserstein_critic_loss(REAL, FAKE).item() == pytest.approx(mean(FAKE.tolist()) - mean(REAL.tolist()))
    assert obj.wasserstein_generator_loss(FAKE).item() == pytest.approx(-mean(FAKE.tolist()))


def test_least_squares_losses():
    d = 0.5 * mean((r - 1) ** 2 for r in REAL.tolist()) + 0.5 * mean(f**2 for f in FAKE.tolist())
    g = 0.5 * mean((f - 1) ** 2 for f in FAKE.tolist())
    assert obj.least_squares_discriminator_loss(REAL, FAKE).item() == pytest.approx(d)
    assert obj.least_squares_generator_loss(FAKE).item() == pytest.approx(g)


def test_hinge_losses():
    d = mean(max(0.0, 1 - r) for r in REAL.tolist()) + mean(max(0.0, 1 + f) for f in FAKE.tolist())
    assert obj.hinge_discriminator_loss(REAL, FAKE).item() == pytest.approx(d)
    assert obj.hinge_generator_loss(FAKE).item() == pytest.approx(-mean(FAKE.tolist()))


def test_gradient_penalty_of_a_linear_critic_is_its_closed_form():
    # f(x) = <w, x> + b has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly.
    critic = nn.Linear(12, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.arange(12, dtype=torch.float32).view(1, 12) / 10)
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    penalty = obj.gradient_penalty(lambda x: critic(x.flatten(1)).squeeze(1), real, fake)
    expected = (critic.weight.norm() - 1) ** 2
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_keeps_the_graph_for_the_critic_update():
    critic = nn.Linear(4, 1)
    penalty = obj.gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(3, 4), torch.randn(3, 4))
    penalty.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    w = critic.weight.detach()
    assert torch.allclose(critic.weight.grad, 2 * (w.norm() - 1) * w / w.norm(), atol=1e-5)


def test_gradient_penalty_uses_interpolates_between_real_and_fake():
    # f(x) = ||x||^2 / 2 has gradient x, so the penalty sees x_hat itself: with real == fake, x_hat == real.
    real = torch.full((2, 3), 2.0)
    penalty = obj.gradient_penalty(lambda x: 0.5 * (x**2).sum(1), real, real.clone())
    assert penalty.item() == pytest.approx((math.sqrt(12) - 1) ** 2, rel=1e-5)


def test_gradient_penalty_under_float16_autocast_is_the_float32_penalty():
    # trainer.precision=16-mixed: float16 input gradients would under- or overflow, so the penalty runs in float32
    critic = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(12, 1))
    dtypes: list[torch.dtype] = []
    critic[0].register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    expected = obj.gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.float16):
        assert critic(real).dtype == torch.float16  # autocast does reach this critic
        penalty = obj.gradient_penalty(lambda x: critic(x).squeeze(1), real, fake, torch.Generator().manual_seed(0))
    assert penalty.dtype == torch.float32 and dtypes == [torch.float32, torch.float16, torch.float32]
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)


def test_clip_weights_bounds_every_parameter():
    net = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(100)
    obj.clip_weights_(net, 0.01)
    assert all(p.abs().max().item() <= 0.01 for p in net.parameters())


def test_gaussian_kl_matches_the_closed_form():
    mu = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.2, -0.3], [0.0, 0.0]])
    expected = [
        sum(0.5 * (math.exp(lv) + m**2 - 1 - lv) for m, lv in zip(mu_row, lv_row))
        for mu_row, lv_row in zip(mu.tolist(), logvar.tolist())
    ]
    divergence = obj.gaussian_kl_divergence(mu, logvar)
    assert divergence.tolist() == pytest.approx(expected, rel=1e-6)
    assert divergence[1].item() == 0.0  # the prior itself: no divergence


def test_reparameterize_is_mu_plus_sigma_eps():
    mu, logvar = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    eps = torch.randn((1, 2), generator=torch.Generator().manual_seed(3))
    z = obj.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(z, mu + torch.tensor([[1.0, 2.0]]) * eps)


def test_reconstruction_losses_are_negative_log_likelihoods_per_sample():
    target = torch.tensor([[0.0, 1.0, 0.25]])
    logits = torch.tensor([[0.3, -0.2, 1.0]])
    bce = -sum(t * math.log(sigmoid(l)) + (1 - t) * math.log(1 - sigmoid(l)) for t, l in zip(target[0].tolist(), logits[0].tolist()))
    assert obj.bernoulli_reconstruction_loss(logits, target).tolist() == pytest.approx([bce], rel=1e-6)
    mse = 0.5 * sum((t - l) ** 2 for t, l in zip(target[0].tolist(), logits[0].tolist()))
    assert obj.gaussian_reconstruction_loss(logits, target).tolist() == pytest.approx([mse], rel=1e-6)


def test_unknown_loss_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="hinge.*least_squares.*minimax.*nonsaturating.*relativistic.*wasserstein"):
        obj.adversarial_loss("wgann")


def _linear_critic() -> nn.Linear:
    critic = nn.Linear(12, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.arange(12, dtype=torch.float32).view(1, 12) / 10)
    return critic


def test_r1_of_a_linear_critic_is_half_gamma_times_the_squared_weight_norm():
    # D(x) = <w, x> + b has gradient w at every x, so gamma/2 E||grad D||^2 = gamma/2 ||w||^2
    critic = _linear_critic()
    penalty = obj.r1_penalty(lambda x: critic(x.flatten(1)).squeeze(1), torch.randn(5, 3, 2, 2), gamma=0.4)
    assert penalty.item() == pytest.approx(0.2 * critic.weight.pow(2).sum().item(), rel=1e-5)


def test_r2_is_the_same_penalty_on_the_images_it_is_given():
    # D(x) = ||x||^2 / 2 has gradient x: gamma/2 E||x||^2 on the (generated) batch itself
    fake = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    penalty = obj.r2_penalty(lambda x: 0.5 * (x**2).sum(1), fake, gamma=2.0)
    assert penalty.item() == pytest.approx(mean([5.0, 9.0]), rel=1e-6)


def test_r1_keeps_the_graph_for_the_critic_update():
    critic = nn.Linear(4, 1)
    obj.r1_penalty(lambda x: critic(x).squeeze(1), torch.randn(3, 4), gamma=1.0).backward()
    # d/dw (1/2 ||w||^2) = w
    assert torch.allclose(critic.weight.grad, critic.weight.detach(), atol=1e-6)


def test_relativistic_discriminator_loss_is_softplus_of_fake_minus_real_paired():
    expected = mean(math.log(1 + math.exp(f - r)) for r, f in zip(REAL.tolist(), FAKE.tolist()))
    assert obj.relativistic_discriminator_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_relativistic_generator_loss_is_softplus_of_real_minus_fake_paired():
    expected = mean(-math.log(sigmoid(-(r - f))) for r, f in zip(REAL.tolist(), FAKE.tolist()))
    assert obj.relativistic_generator_loss(FAKE, REAL).item() == pytest.approx(expected, rel=1e-6)


def test_the_relativistic_loss_gives_its_generator_the_real_scores_and_the_others_do_not():
    relativistic = obj.adversarial_loss("relativistic")
    assert relativistic.generator_sees_real
    assert relativistic.generator_loss(FAKE, REAL).item() == pytest.approx(obj.relativistic_generator_loss(FAKE, REAL).item())
    nonsaturating = obj.adversarial_loss("nonsaturating")
    assert not nonsaturating.generator_sees_real
    assert nonsaturating.generator_loss(FAKE).item() == pytest.approx(obj.gan_nonsaturating_generator_loss(FAKE).item())
