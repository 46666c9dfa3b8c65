"""What every generative LightningModule offers the callbacks and commands: latents in, images out."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor

from genlab.errors import ConfigError, DivergenceError
from genlab.speed import SpeedOptions, apply_speed_options

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class GenerativeModule(pl.LightningModule):
    """Base for the model families: a latent prior, optional class conditioning, optimizers from config.

    `optimizer` is the instantiated `optimizer` config group: partial optimizers under
    `generator` (and `discriminator` for adversarial models), optionally a partial LR
    `scheduler` applied to each optimizer and stepped once per epoch.

    `on_nonfinite` says what a NaN or infinite loss does: `stop` training with a message
    (checkpoints written so far stay as they are), or `skip` that optimizer step.

    `speed` is the `speed` config node (genlab/speed.py), applied when Lightning sets the module up.
    """

    def __init__(
        self,
        optimizer: Mapping[str, Any],
        latent_dim: int,
        num_classes: int = 0,
        on_nonfinite: str = "stop",
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be a positive integer, got {latent_dim}")
        if on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"on_nonfinite={on_nonfinite!r} is not valid: it must be stop or skip")
        self.optimizer_factories = dict(optimizer)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.on_nonfinite = on_nonfinite
        self.skipped_steps = 0
        self.speed = SpeedOptions.from_config(speed)

    def configure_model(self) -> None:
        # Lightning calls this once per fit, before it moves the module to its device; the
        # networks are the module's children (generator and discriminator, encoder and decoder).
        apply_speed_options(self.children(), self.speed)

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

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I), drawn on the CPU generator when given (fixed grids) and moved to the device."""
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu" if generator else self.device)
        return z.to(self.device)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [-1, 1] for latents `z` (and class labels, for conditional models)."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """`decode` in eval mode (BatchNorm running statistics), restoring the training mode after."""
        was_training = self.training
        self.eval()
        try:
            return self.decode(z.to(self.device), None if labels is None else labels.to(self.device))
        finally:
            self.train(was_training)

    def _make_optimizer(self, role: str, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if role not in self.optimizer_factories:
            raise ConfigError(f"the optimizer config has no `{role}` entry, which {type(self).__name__} needs")
        return self.optimizer_factories[role](parameters)

    def _schedulers_for(self, optimizers: list[torch.optim.Optimizer]) -> list[Any]:
        factory = self.optimizer_factories.get("scheduler")
        return [factory(opt) for opt in optimizers] if factory is not None else []

    def on_train_epoch_end(self) -> None:
        # Lightning steps schedulers itself under automatic optimization; manual optimization
        # (the GANs) steps them here, once per epoch.
        if self.automatic_optimization:
            return
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
