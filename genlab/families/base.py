"""What every family's math object offers: noise in, images out, and the loss its training minimises.

A family (a GAN, a VAE, DDPM, flow matching, ...) is an `nn.Module` around plain networks: it owns
its loss and its sampling, and nothing about how it is trained (optimizers, EMA, logging, checkpoints,
Lightning). So a hand-written PyTorch loop can train and sample it as well as genlab's own loops
(genlab/modules/), as lucidrains' `GaussianDiffusion` and torchcfm's matchers are used:

    family = DDPM(net={"denoiser": unet}, image_shape=(1, 28, 28))
    optimizer = torch.optim.Adam(family.parameters_of("generator"), lr=1e-3)
    for images, labels in batches:
        loss = family.loss(images, labels)["loss"]
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    images = family.sample(16, generator=torch.Generator().manual_seed(0))

`roles` names the optimizer entries a family trains with (configs/optimizer/*.yaml): one (`generator`)
for the families that minimise one loss, two (`generator`, `discriminator`) for a two-player game.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError, is_integer, is_positive_integer, require

# decode's own parameters; any other keyword is a sampler option
DECODE_INPUTS = {"self", "noise", "labels", "generator"}
# a family's training terms: "loss" (what is minimised, with its graph) and detached values to log
Terms = dict[str, Tensor]


def latent_vector(latent_dim: Any) -> tuple[int]:
    """The noise shape of a family with a vector latent z ~ N(0, I) of `model.latent_dim` entries."""
    require(is_positive_integer(latent_dim), "model.latent_dim", latent_dim, "a positive integer")
    return (latent_dim,)


def require_networks(net: Mapping[str, nn.Module], roles: Iterable[str], family: str, fix: str) -> None:
    """Refuse nets that do not fill the family's roles, naming the net option that does."""
    missing = [role for role in roles if role not in net]
    if missing:
        wanted = " and ".join(f"model.net.{role}" for role in roles)
        raise ConfigError(f"{family} needs {wanted}, got {sorted(net)}: use {fix}")


def check_teacher_fits(student: "Family", teacher: "Family", unconditional: str, conditional: str) -> None:
    """Refuse a distillation teacher of other images or other classes than its student's, naming the model options
    (`unconditional`, `conditional`) that take each kind of teacher."""
    if tuple(teacher.noise_shape) != tuple(student.noise_shape):
        raise ConfigError(f"model.teacher makes images of shape {tuple(teacher.noise_shape)}, this data's are"
                          f" {tuple(student.noise_shape)}: distil a teacher trained on the same data")
    if teacher.num_classes != student.num_classes:
        raise ConfigError(f"model.teacher has model.num_classes={teacher.num_classes}, the student {student.num_classes}:"
                          f" use model={conditional} for a conditional teacher and model={unconditional} for an"
                          " unconditional one")


