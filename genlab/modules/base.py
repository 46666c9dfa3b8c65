"""What genlab's two training loops share around a family (genlab/families/): its optimizers, the EMA of its
image network (and EDM2's post-hoc averages), the common training axis, and sampling with the average.

The family owns the math; a loop owns the training: `OnePlayer` (genlab/modules/one_player.py) minimises
one loss, `TwoPlayer` (genlab/modules/two_player.py) plays a GAN's game. Everything that makes images (the
sample grid, `val/fid`, `genlab eval`, `genlab sample`) calls `sample`, and nothing else.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor

from genlab.ema import ExponentialMovingAverage, build_ema
from genlab.errors import ConfigError
from genlab.families.base import Family
from genlab.modules.guard import NonFiniteGuard
from genlab.modules.progress import Progress, gather_random_states, restore_random_state, seed_rank, state_of_rank
from genlab.posthoc_ema import PosthocEMA, build_posthoc_ema

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
# a checkpoint of genlab before families had a home of their own kept the networks at the top of its state_dict
LEGACY_NETWORKS = ("generator.", "discriminator.", "encoder.", "decoder.", "denoiser.")


def upgrade_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state_dict with the keys this version's modules have (`generator.*` became `family.generator.*`)."""
    if not any(key.startswith(LEGACY_NETWORKS) for key in state_dict):
        return state_dict
    return {f"family.{key}" if key.startswith(LEGACY_NETWORKS) else key: value for key, value in state_dict.items()}


