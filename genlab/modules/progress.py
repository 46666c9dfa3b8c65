"""How far a run has trained, counted alike for every family, and the random generators a resume restores.

Lightning counts optimizer steps (two per GAN batch, one per VAE batch), which mean different
amounts of training for different families. `Progress` counts what means the same for all:
`generator_steps` (updates of the network that makes the images: a GAN's generator, a VAE's or a
denoiser's whole network) and `images_seen` (real training images, over all processes), and the
counters the loops need (`critic_steps` of a two-player game, training `batches`). It lives in
checkpoints, so a resumed run counts on.

Under DDP each rank draws its own noise (`seed_rank`), and a checkpoint keeps every rank's generators
(`gather_random_states`), each of which that rank restores on resuming.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor


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


def seed_rank(seed: int, rank: int) -> int:
    """Seed this process's generators (torch's CPU and CUDA ones, numpy's, Python's) for DDP rank `rank` of a run
    seeded `seed`; returns the seed used.

    Every rank starts from `seed` (the same initial weights), and each then draws its own latents, augmentations,
    timesteps, noise and label dropout: ranks seeded alike would train on one rank's draws N times. The rank's seed
    is mixed from (seed, rank), not seed + rank, so that the runs of a seed sweep (seed=1,2,...) share no rank's stream.
    """
    mixed = int(np.random.SeedSequence([seed % 2**32, rank]).generate_state(1)[0])
    random.seed(mixed)
    np.random.seed(mixed)
    torch.manual_seed(mixed)  # the CPU generator and every CUDA device's
    return mixed


def random_state(device: torch.device | None = None) -> dict[str, Tensor]:
    """This process's generators that training draws from: torch's CPU one, and on a GPU its own device's (a DDP
    rank draws on one device; the others visible to it are other ranks' or none's)."""
    state = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Restore `random_state(device)`'s generators. A checkpoint of an earlier version holds every visible GPU's
    state as a list: only this device's is taken, and none where the checkpoint saw fewer devices."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or device is None or device.type != "cuda":
        return
    if isinstance(cuda, (list, tuple)):
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= len(cuda):
            return
        cuda = cuda[index]
    torch.cuda.set_rng_state(cuda, device)


def gather_random_states(trainer: Any, device: torch.device | None) -> list[dict[str, Tensor]]:
    """Every DDP rank's `random_state`, in rank order: one all-gather, which every rank reaches, since every rank
    takes part in each checkpoint Lightning writes (rank 0 writes the file)."""
    mine = random_state(device)
    if trainer is None or trainer.world_size < 2:
        return [mine]
    sizes = [len(value) for value in mine.values()]
    flat = torch.cat(list(mine.values())).to(trainer.strategy.root_device)  # NCCL gathers GPU tensors only
    gathered = trainer.strategy.all_gather(flat).cpu()  # (world_size, bytes)
    return [{name: part.clone() for name, part in zip(mine, row.split(sizes))} for row in gathered]


def state_of_rank(saved: Mapping[str, Any] | None, rank: int) -> Mapping[str, Any] | None:
    """The random state rank `rank` restores from a checkpoint's `random_state`: its own (None past the ranks that
    saved, which keep their own seeding). An earlier version saved rank 0's alone, which only rank 0 restores."""
    if not saved:
        return None
    if "ranks" in saved:
        ranks = saved["ranks"]
        return ranks[rank] if rank < len(ranks) else None
    return saved if rank == 0 else None