class Family(nn.Module):
    """Base of every family: its noise, its class conditioning, and `sample`, the one way images are made.

    A subclass states the shape of the noise its samples start from (`noise_shape`), which network
    makes the images (`image_network`, the one an EMA averages) and how noise becomes images
    (`decode`, in one pass or many steps; its keyword arguments are the family's sampler options).
    """

    # how `genlab sample` walks between two noise draws: straight lines suit low-dimensional latents;
    # families whose noise is a whole image set "spherical" (a straight line's middle has too small a norm)
    interpolation = "linear"
    # the optimizer entries this family trains with, each over `parameters_of(role)`
    roles: tuple[str, ...] = ("generator",)

    def __init__(self, noise_shape: tuple[int, ...], num_classes: int = 0) -> None:
        super().__init__()
        require(is_integer(num_classes) and num_classes >= 0, "model.num_classes", num_classes,
                "a whole number >= 0 (0: unconditional)")
        self.noise_shape = tuple(noise_shape)
        self.num_classes = int(num_classes)
        # follows the family to its device, so that noise is drawn where the networks are
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    # --- what a family defines ----------------------------------------------------------

    def image_network(self) -> nn.Module:
        """The network whose weights make the images, the one an EMA averages (a GAN's generator, a VAE's decoder)."""
        raise NotImplementedError

    def parameters_of(self, role: str) -> Iterable[nn.Parameter]:
        """The parameters optimizer `role` updates."""
        raise NotImplementedError

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Images in [-1, 1] from `noise` (and class labels, for conditional families).

        Families with a sampler take its options as further keyword arguments (steps, guidance,
        ...); `generator` seeds any randomness the sampler draws along the way.
        """
        raise NotImplementedError

    # --- making images ------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def labels_of(self, labels: Tensor) -> Tensor | None:
        """A batch's labels as the family reads them: kept by conditional families, None for the others."""
        return labels if self.conditional else None

    def condition_of(self, batch: tuple[Tensor, ...]) -> Any:
        """What the family's networks are conditioned on in a training batch (images, labels[, task input]): the
        class labels for conditional families, None for the others; an image-to-image family's is its input."""
        return self.labels_of(batch[1])

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None = None, kind: str = "normal") -> Tensor:
        """N(0, I) (or U(0, 1)) noise on the family's device, from `generator` (a CPU one) when given."""
        device = "cpu" if generator is not None else self.device
        values = torch.randn(shape, generator=generator, device=device) if kind == "normal" else \
            torch.rand(shape, generator=generator, device=device)
        return values.to(self.device)

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """N(0, I) noise of `noise_shape`: what `decode` turns into n images."""
        return self.draw((n, *self.noise_shape), generator)

    def sampler_options(self) -> list[str]:
        """The keyword options this family's sampler takes (`decode`'s own arguments)."""
        parameters = inspect.signature(self.decode).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in parameters if p.kind in named and p.name not in DECODE_INPUTS]

    def sampler_settings(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The sampler settings a sample() call with `options` uses, as `genlab eval` records them in
        metrics.json: the options given here; many-step families add their defaults and step counts."""
        return dict(options or {})

    def check_options(self, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.sampler_options()))
        if unknown:
            valid = ", ".join(self.sampler_options()) or "none"
            raise ConfigError(f"sampler.{unknown[0]} is not an option of {type(self).__name__}'s sampler; its options: {valid}")

    def cycled_labels(self, n: int) -> Tensor | None:
        """Class i % num_classes for image i: what conditional families draw when no labels are given."""
        return torch.arange(n, device=self.device) % self.num_classes if self.conditional else None

    @torch.no_grad()
    def sample(
        self,
        n: int | None = None,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        **options: Any,
    ) -> Tensor:
        """`n` images in [-1, 1] (or one per given noise row), in eval mode (BatchNorm running statistics).

        Conditional families make class `labels[i]` for image i, cycling through the classes when
        no labels are given. `generator` seeds the noise and the sampler, so a fixed seed gives
        fixed images; `options` go to the family's sampler.
        """
        self.check_options(options)
        if noise is None:
            if n is None:
                raise ValueError("sample() needs n, labels or noise")
            noise = self.sample_noise(n, generator)
        labels = (self.cycled_labels(len(noise)) if labels is None else labels.to(self.device)) if self.conditional else None
        was_training = self.training
        self.eval()
        try:
            return self.decode(noise.to(self.device), labels, generator=generator, **options)
        finally:
            self.train(was_training)

    def trajectory(
        self, n: int, frames: int, generator: torch.Generator | None = None, **options: Any
    ) -> Tensor | None:
        """(n, frames, C, H, W): `n` samples on their way from noise to image, for `genlab sample`'s
        trajectory strip; None for families that make an image in one pass."""
        return None

    def standing_batches(self) -> Callable[[int], None]:
        """Runs of the image network on n noise draws (and cycling labels), for an EMA's batch norm statistics.

        Drawn from their own generator, seeded alike each time: the statistics of an average are
        reproducible, and training's random draws are left untouched.
        """
        seeded = torch.Generator().manual_seed(0)

        def run(n: int) -> None:
            self.decode(self.sample_noise(n, seeded), self.cycled_labels(n), generator=seeded)

        return run

    def prepare(self, planned_batches: Callable[[], float] | None = None) -> None:
        """Work done once before training starts, not counted as training time (a distilling family's teacher
        samples); `planned_batches()`: the training batches the run plans (inf where only time or a budget
        callback ends it), asked only where needed (Lightning sets up the data to count them). None by default."""

    # --- state beyond the weights -------------------------------------------------------

    def training_state(self) -> dict[str, Any]:
        """What training changed besides tensors (an adaptive augmentation's probability), for checkpoints."""
        return {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore `training_state()`'s values."""


class OneLossFamily(Family):
    """A family trained by minimising one loss over all its trainable weights (VAEs, DDPM, flow matching)."""

    def loss(self, images: Tensor, labels: Tensor | None) -> Terms:
        """The training terms on a batch of images in [-1, 1]: `loss` (with its graph) and detached values to log."""
        raise NotImplementedError

    def validation_terms(self, images: Tensor, labels: Tensor | None, batch_index: int) -> Terms:
        """Detached values to log on a held-out batch (`val/<name>`); the same draws every epoch where the loss draws noise."""
        raise NotImplementedError
