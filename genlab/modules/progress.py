"""How far a run has trained, counted alike for every family, and the random generators a resume restores.

Lightning counts optimizer steps (two per GAN batch, one per VAE batch), which mean different
amounts of training for different families. `Progress` counts what means the same for all:
`generator_steps` (updates of the network that makes the images: a GAN's generator, a VAE's or a
denoiser's whole network) and `images_seen` (real training images, over all processes), and the
counters the loops need (`critic_steps` of a two-player game, training `batches`). It lives in
checkpoints, so a resumed run counts on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch


@dataclass
class Progress:
    generator_steps: int = 0
    images_seen: int = 0
    # critic steps of a two-player game, across epochs: every n_critic-th is followed by a generator step
    critic_steps: int = 0
    # training batches run, the count Lightning writes its step logs by (every trainer.log_every_n_steps)
    batches: int = 0
    # steps that on_nonfinite=skip left out
    skipped_steps: int = 0

    def axis(self) -> dict[str, float]:
        """The common training axis, as logged (train/*, val/*) and kept in summary.json."""
        return {"generator_steps": float(self.generator_steps), "images_seen": float(self.images_seen)}

    def state_dict(self) -> dict[str, int]:
        return asdict(self)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for field in fields(self):
            setattr(self, field.name, int(state.get(field.name, 0)))


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
