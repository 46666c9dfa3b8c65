"""What every generative LightningModule offers the callbacks and commands: noise in, images out.

A family (GAN, VAE, a diffusion model, ...) subclasses `GenerativeModule`, states the shape of
the noise its samples start from (`noise_shape`) and turns noise into images in `decode`, in one
pass or in many steps. Everything that makes images (the sample grid, `val/fid`, `genlab eval`,
`genlab sample`) calls `sample`, and nothing else, so a new family needs no edit there.
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from genlab.ema import ExponentialMovingAverage, build_ema
from genlab.errors import ConfigError, DivergenceError, is_positive_integer, require
from genlab.nets.speed import SpeedOptions, apply_speed_options

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
# decode's own parameters; any other keyword is a sampler option
_DECODE_INPUTS = {"self", "noise", "labels", "generator"}


def latent_vector(latent_dim: Any) -> tuple[int]:
    """The noise shape of a model with a vector latent z ~ N(0, I) of `model.latent_dim` entries."""
    require(is_positive_integer(latent_dim), "model.latent_dim", latent_dim, "a positive integer")
    return (latent_dim,)


def random_state() -> dict[str, Any]:
    """The generators that training draws noise from (torch's CPU one, and CUDA's on a GPU)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class GenerativeModule(pl.LightningModule):
    """Base for the model families: noise, optional class conditioning, optimizers from config.

    `optimizer` is the built `optimizer` config group (genlab.builder): partial optimizers under
    `generator` (and `discriminator` for adversarial models), optionally a partial LR `scheduler`
    applied to each optimizer and stepped once per epoch.

    `on_nonfinite` says what a NaN or infinite loss does: `stop` training with a message
    (checkpoints written so far stay as they are), or `skip` that optimizer step.

    `speed` is the `speed` config node (genlab/nets/speed.py), applied when Lightning sets the module up.

    Training progress is counted the same way for every family, so runs compare on one axis:
    `generator_steps` (updates of the network that makes the images: a GAN's generator, a VAE's
    or a diffusion model's whole network) and `images_seen` (real training images, over all
    processes). Both are logged as train/* and val/*, and kept in checkpoints.
    """

    # how `genlab sample` walks between two noise draws: straight lines suit low-dimensional latents;
    # families whose noise is a whole image set "spherical" (a straight line's middle has too small a norm)
    interpolation = "linear"

    def __init__(
        self,
        optimizer: Mapping[str, Any],
        noise_shape: tuple[int, ...],
        num_classes: int = 0,
        on_nonfinite: str = "stop",
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        require(on_nonfinite in ("stop", "skip"), "on_nonfinite", on_nonfinite, "stop or skip")
        self.optimizer_factories = dict(optimizer)
        self.noise_shape = tuple(noise_shape)
        self.num_classes = num_classes
        self.on_nonfinite = on_nonfinite
        self.skipped_steps = 0
        self.generator_steps = 0
        self.images_seen = 0
        self._random_state_to_restore: dict[str, Any] | None = None
        self.speed = SpeedOptions.from_config(speed)
        self.ema: ExponentialMovingAverage | None = None
        self.samples_from_ema = True  # what sample() uses when the run keeps an average and no caller says

    def configure_model(self) -> None:
        # Lightning calls this once per fit, before it moves the module to its device; the
        # networks are the module's children (generator and discriminator, encoder and decoder);
        # the EMA's copy is one too (for channels_last), but it is never called, so never compiled.
        apply_speed_options(self.children(), self.speed)

    # --- the average of the weights that make images (genlab/ema.py) ---------------------

    def image_network(self) -> nn.Module:
        """The network whose weights make the images, the one EMA averages: a GAN's generator, a VAE's decoder."""
        for name in ("generator", "decoder"):
            if isinstance(getattr(self, name, None), nn.Module):
                return getattr(self, name)
        raise NotImplementedError(f"{type(self).__name__} must say which network makes its images: override image_network()")

    def attach_ema(self, options: Mapping[str, Any] | None) -> None:
        """Keep an EMA of `image_network()` as `model.ema` asks (null: none); call once the networks exist."""
        self.ema = build_ema(self.image_network(), options)

    def update_ema(self) -> None:
        """Average in the image network's new weights: the families call it after each of its optimizer steps."""
        if self.ema is not None:
            self.ema.update(self.image_network())

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's step for the families it optimizes (VAE, DDPM, flow; a GAN steps its own), then the EMA's
        update, inside the batch's step: a checkpoint that a callback writes at the batch's end (an interrupt,
        a timed or step checkpoint) then holds the average of the weights it holds, since a module's own
        on_train_batch_end runs after the callbacks' and a resumed run would miss that update."""
        super().optimizer_step(*args, **kwargs)
        self.update_ema()

    # --- making images ------------------------------------------------------------------

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """N(0, I) noise of `noise_shape`, drawn on the CPU generator when given (fixed grids) and moved to the device."""
        noise = torch.randn(n, *self.noise_shape, generator=generator, device="cpu" if generator else self.device)
        return noise.to(self.device)

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Images in [-1, 1] from `noise` (and class labels, for conditional models).

        Families with a sampler take its options as further keyword arguments (steps, guidance,
        ...); `generator` seeds any randomness the sampler draws along the way.
        """
        raise NotImplementedError

    def sampler_options(self) -> list[str]:
        """The keyword options this family's sampler takes (`decode`'s own arguments)."""
        parameters = inspect.signature(self.decode).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in parameters if p.kind in named and p.name not in _DECODE_INPUTS]

    def sampler_settings(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The sampler settings a sample() call with `options` uses, as `genlab eval` records them in
        metrics.json: the options given here; many-step families add their defaults and step counts."""
        return dict(options or {})

    def trajectory(
        self, n: int, frames: int, generator: torch.Generator | None = None, **options: Any
    ) -> Tensor | None:
        """(n, frames, C, H, W): `n` samples on their way from noise to image, for `genlab sample`'s
        trajectory strip; None for families that make an image in one pass."""
        return None

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
        """`n` images in [-1, 1] (or one per given noise row), in eval mode (BatchNorm running statistics).

        Conditional models make class `labels[i]` for image i, cycling through the classes when
        no labels are given. `generator` seeds the noise and the sampler, so a fixed seed gives
        fixed images; `options` go to the family's sampler. With `model.ema` set, the images come
        from the averaged weights unless `ema=False` (or `samples_from_ema = False`, which
        `genlab eval ema=false` and `genlab sample ema=false` set) asks for the raw ones.
        """
        ema = self.samples_from_ema if ema is None else ema
        unknown = sorted(set(options) - set(self.sampler_options()))
        if unknown:
            valid = ", ".join(self.sampler_options()) or "none"
            raise ConfigError(f"sampler.{unknown[0]} is not an option of {type(self).__name__}'s sampler; its options: {valid}")
        if noise is None:
            if n is None:
                raise ValueError("sample() needs n, labels or noise")
            noise = self.sample_noise(n, generator)
        if self.conditional:
            labels = torch.arange(len(noise)) % self.num_classes if labels is None else labels
            labels = labels.to(self.device)
        else:
            labels = None
        was_training = self.training
        self.eval()
        averaged = (self.ema.swapped_into(self.image_network(), self._standing_batches())
                    if ema and self.ema is not None else nullcontext())
        try:
            with averaged:
                return self.decode(noise.to(self.device), labels, generator=generator, **options)
        finally:
            self.train(was_training)

    def _standing_batches(self) -> Callable[[int], None]:
        """Runs of the image network on n noise draws (and cycling labels), for the EMA's batch norm statistics.

        Drawn from their own generator, seeded alike each time: the statistics of an average are
        reproducible, and training's random draws are left untouched.
        """
        seeded = torch.Generator().manual_seed(0)

        def run(n: int) -> None:
            labels = torch.arange(n, device=self.device) % self.num_classes if self.conditional else None
            self.decode(self.sample_noise(n, seeded), labels, generator=seeded)

        return run

    # --- training bookkeeping -----------------------------------------------------------

    def loss_is_finite(self, name: str, loss: Tensor) -> bool:
        """Check a loss before its step: True to go on, False to skip the step; raises to stop."""
        if torch.isfinite(loss).all():
            return True
        if self.on_nonfinite == "skip":
            self.skipped_steps += 1
            self.log("train/skipped_steps", float(self.skipped_steps))
            return False
        where = ""
        if self._trainer is not None and self.trainer.checkpoint_callback is not None:
            where = f" Checkpoints written before it are intact in {self.trainer.checkpoint_callback.dirpath}."
        step = self.trainer.global_step if self._trainer is not None else "?"
        epoch = self.current_epoch if self._trainer is not None else "?"
        raise DivergenceError(
            f"{name} became {loss.item()} at step {step} (epoch {epoch}): training diverged and was stopped"
            f" before that step changed the weights.{where} Try a lower optimizer.lr, or on_nonfinite=skip"
            " to skip such steps."
        )

    @property
    def logs_this_step(self) -> bool:
        """Whether Lightning writes out this training step's logs (every `trainer.log_every_n_steps` batches).

        Training steps call `self.log` only then: it costs about 0.1 ms a value, 5-10% of a fast
        step on a CPU, for values that no logger would keep.
        """
        if self._trainer is None:
            return True
        trainer = self.trainer
        # Lightning's own LearningRateMonitor and ThroughputMonitor ask the logger connector the same way
        return trainer._logger_connector.should_update_logs or bool(trainer.fast_dev_run)

    def progress(self) -> dict[str, float]:
        return {"generator_steps": float(self.generator_steps), "images_seen": float(self.images_seen)}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._random_state_to_restore is not None:
            # a resumed run draws the noise the uninterrupted run would have drawn; restored here, at
            # its first batch, so that nothing Lightning runs before it (sanity checks) draws from it
            restore_random_state(self._random_state_to_restore)
            self._random_state_to_restore = None
        # counted before the step, so that callbacks (the budget) see this batch at its end
        self.images_seen += len(batch[0]) * (self.trainer.world_size if self._trainer is not None else 1)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.logs_this_step:
            self.log_dict({f"train/{name}": value for name, value in self.progress().items()})
            self.log_common_axis()

    def on_validation_epoch_end(self) -> None:
        # the same point on the common axis as the validation metrics of this epoch (genlab report plots against it)
        self.log_dict({f"val/{name}": value for name, value in self.progress().items()})
        self.log_common_axis()

    def log_common_axis(self) -> None:
        """Put the logged values at x = generator updates: a value named `step` is the x-axis Lightning
        gives the loggers (its own counts batches, which mean different training for different families)."""
        self.log("step", float(self.generator_steps))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["progress"] = {"generator_steps": self.generator_steps, "images_seen": self.images_seen}
        checkpoint["random_state"] = random_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint.get("progress", {})
        self.generator_steps = progress.get("generator_steps", 0)
        self.images_seen = progress.get("images_seen", 0)
        self._random_state_to_restore = checkpoint.get("random_state")

    # --- optimizers ---------------------------------------------------------------------

    def _make_optimizer(self, role: str, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if role not in self.optimizer_factories:
            raise ConfigError(f"the optimizer config has no `{role}` entry, which {type(self).__name__} needs")
        return self.optimizer_factories[role](parameters)

    @property
    def scheduler_interval(self) -> str:
        """When the learning-rate schedule steps: "epoch" (once per epoch) or "step" (after each update of its optimizer)."""
        return self.optimizer_factories.get("scheduler_interval", "epoch")

    def _schedulers_for(self, optimizers: list[torch.optim.Optimizer]) -> list[Any]:
        factory = self.optimizer_factories.get("scheduler")
        if factory is None:
            return []
        return [{"scheduler": factory(opt), "interval": self.scheduler_interval} for opt in optimizers]

    def _manual_schedulers(self) -> list[Any]:
        schedulers = self.lr_schedulers()
        return schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []

    def step_schedule(self, index: int) -> None:
        """Manual optimization, after an update of optimizer `index`: its schedule steps, if it counts updates.
        (Under automatic optimization Lightning steps the schedules itself.)"""
        if self.scheduler_interval == "step" and self._manual_schedulers():
            self._manual_schedulers()[index].step()

    def on_train_epoch_end(self) -> None:
        # Lightning steps schedulers itself under automatic optimization; manual optimization
        # (the GANs) steps the epoch schedules here, once per epoch, and the per-update ones in step_schedule.
        if self.automatic_optimization or self.scheduler_interval != "epoch":
            return
        for scheduler in self._manual_schedulers():
            scheduler.step()
