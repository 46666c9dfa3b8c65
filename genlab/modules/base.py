"""What every generative LightningModule offers the callbacks and commands: latents in, images out."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor

from genlab.errors import ConfigError

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class GenerativeModule(pl.LightningModule):
    """Base for the model families: a latent prior, optional class conditioning, optimizers from config.

    `optimizer` is the instantiated `optimizer` config group: partial optimizers under
    `generator` (and `discriminator` for adversarial models), optionally a partial LR
    `scheduler` applied to each optimizer and stepped once per epoch.
    """

    def __init__(self, optimizer: Mapping[str, Any], latent_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be a positive integer, got {latent_dim}")
        self.optimizer_factories = dict(optimizer)
        self.latent_dim = latent_dim
        self.num_classes = num_classes

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
