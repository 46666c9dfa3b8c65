"""How denoising families train: one network, one optimizer, a regression loss on noised images.

`DenoisingModule` is what DDPM (here) and flow matching (genlab/modules/flow.py) share: the UNet
as `model.net.denoiser`, one optimizer step per batch (one "generator step" on the common axis),
the EMA of the UNet that samples use, label dropout for classifier-free guidance, and sampler
options chosen at sampling time with defaults from `model.sampler`. A family says only what its
loss is (`loss`) and how it samples (`decode`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.guidance import drop_labels, guided
from genlab.diffusion.losses import denoising_loss
from genlab.diffusion.samplers import DIFFUSION_SAMPLERS, OnStep, check_method, evaluations, sample_diffusion
from genlab.diffusion.schedules import NoiseSchedule
from genlab.errors import ConfigError, is_number, is_positive_integer, require
from genlab.modules.base import GenerativeModule

SAMPLER_KEYS = ("method", "steps", "eta", "guidance")


class DenoisingModule(GenerativeModule):
    """Base of the families whose noise is an image, refined by `model.net.denoiser` over many steps.

    `label_dropout`: the share of training labels replaced by the "no class" token (conditional
    models), so that the same net predicts unconditionally for classifier-free guidance.
    `sampler`: the default sampler options (`method`, `steps`, ...) wherever a caller gives none.
    """

    interpolation = "spherical"  # the noise is a whole image: walk on the sphere Gaussian noise lives near

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        optimizer: Mapping[str, Any],
        image_shape: tuple[int, ...],
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
        ema: Mapping[str, Any] | None = None,
        on_nonfinite: str = "stop",
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer, tuple(image_shape), num_classes, on_nonfinite, speed)
        if "denoiser" not in net:
            raise ConfigError(f"{type(self).__name__} needs model.net.denoiser, got {sorted(net)}: use model/net=unet")
        require(is_number(label_dropout) and 0 <= label_dropout < 1, "model.label_dropout", label_dropout,
                "a number in [0, 1), e.g. 0.1")
        unknown = sorted(set(sampler or {}) - set(SAMPLER_KEYS))
        if unknown:
            raise ConfigError(f"model.sampler.{unknown[0]} is not a sampler option; its options: {', '.join(SAMPLER_KEYS)}")
        self.denoiser = net["denoiser"]
        self.label_dropout = float(label_dropout)
        self.sampler_defaults = {key: value for key, value in dict(sampler or {}).items() if value is not None}
        self._on_step: OnStep | None = None
        self.attach_ema(ema)  # `model.ema`: an average of the UNet, which samples then use
        self.save_hyperparameters(ignore=["net", "optimizer", "speed"])

    # --- what a family defines ----------------------------------------------------------

    def loss(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """The family's training loss on a batch of images in [-1, 1]; `generator` fixes its noise (validation)."""
        raise NotImplementedError

    def predict(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """The denoiser's output at (x, t); t as the family's sampler counts it."""
        return self.denoiser(x, t, labels)

    # --- training -----------------------------------------------------------------------

    def image_network(self) -> nn.Module:
        return self.denoiser

    @property
    def null_label(self) -> int:
        """The "no class" token of classifier-free guidance (genlab/nets/unet.py embeds num_classes + 1 classes)."""
        return self.num_classes

    def configure_optimizers(self) -> Any:
        optimizer = self._make_optimizer("generator", self.denoiser.parameters())
        schedulers = self._schedulers_for([optimizer])
        return ([optimizer], schedulers) if schedulers else optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        labels = drop_labels(batch[1], self.label_dropout, self.null_label) if self.conditional else None
        loss = self.loss(batch[0], labels)
        self.generator_steps += 1  # one update of the denoiser per batch
        if self.logs_this_step:
            self.log("train/loss", loss.detach(), prog_bar=True)
        # returning None makes Lightning skip this optimizer step
        return loss if self.loss_is_finite("train/loss", loss) else None

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # the same noise and times every validation epoch, so that val/loss moves only with the weights
        generator = torch.Generator().manual_seed(batch_idx)
        labels = batch[1] if self.conditional else None
        self.log("val/loss", self.loss(batch[0], labels, generator).detach(), sync_dist=True)

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None, kind: str = "normal") -> Tensor:
        """N(0, I) (or U(0, 1)) noise on the module's device, from `generator` (on the CPU) when one is given."""
        device = "cpu" if generator is not None else self.device
        values = torch.randn(shape, generator=generator, device=device) if kind == "normal" else \
            torch.rand(shape, generator=generator, device=device)
        return values.to(self.device)

    # --- sampling -----------------------------------------------------------------------

    def resolve_sampler(self, **given: Any) -> dict[str, Any]:
        """The sampler options a call uses: the given ones, else `model.sampler`'s; guidance checked against the model."""
        options = {**self.sampler_defaults, **{key: value for key, value in given.items() if value is not None}}
        if not self.conditional:
            if given.get("guidance") is not None:
                raise ConfigError(f"sampler.guidance={given['guidance']!r} needs a conditional model (model.num_classes > 0);"
                                  " this one is unconditional: leave sampler.guidance out")
            options.pop("guidance", None)
        else:
            scale = options.setdefault("guidance", 1.0)
            require(is_number(scale) and scale >= 0, "sampler.guidance", scale, "a number >= 0 (1: no guidance)")
        for key in ("method", "steps"):
            if key not in options:
                raise ConfigError(f"sampler.{key} has no value: set model.sampler.{key} or sampler={{{key}: ...}}")
        return options

    def sampler_settings(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options a sample() call with `options` uses, with its network evaluations per image (for metrics.json)."""
        resolved = self.resolve_sampler(**dict(options or {}))
        guided_run = self.conditional and resolved.get("guidance", 1.0) != 1
        return {**resolved, "evaluations": evaluations(resolved["method"], resolved["steps"], guided_run)}

    def guided_predict(self, labels: Tensor | None, scale: float | None) -> Any:
        """predict(x, t) for the samplers, with classifier-free guidance at `scale` for conditional models."""
        if labels is None:
            return lambda x, t: self.predict(x, t, None)
        return lambda x, t: guided(self.predict, x, t, labels, 1.0 if scale is None else scale, self.null_label)

    @torch.no_grad()
    def trajectory(self, n: int, frames: int, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """(n, frames, C, H, W): each sample from its noise (first frame) through the sampler's steps to the image."""
        require(is_positive_integer(frames) and frames >= 2, "trajectory_frames", frames, "an integer >= 2")
        states: list[Tensor] = []
        self._on_step = lambda x: states.append(x.clamp(-1, 1).cpu())
        try:
            noise = self.sample_noise(n, generator)
            final = self.sample(noise=noise, generator=generator, **options).cpu()
        finally:
            self._on_step = None
        path = [noise.clamp(-1, 1).cpu()] + states[:-1] + [final]
        picks = torch.linspace(0, len(path) - 1, frames).round().long().tolist()
        return torch.stack([path[i] for i in picks], dim=1)


class DiffusionModule(DenoisingModule):
    """DDPM (Ho et al. 2020): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the net predicts eps (or v,
    Salimans & Ho 2022) from (x_t, t), loss = || target - net(x_t, t) ||^2; samplers from diffusers.

    `schedule`: linear or cosine betas over `timesteps` (genlab/diffusion/schedules.py).
    `prediction`: epsilon or v.
    """

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        optimizer: Mapping[str, Any],
        image_shape: tuple[int, ...],
        schedule: str = "linear",
        timesteps: int = 1000,
        prediction: str = "epsilon",
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
        ema: Mapping[str, Any] | None = None,
        on_nonfinite: str = "stop",
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        noise_schedule = NoiseSchedule(schedule, timesteps, prediction)  # checks the keys before the net is kept
        super().__init__(net, optimizer, image_shape, num_classes, label_dropout, sampler, ema, on_nonfinite, speed)
        self.schedule = noise_schedule
        if "method" in self.sampler_defaults:
            check_method(self.sampler_defaults["method"], DIFFUSION_SAMPLERS)

    def loss(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        noise = self.draw(tuple(images.shape), generator)
        if generator is None:
            t = self.schedule.sample_timesteps(len(images), images.device)
        else:
            t = torch.randint(0, self.schedule.timesteps, (len(images),), generator=generator).to(images.device)
        noisy = self.schedule.q_sample(images, noise, t)
        return denoising_loss(self.predict(noisy, t, labels), self.schedule.target(images, noise, t))

    def predict(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        return self.denoiser(x, t.float(), labels)

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        method: str | None = None, steps: int | None = None, eta: float | None = None, guidance: float | None = None,
    ) -> Tensor:
        """Images from x_T = `noise` by `method` (ddpm, ddim, dpm++) in `steps` steps; `eta` for DDIM,
        `guidance` the classifier-free guidance scale of conditional models (1: none)."""
        options = self.resolve_sampler(method=method, steps=steps, eta=eta, guidance=guidance)
        predict = self.guided_predict(labels, options.get("guidance"))
        x = sample_diffusion(predict, noise, self.schedule.settings, options["method"], options["steps"],
                             options.get("eta", 0.0), generator, self._on_step)
        return x.clamp(-1, 1)