class TrainingModule(pl.LightningModule):
    """Base of the loops: the `family` they train, optimizers from config, an EMA, progress on one axis.

    `optimizer` is the built `optimizer` config group (genlab.builder): partial optimizers per role the
    family names (`generator`, and `discriminator` for a game), optionally a partial LR `scheduler`
    applied to each optimizer (stepped per epoch, or after every update: `scheduler_interval`) and
    `clip_grad_norm`, the largest gradient norm a step may take. `ema` is the `model.ema` node (null:
    none), its `posthoc` node EDM2's power-function averages (genlab/posthoc_ema.py; null sigma_rels: none).
    `on_nonfinite` says what a NaN or infinite loss does (genlab/modules/guard.py). `seed`: the run's, from which
    each DDP rank seeds its own draws when training starts (None: the generators are left as they are).
    """

    def __init__(
        self,
        family: Family,
        optimizer: Mapping[str, Any],
        ema: Mapping[str, Any] | None = None,
        on_nonfinite: str = "stop",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.family = family
        self.optimizer_factories = dict(optimizer)
        self.guard = NonFiniteGuard(on_nonfinite)
        self.progress = Progress()
        self.seed = seed
        # `model.ema`: an average of the family's image network, which samples then use
        self.ema: ExponentialMovingAverage | None = build_ema(family.image_network(), ema)
        # `model.ema.posthoc`: EDM2's averages, whose snapshots choose the EMA's length after training
        posthoc = ema.get("posthoc") if isinstance(ema, Mapping) else None
        self.posthoc_ema: PosthocEMA | None = build_posthoc_ema(family.image_network(), posthoc)
        self.samples_from_ema = True  # what sample() uses when the run keeps an average and no caller says
        # set where genlab eval/sample loaded other weights in place of the raw ones (a post-hoc average)
        self.weights_loaded: str | None = None
        self._random_state_to_restore: dict[str, Any] | None = None

    # --- the average of the weights that make images (genlab/ema.py) ---------------------

    def update_ema(self) -> None:
        """Average in the image network's new weights: the loops call it after each of its optimizer steps."""
        if self.ema is not None:
            self.ema.update(self.family.image_network())
        if self.posthoc_ema is not None:
            self.posthoc_ema.update(self.family.image_network())

    @property
    def weights(self) -> str:
        """Which weights sample, as metrics.json records them: a post-hoc average loaded in place of the raw weights
        (genlab/run/load.py), the EMA, or the raw weights."""
        if self.weights_loaded is not None:
            return self.weights_loaded
        return "ema" if self.ema is not None and self.samples_from_ema else "raw"

    def averaged(self, ema: bool | None = None) -> AbstractContextManager[None]:
        """Inside: the family samples with the averaged weights, unless `ema` (or `samples_from_ema`) says raw."""
        use = self.samples_from_ema if ema is None else ema
        return self.ema.applied_to(self.family) if use and self.ema is not None else nullcontext()

    # --- making images ------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int | None = None,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        ema: bool | None = None,
        **options: Any,
    ) -> Tensor:
        """The family's `sample` (genlab/families/base.py) with the run's average swapped in, when it keeps one
        and neither `ema=False` nor `samples_from_ema = False` (`genlab eval/sample ema=false`) asks for the raw weights."""
        self.family.check_options(options)  # before the average's standing statistics are measured for nothing
        with self.averaged(ema):
            return self.family.sample(n, labels, generator, noise, **options)

    def trajectory(self, n: int, frames: int, generator: torch.Generator | None = None, **options: Any) -> Tensor | None:
        """The family's noise-to-image strip (None for one-pass families), with the average swapped in."""
        with self.averaged():
            return self.family.trajectory(n, frames, generator, **options)

    # --- training bookkeeping -----------------------------------------------------------

    @property
    def generator_steps(self) -> int:
        return self.progress.generator_steps

    @property
    def images_seen(self) -> int:
        return self.progress.images_seen

    def finite(self, name: str, loss: Tensor) -> bool:
        """Whether to take the step of this loss: False skips it (counted, logged), a stop raises (on_nonfinite)."""
        if self.guard.allows(name, loss, self._trainer):
            return True
        self.progress.skipped_steps += 1
        self.log("train/skipped_steps", float(self.progress.skipped_steps))
        return False

    @property
    def logs_this_step(self) -> bool:
        """Whether this training step's logs are written out (every `trainer.log_every_n_steps` batches).

        Training steps call `self.log` only then: it costs about 0.1 ms a value, 5-10% of a fast
        step on a CPU, for values that no logger would keep.
        """
        if self._trainer is None:
            return True
        trainer = self.trainer
        return self.progress.batches % trainer.log_every_n_steps == 0 or trainer.should_stop or bool(trainer.fast_dev_run)

    def log_common_axis(self) -> None:
        """Put the logged values at x = generator updates: a value named `step` is the x-axis Lightning
        gives the loggers (its own counts batches, which mean different training for different families)."""
        self.log("step", float(self.progress.generator_steps))

    def setup(self, stage: str) -> None:
        # once the processes are up: each DDP rank draws its own noise from here on, while the weights, built
        # before from the run's seed, are alike on every rank (and DDP broadcasts rank 0's anyway)
        if stage == "fit" and self.seed is not None and self._trainer is not None and self.trainer.world_size > 1:
            seed_rank(self.seed, self.trainer.global_rank)

    def on_fit_start(self) -> None:
        # what a family does once before training, outside its training time (trainer.max_time, timed checkpoints
        # count from on_train_start): reflow draws its teacher's pairs here, iCT learns the run's planned length
        self.family.prepare(lambda: self.trainer.estimated_stepping_batches)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._random_state_to_restore is not None:
            # a resumed run draws the noise the uninterrupted run would have drawn; restored here, at
            # its first batch, so that nothing Lightning runs before it (sanity checks) draws from it
            rank = self.trainer.global_rank if self._trainer is not None else 0
            mine = state_of_rank(self._random_state_to_restore, rank)
            if mine is not None:
                restore_random_state(mine, self.device)
            self._random_state_to_restore = None
        # counted before the step, so that callbacks (the budget) see this batch at its end
        self.progress.batches += 1
        self.progress.images_seen += len(batch[0]) * (self.trainer.world_size if self._trainer is not None else 1)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.logs_this_step:
            self.log_dict({f"train/{name}": value for name, value in self.progress.axis().items()})
            self.log_common_axis()

    def on_validation_epoch_end(self) -> None:
        # the same point on the common axis as the validation metrics of this epoch (genlab report plots against it)
        self.log_dict({f"val/{name}": value for name, value in self.progress.axis().items()})
        self.log_common_axis()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["progress"] = self.progress.state_dict()
        # every rank's generators, each restored by its own rank (a rank's CUDA state: its own device's only)
        checkpoint["random_state"] = {"ranks": gather_random_states(self._trainer, self.device)}
        checkpoint["family_state"] = self.family.training_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "state_dict" in checkpoint:
            checkpoint["state_dict"] = upgrade_state_dict(checkpoint["state_dict"])
        # a checkpoint of an earlier version kept the critic steps and the augmentation apart
        self.progress.load_state_dict({"critic_steps": checkpoint.get("critic_steps", 0), **checkpoint.get("progress", {})})
        self._random_state_to_restore = checkpoint.get("random_state")
        legacy = {"augment": checkpoint["augment"]} if "augment" in checkpoint else {}
        self.family.load_training_state(checkpoint.get("family_state", legacy))

    # --- optimizers ---------------------------------------------------------------------

    def _make_optimizer(self, role: str) -> torch.optim.Optimizer:
        if role not in self.optimizer_factories:
            raise ConfigError(f"the optimizer config has no `{role}` entry, which {type(self.family).__name__} needs")
        return self.optimizer_factories[role](self.family.parameters_of(role))

    @property
    def scheduler_interval(self) -> str:
        """When the learning-rate schedule steps: "epoch" (once per epoch) or "step" (after each update of its optimizer)."""
        return self.optimizer_factories.get("scheduler_interval", "epoch")

    @property
    def clip_grad_norm(self) -> float | None:
        """`optimizer.clip_grad_norm`: the largest L2 norm of a step's gradients (null: no clipping)."""
        return self.optimizer_factories.get("clip_grad_norm")

    def configure_optimizers(self) -> Any:
        """One optimizer per role of the family, in its order (a GAN: generator, discriminator), each with its schedule."""
        optimizers = [self._make_optimizer(role) for role in self.family.roles]
        factory = self.optimizer_factories.get("scheduler")
        if factory is None:
            return optimizers
        return optimizers, [{"scheduler": factory(opt), "interval": self.scheduler_interval} for opt in optimizers]
