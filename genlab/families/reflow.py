"""Rectified flow's reflow (Liu et al. 2022, "Flow Straight and Fast"): a student that learns a teacher's coupling.

A trained teacher (a genlab `flow` or `ddpm` run, `model.teacher.ckpt_path=...`) maps noise x_0 to an image x_1
by its deterministic sampler. Flow matching on those (x_0, x_1) pairs, instead of on independent noise and data,
learns a flow whose paths are straighter (the 2-rectified flow): its one- and two-step Euler samples land near
the teacher's many-step ones. The pairs are drawn once, from `pair_seed`, when training starts (the same pairs
again on a resume), and the time it took is logged apart from training's. With `pairs_cache` (a folder) they are
kept there under a key of the teacher's weights, its sampler, the seed, the count and the device, so that every
later student of the same teacher (a sweep over student nets, a resume) reads them instead of drawing them
again. A flow teacher of the same net also
gives the student its initial weights (Liu et al. start 2-rectified flow from 1-rectified flow's); a student with
a smaller net (`init_from_teacher: false`) is trained from scratch on the pairs, which is how a one-step student
gets faster than one evaluation of its teacher.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from genlab.diffusion.losses import flow_matching_loss, pseudo_huber_flow_loss
from genlab.diffusion.paths import linear_path
from genlab.errors import ConfigError, is_integer, is_number, is_positive_integer, require
from genlab.families.base import Family, check_teacher_fits
from genlab.families.flow import FlowMatching

log = logging.getLogger("genlab")
# samplers whose output is a function of the noise alone: the coupling reflow straightens
DETERMINISTIC = {"euler", "heun", "ddim", "dpm++"}


class Reflow(FlowMatching):
    """`pairs`: how many (noise, teacher image) pairs to draw; `pair_seed`: their seed; `pair_batch_size`: images
    per teacher call; `pairs_cache`: a folder that keeps drawn pairs for later students (None: draw every time);
    `init_from_teacher`: start from a flow teacher's weights (its net and the student's must
    match), or from the student net's own initialisation; `huber_c`: None, the squared error (Liu et al. 2022), or
    Lee et al. 2024's pseudo-Huber distance with c = huber_c * pixels. The teacher comes from the builder
    (`use_teacher`); a student built without one (by `genlab eval` or `genlab sample`) samples, but does not train."""

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        image_shape: tuple[int, ...],
        pairs: int = 10000,
        pair_seed: int = 0,
        pair_batch_size: int = 500,
        pairs_cache: str | None = None,
        init_from_teacher: bool = True,
        time_distribution: str = "uniform",
        time_mean: float = 0.0,
        time_std: float = 1.0,
        num_classes: int = 0,
        label_dropout: float = 0.0,
        sampler: Mapping[str, Any] | None = None,
        time_concentration: float = 4.0,
        huber_c: float | None = None,
    ) -> None:
        require(huber_c is None or (is_number(huber_c) and huber_c > 0), "model.huber_c", huber_c,
                "null (the squared error) or a positive number, e.g. 0.00054 (Lee et al. 2024's pseudo-Huber)")
        require(is_positive_integer(pairs), "model.pairs", pairs, "a positive number of teacher samples, e.g. 10000")
        require(is_integer(pair_seed), "model.pair_seed", pair_seed, "an integer")
        require(is_positive_integer(pair_batch_size), "model.pair_batch_size", pair_batch_size, "a positive integer")
        require(isinstance(init_from_teacher, bool), "model.init_from_teacher", init_from_teacher, "true or false")
        super().__init__(net, image_shape, time_distribution, time_mean, time_std, num_classes, label_dropout, sampler,
                         time_concentration)
        self.pairs, self.pair_seed, self.pair_batch_size = int(pairs), int(pair_seed), int(pair_batch_size)
        self.pairs_cache = Path(pairs_cache).expanduser() if pairs_cache else None
        self.init_from_teacher = init_from_teacher
        self.huber_c = None if huber_c is None else float(huber_c)
        self._teacher: list[Family] = []  # a list, so that the teacher is no submodule: not trained, saved or moved
        self._teacher_sampler: dict[str, Any] = {}
        self._pairs: tuple[Tensor, Tensor, Tensor | None] | None = None
        self.pair_seconds: float | None = None

    def use_teacher(self, teacher: Family, sampler: Mapping[str, Any] | None = None) -> None:
        """Learn `teacher`'s coupling, sampled with `sampler` (its own defaults where None); with
        `init_from_teacher`, a flow teacher of the same net gives its weights as the start."""
        check_teacher_fits(self, teacher, "reflow", "creflow")
        options = dict(sampler or {})
        settings = teacher.sampler_settings(options) if hasattr(teacher, "resolve_sampler") else None
        if settings is None or settings.get("method") not in DETERMINISTIC or settings.get("eta"):
            raise ConfigError(f"model.teacher is a {type(teacher).__name__} sampled with {settings}: reflow needs a"
                              f" flow or diffusion teacher with a deterministic sampler ({', '.join(sorted(DETERMINISTIC))};"
                              " ddim with eta 0), set by model.teacher.sampler")
        if self.init_from_teacher and isinstance(teacher, FlowMatching):
            theirs, ours = teacher.denoiser.state_dict(), self.denoiser.state_dict()
            if {k: v.shape for k, v in theirs.items()} != {k: v.shape for k, v in ours.items()}:
                raise ConfigError("model.net.denoiser differs from the teacher's net: give the student the teacher's"
                                  " model.net.denoiser settings to start from its weights, or set"
                                  " model.init_from_teacher=false to train this net from scratch")
            self.denoiser.load_state_dict(theirs)
        elif not self.init_from_teacher:
            log.info("reflow: the student's net is trained from scratch (model.init_from_teacher=false)")
        self._teacher, self._teacher_sampler = [teacher], options

    def prepare(self, planned_batches: Callable[[], float] | None = None) -> None:
        if self._teacher:
            self.coupling()

    @torch.no_grad()
    def coupling(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """(noise, the teacher's image of it, its class): drawn once, from `pair_seed`, on the family's device."""
        if self._pairs is not None:
            return self._pairs
        if not self._teacher:
            raise ConfigError("model=reflow trains on a teacher's samples: set model.teacher.ckpt_path to a checkpoint"
                              " of a trained flow or ddpm run")
        cached = self.pairs_file()
        if cached is not None and cached.is_file():
            self._pairs = self.read_pairs(cached)
            log.info("reflow: %d teacher pairs read from %s (drawn before, for this teacher and sampler)",
                     self.pairs, cached)
            return self._pairs
        teacher = self._teacher[0].to(self.device)
        generator = torch.Generator().manual_seed(self.pair_seed)
        started = time.perf_counter()
        noise = self.draw((self.pairs, *self.noise_shape), generator)
        labels = torch.randint(0, self.num_classes, (self.pairs,), generator=generator).to(self.device) \
            if self.conditional else None
        images = torch.cat([
            teacher.sample(noise=noise[i:i + self.pair_batch_size],
                           labels=None if labels is None else labels[i:i + self.pair_batch_size],
                           generator=generator, **self._teacher_sampler)
            for i in range(0, self.pairs, self.pair_batch_size)])
        self.pair_seconds = time.perf_counter() - started
        log.info("reflow: %d teacher pairs drawn in %.1f s (not counted as training)", self.pairs, self.pair_seconds)
        self._pairs = (noise, images, labels)
        if cached is not None:
            self.write_pairs(cached)
        return self._pairs

    def pairs_file(self) -> Path | None:
        """Where `pairs_cache` keeps this coupling: named by a digest of all that decides the pairs (the teacher's
        weights, its sampler, the seed, the count, the shape, the classes, the device type), or None without one."""
        if self.pairs_cache is None or not self._teacher:
            return None
        teacher = self._teacher[0]
        digest = hashlib.sha256()
        for name, tensor in sorted(teacher.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        settings = {"teacher": type(teacher).__name__, "sampler": teacher.sampler_settings(self._teacher_sampler),
                    "pairs": self.pairs, "pair_seed": self.pair_seed, "pair_batch_size": self.pair_batch_size,
                    "noise_shape": list(self.noise_shape), "num_classes": self.num_classes,
                    "device": self.device.type}
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return self.pairs_cache / f"pairs-{digest.hexdigest()[:24]}.safetensors"

    def read_pairs(self, path: Path) -> tuple[Tensor, Tensor, Tensor | None]:
        from safetensors.torch import load_file

        try:
            tensors = load_file(path)
            noise, images = tensors["noise"], tensors["images"]
        except Exception as error:  # a file someone cut short or replaced: say which, and how to draw again
            raise ConfigError(f"model.pairs_cache: {path} cannot be read as reflow pairs ({error}): delete it to"
                              " draw the pairs again") from error
        if noise.shape != (self.pairs, *self.noise_shape) or images.shape != noise.shape:
            raise ConfigError(f"model.pairs_cache: {path} holds pairs of shape {tuple(noise.shape)}, not"
                              f" {(self.pairs, *self.noise_shape)}: delete it to draw the pairs again")
        labels = tensors.get("labels")
        return noise.to(self.device), images.to(self.device), None if labels is None else labels.to(self.device)

    def write_pairs(self, path: Path) -> None:
        """The pairs as safetensors (no pickle), written whole or not at all (genlab/run/atomic.py)."""
        from safetensors.torch import save

        from genlab.run.atomic import atomic_write

        noise, images, labels = self._pairs
        tensors = {"noise": noise.cpu().contiguous(), "images": images.cpu().contiguous(),
                   **({"labels": labels.cpu().contiguous()} if labels is not None else {})}
        atomic_write(path, lambda stream: stream.write(save(tensors)))
        log.info("reflow: the pairs are kept in %s for later students of this teacher", path)

    def objective(self, images: Tensor, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        """E || v(x_t, t) - (x_1 - x_0) ||^2 on pairs (x_0, x_1) of the teacher's coupling, as many as the batch
        (with `huber_c`, Lee et al. 2024's pseudo-Huber distance in place of the squared error)."""
        noise, targets, classes = self.coupling()
        device = "cpu" if generator is not None else self.device
        index = torch.randint(0, len(noise), (len(images),), generator=generator, device=device).to(self.device)
        x0, x1 = noise[index], targets[index]
        t = self.sample_times(len(images), generator)
        prediction = self.predict(linear_path(x0, x1, t), t, None if classes is None else classes[index])
        if self.huber_c is not None:
            return pseudo_huber_flow_loss(prediction, x0, x1, self.huber_c)
        return flow_matching_loss(prediction, x0, x1)

    def loss(self, images: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        return {"loss": self.objective(images, None)}  # the pairs carry their own classes
