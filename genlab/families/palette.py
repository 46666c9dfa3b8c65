"""Palette's math (Saharia et al. 2022; SR3, Saharia et al. 2021): diffusion, or flow matching, conditioned on the
input image, which is concatenated to the noisy image the UNet sees (genlab/nets/unet.py's `condition_channels`).

Everything else is the noise family's: DDPM's schedules, prediction and samplers, flow matching's path and
ODE solvers, chosen at sampling time. Inpainting keeps the known pixels (Palette's `network.py`): the UNet
always sees them clean, in training and at every sampler step, the loss counts the hole only,
E || m * (target - net) ||^2, and the output is the known pixels with the hole filled.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from genlab.families.ddpm import DDPM
from genlab.families.flow import FlowMatching
from genlab.families.translation import Translation, build_networks
from genlab.tasks.base import Task


class Palette(Translation):
    """Mixed into a denoising family (before it): the input as the UNet's extra channels, the known pixels kept."""

    def setup(self, net: Mapping[str, Any], task: Task | None, seed: int, family: str) -> dict[str, nn.Module]:
        self.use_task(task, family)
        sizes = {"image_shape": list(self.task.target_shape), "condition_channels": self.task.source_shape[0]}
        return build_networks(net, {"denoiser": sizes}, seed)

    @property
    def stochastic(self) -> bool:
        return True

    def conditioned(self, x: Tensor, source: Tensor) -> Tensor:
        return torch.cat([source, self.kept(x, source)], dim=1)

    def loss(self, images: Tensor, source: Tensor) -> dict[str, Tensor]:
        return {"loss": self.objective(images, source)}  # type: ignore[attr-defined]

    def loss_mask(self, source: Tensor) -> Tensor | None:
        known = self.task.known(source)
        return None if known is None else known[1]

    def guided_predict(self, source: Tensor, scale: float | None) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda x, t: self.predict(x, t, source)  # type: ignore[attr-defined]

    def start(self, source: Tensor, generator: torch.Generator | None) -> Tensor:
        """The sampler's first state: noise of the target's shape, one per input."""
        return self.draw((len(source), *self.task.target_shape), generator)  # type: ignore[attr-defined]

    @torch.no_grad()
    def trajectory(self, n: int, frames: int, generator: torch.Generator | None = None, source: Tensor | None = None,
                   **options: Any) -> Tensor | None:
        """(n, frames, C, H, W): the outputs for `source` on their way from noise through the sampler's steps."""
        if source is None:
            return None
        states: list[Tensor] = []
        self._on_step = lambda x: states.append(self.kept(x, source.to(x.device)).clamp(-1, 1).cpu())  # noqa
        try:
            final = self.translate(source, generator, **options).cpu()
        finally:
            self._on_step = None
        path = states[:-1] + [final]
        picks = torch.linspace(0, len(path) - 1, frames).round().long().tolist()
        return torch.stack([path[i] for i in picks], dim=1)


class PaletteDDPM(Palette, DDPM):
    """Palette as the paper trains it: DDPM on the target, conditioned on the input (`schedule`, `prediction`, ...: model=ddpm's)."""

    def __init__(
        self, net: Mapping[str, Any], task: Task | None = None, schedule: str = "linear", timesteps: int = 1000,
        prediction: str = "epsilon", sampler: Mapping[str, Any] | None = None, seed: int = 0,
    ) -> None:
        nets = self.setup(net, task, seed, "palette")
        DDPM.__init__(self, nets, self.task.target_shape, schedule, timesteps, prediction, 0, 0.0, sampler)
        self.noise_shape = self.task.source_shape  # what sample(noise=...) takes: the task's input

    def predict(self, x: Tensor, t: Tensor, source: Tensor | None) -> Tensor:
        return DDPM.predict(self, self.conditioned(x, source), t, None)

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        method: str | None = None, steps: int | None = None, eta: float | None = None,
    ) -> Tensor:
        """Outputs for the task's inputs `noise` (Translation.translate): DDPM's sampler from fresh noise."""
        x = DDPM.decode(self, self.start(noise, generator), noise, generator, method, steps, eta)
        return self.kept(x, noise)


class PaletteFlow(Palette, FlowMatching):
    """Conditional flow matching on the target, conditioned on the input (`time_distribution`, ...: model=flow's)."""

    def __init__(
        self, net: Mapping[str, Any], task: Task | None = None, time_distribution: str = "uniform",
        time_mean: float = 0.0, time_std: float = 1.0, sampler: Mapping[str, Any] | None = None, seed: int = 0,
    ) -> None:
        nets = self.setup(net, task, seed, "palette_flow")
        FlowMatching.__init__(self, nets, self.task.target_shape, time_distribution, time_mean, time_std, 0, 0.0, sampler)
        self.noise_shape = self.task.source_shape

    def predict(self, x: Tensor, t: Tensor, source: Tensor | None) -> Tensor:
        return FlowMatching.predict(self, self.conditioned(x, source), t, None)

    def decode(
        self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None,
        method: str | None = None, steps: int | None = None,
    ) -> Tensor:
        """Outputs for the task's inputs `noise` (Translation.translate): the ODE from fresh noise."""
        x = FlowMatching.decode(self, self.start(noise, generator), noise, generator, method, steps)
        return self.kept(x, noise)
