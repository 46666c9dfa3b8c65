"""Consistency distillation, CD (Song et al. 2023, Algorithm 2), from a genlab flow run as the teacher.

Consistency training estimates the point at sigma_i on the trajectory through x + sigma_(i+1) z by x + sigma_i z;
distillation takes it from the teacher instead: one step of the teacher's probability-flow ODE from sigma_(i+1)
to sigma_i. A genlab flow teacher lives on x_t = (1 - t) eps + t x (data at t = 1), which is EDM's
x_sigma = x + sigma eps scaled by t = 1 / (1 + sigma): the step is taken in t, on x_sigma / (1 + sigma), with the
teacher's velocity (and its classifier-free guidance), and scaled back. Everything else is iCT's
(genlab/families/consistency.py: the parameterisation, the pseudo-Huber distance, lambda = 1 / (sigma_(i+1) -
sigma_i), the log-normal over levels, theta^- = sg(theta)) on a fixed grid of `distillation_steps` levels,
the original CD's N = 18. The student trains from scratch: its parameterisation is not the teacher's.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from genlab.diffusion.samplers import flow_step
from genlab.errors import ConfigError, is_positive_integer, require
from genlab.families.base import Family, check_teacher_fits
from genlab.families.consistency import ConsistencyTraining
from genlab.families.flow import FlowMatching

TEACHER_STEPS = ("euler", "heun")


class ConsistencyDistillation(ConsistencyTraining):
    """`distillation_steps`: the levels of the fixed Karras grid (N); the teacher comes from the builder
    (`use_teacher`), with `model.teacher.sampler`'s method (euler or heun) and guidance for its ODE step."""

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        distillation_steps: int = 18,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        p_mean: float = -1.1,
        p_std: float = 2.0,
        huber_c: float = 0.00054,
        num_classes: int = 0,
        label_dropout: float = 0.0,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        require(is_positive_integer(distillation_steps) and distillation_steps >= 3, "model.distillation_steps",
                distillation_steps, "an integer >= 3, e.g. 18")
        # a curriculum that never moves: N levels from the first batch on
        super().__init__(net, image_shape, 1, sigma_min, sigma_max, sigma_data, rho, p_mean, p_std,
                         distillation_steps - 1, distillation_steps - 1, huber_c, num_classes, label_dropout, sampler)
        self._teacher: list[FlowMatching] = []  # a list: no submodule, so neither trained, saved nor moved
        self._teacher_options: dict[str, Any] = {}

    def use_teacher(self, teacher: Family, sampler: Mapping[str, Any] | None = None) -> None:
        """Distil `teacher`, a flow run of the same data and classes, stepping its ODE with `sampler`'s method and
        guidance (its own defaults where None)."""
        if not isinstance(teacher, FlowMatching):
            raise ConfigError(f"model.teacher is a {type(teacher).__name__}: consistency distillation takes a flow or"
                              " cflow run as its teacher (model=flow, whose ODE it steps)")
        check_teacher_fits(self, teacher, "cd", "ccd")
        options = teacher.resolve_sampler(**dict(sampler or {}))
        if options["method"] not in TEACHER_STEPS:
            raise ConfigError(f"model.teacher.sampler.method={options['method']!r}: the teacher's ODE step is one of"
                              f" {', '.join(TEACHER_STEPS)}")
        self._teacher, self._teacher_options = [teacher], options

    def earlier_point(self, images: Tensor, noise: Tensor, noisier: Tensor, low: Tensor, high: Tensor,
                      labels: Tensor | None) -> Tensor:
        """One step of the teacher's ODE from `noisier` at sigma_(i+1) to sigma_i, in the flow's time t = 1 / (1 + sigma)."""
        if not self._teacher:
            raise ConfigError("model=cd distils a teacher: set model.teacher.ckpt_path to a checkpoint of a trained"
                              " flow run")
        teacher = self._teacher[0].to(self.device)
        predict = teacher.guided_predict(labels, self._teacher_options.get("guidance"))
        start, end = 1 / (1 + high), 1 / (1 + low)
        shape = (-1, 1, 1, 1)
        x = noisier / (1 + high).view(shape)
        moved = flow_step(predict, x, start, end, (end - start).view(shape), self._teacher_options["method"])
        return moved * (1 + low).view(shape)

    def loss(self, images: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        return self.terms(images, labels)  # no curriculum to advance; classes as given (no label dropout)
