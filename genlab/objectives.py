"""GAN and VAE objectives as small pure functions of tensors.

Every adversarial loss takes the discriminator's raw outputs (logits for the
BCE-based losses, critic scores otherwise) and returns a scalar to *minimise*.
They sit side by side so that they can be compared line by line with their papers.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError

# --- original GAN (Goodfellow et al. 2014) --------------------------------------
# D(x) = sigmoid(logit). log D(x) = -softplus(-logit), log(1 - D(x)) = -softplus(logit).


def gan_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """-[log D(x) + log(1 - D(G(z)))]: binary cross-entropy, real=1, fake=0."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def gan_minimax_generator_loss(fake: Tensor) -> Tensor:
    """log(1 - D(G(z))): the generator's side of the original minimax game (saturates early)."""
    return -F.softplus(fake).mean()


def gan_nonsaturating_generator_loss(fake: Tensor) -> Tensor:
    """-log D(G(z)): the paper's non-saturating heuristic, used by DCGAN and most GANs since."""
    return F.softplus(-fake).mean()


# --- WGAN (Arjovsky et al. 2017) and WGAN-GP (Gulrajani et al. 2017) -------------


def wasserstein_critic_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[f(G(z))] - E[f(x)]: the negated Kantorovich-Rubinstein estimate of W1."""
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake: Tensor) -> Tensor:
    """-E[f(G(z))]."""
    return -fake.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP's E[(||grad f(x_hat)||_2 - 1)^2] on x_hat = eps x + (1 - eps) x_fake, eps ~ U[0, 1].

    `critic` maps a batch of images to one score each; extra arguments (class labels)
    are bound by the caller. The graph is kept so the penalty trains the critic.

    Under float16 autocast (trainer.precision=16-mixed) the penalty runs in float32: its input
    gradients would under- or overflow in float16, and no loss scale reaches `autograd.grad`.
    """
    device_type = real.device.type
    if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16:
        with torch.autocast(device_type, enabled=False):
            return gradient_penalty(critic, real.float(), fake.float(), generator)
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, device=real.device, dtype=real.dtype, generator=generator)
    interpolates = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(interpolates)
    (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    grad_norm = grads.flatten(1).norm(2, dim=1)
    return ((grad_norm - 1) ** 2).mean()


def zero_centered_gradient_penalty(critic: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """E[||grad_x D(x)||^2] at the given images: R1's and R2's squared gradient norm (Mescheder et al. 2018).

    Zero-centred, unlike WGAN-GP's: it pulls D's slope to zero on the data, which makes the game
    converge locally. The graph is kept so the penalty trains the critic; under float16 autocast it
    runs in float32, as `gradient_penalty` does.
    """
    device_type = images.device.type
    if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16:
        with torch.autocast(device_type, enabled=False):
            return zero_centered_gradient_penalty(critic, images.float())
    images = images.detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(images).sum(), images, create_graph=True)
    return grads.flatten(1).pow(2).sum(1).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, gamma: float) -> Tensor:
    """R1 (Mescheder et al. 2018, eq. 9): gamma/2 E_{x ~ data}[||grad_x D(x)||^2], on real images."""
    return 0.5 * gamma * zero_centered_gradient_penalty(critic, real)


def r2_penalty(critic: Callable[[Tensor], Tensor], fake: Tensor, gamma: float) -> Tensor:
    """R2 (Mescheder et al. 2018, eq. 10): gamma/2 E_{x ~ G}[||grad_x D(x)||^2], on generated images."""
    return 0.5 * gamma * zero_centered_gradient_penalty(critic, fake)


def clip_weights_(module: nn.Module, clip_value: float) -> None:
    """WGAN's Lipschitz constraint: clamp every critic parameter to [-c, c] in place."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.clamp_(-clip_value, clip_value)


# --- LSGAN (Mao et al. 2017), the a=0, b=1, c=1 coding of eq. (2) ------------------


def least_squares_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def least_squares_generator_loss(fake: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * ((fake - 1) ** 2).mean()


def least_squares_mse_generator_loss(fake: Tensor) -> Tensor:
    """E[(D(G(x)) - 1)^2]: CycleGAN's generator term (its code's MSELoss), twice LSGAN's 1/2 E[(D(G(z)) - 1)^2];
    its critic's is LSGAN's, halved as CycleGAN halves it."""
    return ((fake - 1) ** 2).mean()


# --- hinge loss (Lim & Ye 2017; Miyato et al. 2018 with spectral norm) --------------


def hinge_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_generator_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))]."""
    return -fake.mean()


