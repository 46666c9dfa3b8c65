"""What the denoising families share: the UNet as `model.net.denoiser`, a regression objective on noised
images, label dropout and classifier-free guidance, and sampler options chosen at sampling time.

DDPM (genlab/families/ddpm.py) and flow matching (genlab/families/flow.py) say only what their
objective is (`objective`), how the net sees the time (`predict`) and how they sample (`decode`).
Their pure parts live in genlab/diffusion/ (schedules, paths, losses, samplers, guidance).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.guidance import drop_labels, guided
from genlab.diffusion.samplers import OnStep, evaluations
from genlab.errors import ConfigError, is_number, is_positive_integer, require
from genlab.families.base import OneLossFamily, Terms, require_networks



class Denoising(OneLossFamily):
    """Base of the families whose noise is an image, refined by `model.net.denoiser` over many steps.

    `label_dropout`: the share of training labels replaced by the "no class" token (conditional
    families), so that the same net predicts unconditionally for classifier-free guidance.
    `sampler`: the default sampler options (`method`, `steps`, ...) wherever a caller gives none.
    """

    interpolation = "spherical"  # the noise is a whole image: walk on the sphere Gaussian noise lives near
    # the options `model.sampler` may set, and those a sampler cannot run without
    sampler_keys: tuple[str, ...] = ("method", "steps", "eta", "guidance")
    required_sampler_keys: tuple[str, ...] = ("method", "steps")

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        num_classes: int = 0,
        label_dropout: float = 0.1,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(tuple(image_shape), num_classes)
        require_networks(net, ("denoiser",), type(self).__name__, "model/net=unet")
        require(is_number(label_dropout) and 0 <= label_dropout < 1, "model.label_dropout", label_dropout,
                "a number in [0, 1), e.g. 0.1")
        unknown = sorted(set(sampler or {}) - set(self.sampler_keys))
        if unknown:
            raise ConfigError(f"model.sampler.{unknown[0]} is not a sampler option; its options: {', '.join(self.sampler_keys)}")
        self.denoiser = net["denoiser"]
        self.label_dropout = float(label_dropout)
        self.sampler_defaults = {key: value for key, value in dict(sampler or {}).items() if value is not None}
        self._on_step: OnStep | None = None

    # --- what a family defines ----------------------------------------------------------

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """The family's regression loss on a batch of images in [-1, 1]; `generator` fixes its noise (validation)."""
        raise NotImplementedError

    def predict(self, x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        """The denoiser's output at (x, t); t as the family's sampler counts it."""
        return self.denoiser(x, t, labels)

    def loss_mask(self, condition: Any) -> Tensor | None:
        """Where the objective counts (1) and where not (0); None: everywhere. An inpainting model's is its hole."""
        return None

    # --- training -----------------------------------------------------------------------

    def image_network(self) -> nn.Module:
        return self.denoiser

    def parameters_of(self, role: str) -> Iterable[nn.Parameter]:
        return self.denoiser.parameters()

    @property
    def null_label(self) -> int:
        """The "no class" token of classifier-free guidance (genlab/nets/unet.py embeds num_classes + 1 classes)."""
        return self.num_classes

    def loss(self, images: Tensor, labels: Tensor | None) -> Terms:
        """The objective on a training batch, a share `label_dropout` of its labels dropped to "no class"."""
        return {"loss": self.objective(images, self.dropped(labels))}

    def dropped(self, labels: Tensor | None) -> Tensor | None:
        """A training batch's labels, a share `label_dropout` of them replaced by "no class"."""
        return None if labels is None else drop_labels(labels, self.label_dropout, self.null_label)

    def validation_terms(self, images: Tensor, labels: Tensor | None, batch_index: int) -> Terms:
        # the same noise and times every validation epoch, so that val/loss moves only with the weights
        generator = torch.Generator().manual_seed(batch_index)
        return {"loss": self.objective(images, labels, generator).detach()}

    # --- sampling -----------------------------------------------------------------------

    def resolve_sampler(self, **given: Any) -> dict[str, Any]:
        """The sampler options a call uses: the given ones, else `model.sampler`'s; guidance checked against the model."""
        options = {**self.sampler_defaults, **{key: value for key, value in given.items() if value is not None}}
        if "guidance" not in self.sampler_keys:  # guidance trained in, or none the method allows
            options.pop("guidance", None)
        elif not self.conditional:
            if given.get("guidance") is not None:
                raise ConfigError(f"sampler.guidance={given['guidance']!r} needs a conditional model (model.num_classes > 0);"
                                  " this one is unconditional: leave sampler.guidance out")
            options.pop("guidance", None)
        else:
            scale = options.setdefault("guidance", 1.0)
            require(is_number(scale) and scale >= 0, "sampler.guidance", scale, "a number >= 0 (1: no guidance)")
        for key in self.required_sampler_keys:
            if key not in options:
                raise ConfigError(f"sampler.{key} has no value: set model.sampler.{key} or sampler={{{key}: ...}}")
        return options

    def sampler_settings(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options a sample() call with `options` uses, with its network evaluations per image (for metrics.json)."""
        resolved = self.resolve_sampler(**dict(options or {}))
        return {**resolved, "evaluations": self.evaluations(resolved)}

    def evaluations(self, options: Mapping[str, Any]) -> int:
        """Network evaluations per image of a sampler run with resolved `options`."""
        guided_run = self.conditional and options.get("guidance", 1.0) != 1
        return evaluations(options["method"], options["steps"], guided_run)

    def guided_predict(self, labels: Tensor | None, scale: float | None) -> Callable[[Tensor, Tensor], Tensor]:
        """predict(x, t) for the samplers, with classifier-free guidance at `scale` for conditional families."""
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
