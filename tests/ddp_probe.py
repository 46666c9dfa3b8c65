"""A callback that DDP tests add to a `genlab train` run (`+callbacks.probe._target_=tests.ddp_probe.Probe`), so
that each rank's process reports what it drew and what it trained: `<path>/rank<r>.pt` per rank at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch


class Probe(pl.Callback):
    """Records, on every rank: a latent draw at the first training batch (as the family draws its latents), the
    CPU generator's state when each checkpoint is written and on entering the first training step (after a resume
    restored it), the skipped steps and the parameters at the end.

    `nan_rank`, `nan_critic_step`: that rank alone gets a NaN critic loss at that critic step (the others' stay finite).
    """

    def __init__(self, path: str, nan_rank: int | None = None, nan_critic_step: int = 2) -> None:
        self.path = Path(path)
        self.nan_rank, self.nan_critic_step = nan_rank, nan_critic_step
        self.record: dict[str, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.record = {"rank": trainer.global_rank, "saved_states": []}
        self._watch_first_step(pl_module)
        if trainer.global_rank == self.nan_rank:
            self._poison(pl_module)

    def _watch_first_step(self, module: pl.LightningModule) -> None:
        honest = module.training_step

        def training_step(*args: Any, **kwargs: Any) -> Any:
            if "first_step_state" not in self.record:
                self.record["first_step_state"] = torch.get_rng_state()
            return honest(*args, **kwargs)

        module.training_step = training_step

    def _poison(self, module: pl.LightningModule) -> None:
        family, step = module.family, self.nan_critic_step
        honest = family.critic_loss

        def critic_loss(*args: Any, **kwargs: Any) -> Any:
            loss, logs = honest(*args, **kwargs)
            return (loss * float("nan"), logs) if module.progress.critic_steps == step else (loss, logs)

        family.critic_loss = critic_loss

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if "noise" not in self.record:
            self.record["noise"] = pl_module.family.sample_noise(4).cpu()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.record["saved_states"].append(torch.get_rng_state())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record["skipped_steps"] = pl_module.progress.skipped_steps
        self.record["parameters"] = {name: p.detach().cpu().clone() for name, p in pl_module.named_parameters()}
        self.path.mkdir(parents=True, exist_ok=True)
        torch.save(self.record, self.path / f"rank{trainer.global_rank}.pt")