# --- relativistic pairing GAN, RpGAN (Jolicoeur-Martineau 2018; Huang et al. 2024, R3GAN) ---
# f(t) = softplus(t) = -log sigmoid(-t); each fake is paired with a real of the same batch position.


def relativistic_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """E[f(D(G(z)) - D(x))]: D learns that a real looks more real than its paired fake."""
    return F.softplus(fake - real).mean()


def relativistic_generator_loss(fake: Tensor, real: Tensor) -> Tensor:
    """E[f(D(x) - D(G(z)))]: the same game with the roles swapped, so G needs the real scores too."""
    return F.softplus(real - fake).mean()


# --- auxiliary classifier GAN, ACGAN (Odena et al. 2017) ---------------------------
# L_C = E[log P(C = c | X_real)] + E[log P(C = c | X_fake)]: D maximises L_S + L_C, G maximises L_C - L_S.


def auxiliary_class_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """-E[log P(C = c | X)], the negated class log-likelihood of the images' labels (cross-entropy)."""
    return F.cross_entropy(logits, labels)


class AdversarialLoss(NamedTuple):
    """A discriminator loss, its generator loss, and how to read D's output as D(x) for logging.

    `generator` takes the fake scores, and the real scores too when `generator_sees_real`
    (relativistic losses): only then does the generator's step score the real batch.
    """

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[..., Tensor]
    readout: Callable[[Tensor], Tensor]
    generator_sees_real: bool = False

    def generator_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        """The generator's loss on D's scores of its images (and of the real batch, when the loss pairs them)."""
        return self.generator(fake, real) if self.generator_sees_real else self.generator(fake)


def _identity(scores: Tensor) -> Tensor:
    return scores


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "nonsaturating": AdversarialLoss(gan_discriminator_loss, gan_nonsaturating_generator_loss, torch.sigmoid),
    "minimax": AdversarialLoss(gan_discriminator_loss, gan_minimax_generator_loss, torch.sigmoid),
    "wasserstein": AdversarialLoss(wasserstein_critic_loss, wasserstein_generator_loss, _identity),
    "least_squares": AdversarialLoss(least_squares_discriminator_loss, least_squares_generator_loss, _identity),
    "least_squares_mse": AdversarialLoss(least_squares_discriminator_loss, least_squares_mse_generator_loss, _identity),
    "hinge": AdversarialLoss(hinge_discriminator_loss, hinge_generator_loss, _identity),
    "relativistic": AdversarialLoss(relativistic_discriminator_loss, relativistic_generator_loss, _identity, True),
}


def on_float32_scores(loss: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """`loss` computed on float32 scores. Under mixed precision a critic's scores come in float16 or bfloat16, in
    which a mean or a square loses digits, and float16's overflows past 65504 into the inf that on_nonfinite takes
    for divergence."""

    @functools.wraps(loss)
    def in_float32(*scores: Tensor | None) -> Tensor:
        return loss(*(None if s is None else s.float() for s in scores))

    return in_float32


def adversarial_loss(name: str) -> AdversarialLoss:
    """Look a loss up by its config name (`model.loss`), listing the valid names when it is unknown; its two
    players' losses take float32 scores whatever the training precision."""
    try:
        loss = ADVERSARIAL_LOSSES[name]
    except KeyError:
        valid = ", ".join(sorted(ADVERSARIAL_LOSSES))
        raise ConfigError(f"model.loss={name!r} is not a known adversarial loss; choose one of: {valid}") from None
    return loss._replace(discriminator=on_float32_scores(loss.discriminator), generator=on_float32_scores(loss.generator))


# --- VAE (Kingma & Welling 2013) ------------------------------------------------------


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample whose gradient flows into mu and logvar."""
    eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, in closed form (Kingma & Welling, app. B)."""
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)


def bernoulli_reconstruction_loss(logits: Tensor, target: Tensor) -> Tensor:
    """-log p(x|z) per sample for a Bernoulli decoder; `target` holds pixel intensities in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def gaussian_reconstruction_loss(mean: Tensor, target: Tensor) -> Tensor:
    """-log p(x|z) per sample for a unit-variance Gaussian decoder, up to its constant: 1/2 ||x - mean||^2."""
    return 0.5 * ((mean - target) ** 2).flatten(1).sum(1)


RECONSTRUCTION_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "bernoulli": bernoulli_reconstruction_loss,
    "gaussian": gaussian_reconstruction_loss,
}


def reconstruction_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Look a VAE likelihood up by its config name (`model.likelihood`)."""
    try:
        return RECONSTRUCTION_LOSSES[name]
    except KeyError:
        valid = ", ".join(sorted(RECONSTRUCTION_LOSSES))
        raise ConfigError(f"model.likelihood={name!r} is not known; choose one of: {valid}") from None
