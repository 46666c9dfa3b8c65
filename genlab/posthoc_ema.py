"""EDM2's post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models",
Section 3 and Appendix C): the length of the average chosen after training, not before.

Training keeps K >= 2 power-function averages of the image network (EDM2 eq. 3): after update t,

    theta_hat_t = beta_t * theta_hat_(t-1) + (1 - beta_t) * theta_t,    beta_t = (1 - 1/t) ** (gamma + 1),

so theta_hat_t weighs update tau by (tau**(gamma+1) - (tau-1)**(gamma+1)) / t**(gamma+1), the integral over
[tau-1, tau] of the profile p(tau) = (gamma+1) tau**gamma / t**(gamma+1). Its width relative to t is

    sigma_rel = sqrt((gamma + 1) / ((gamma + 2)**2 (gamma + 3))),

which EDM2's Algorithm 2 inverts (gamma from sigma_rel; defined for sigma_rel in (0, 0.28)). Every
`snapshot_every` generator steps each average is saved (genlab/run/posthoc_snapshots.py). Afterwards, the
average of any other sigma_rel, at any snapshot's step, is the combination of the snapshots whose profiles
best match its profile in least squares (Algorithm 3): `reconstruction_weights`, then `combine`.

The math (Algorithm 2, the profiles' inner products, the solve) is ema-pytorch's (`ema_pytorch.post_hoc_ema`).
Its `PostHocEMA` class itself is not used: it torch.save's pickled .pt files into a folder it creates when it
is constructed (genlab never unpickles anything from a run folder, and builds a module without touching the
disk: `genlab eval` builds one too), it keeps a reference to the online model beside its own copies (not a
submodule genlab's checkpoints and DDP see the way they see the rest), it counts its own steps rather than
genlab's generator steps, and it stores half-precision snapshots, whose rounding the least-squares weights
(large, of both signs) would amplify.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
from ema_pytorch.post_hoc_ema import sigma_rel_to_gamma, solve_weights
from torch import Tensor, nn

from genlab.errors import ConfigError, is_number, is_positive_integer, require

# sigma_rel in (0, SIGMA_REL_MAX): where EDM2's Algorithm 2 gives a gamma > -1 (a profile that integrates)
SIGMA_REL_MAX = 0.28
OPTIONS = ("sigma_rels", "snapshot_every")


def is_sigma_rel(value: Any) -> bool:
    return is_number(value) and 0 < value < SIGMA_REL_MAX


def gamma_of(sigma_rel: float) -> float:
    """EDM2's Algorithm 2: the exponent gamma of the power-function profile whose relative width is sigma_rel."""
    return float(sigma_rel_to_gamma(float(sigma_rel)))


def sigma_rel_of(gamma: float) -> float:
    """The relative width (std / t) of the profile with exponent gamma, EDM2 Section 3.1's closed form."""
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


def power_beta(t: int, gamma: float) -> float:
    """EDM2 eq. 3: the decay of update t (1, 2, ...); beta_1 = 0, so the first update copies the weights."""
    return (1 - 1 / t) ** (gamma + 1)


@dataclass
class Snapshot:
    """One average at one step: its profile (sigma_rel, gamma), its t (updates averaged), the generator step it
    was taken at, and its tensors (the network's state_dict; empty until read, for a snapshot listed from disk)."""

    sigma_rel: float
    gamma: float
    t: int
    step: int
    tensors: dict[str, Tensor]


class PowerFunctionEMA(nn.Module):
    """One power-function average of `network` (parameters averaged, buffers copied, as genlab/ema.py does).

    `updates` (t) is a buffer, so a checkpoint resumes the average at its own t; `sigma_rel` is one too, so a
    checkpoint of another length is refused instead of silently averaged on with a different gamma.
    """

    def __init__(self, network: nn.Module, sigma_rel: float) -> None:
        super().__init__()
        self.gamma = gamma_of(sigma_rel)
        self.module = copy.deepcopy(network)
        self.module.requires_grad_(False)  # no optimizer and no DDP gradient reduction touch it
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("sigma_rel", torch.tensor(float(sigma_rel)))  # float32: MPS has no float64
        self._sigma_rel = float(sigma_rel)
        # t as a Python int, read from the buffer once after a load: no device sync per update
        self._updates: int | None = 0
        self.register_load_state_dict_post_hook(PowerFunctionEMA._loaded)

    @staticmethod
    def _loaded(module: nn.Module, incompatible: Any) -> None:
        assert isinstance(module, PowerFunctionEMA)
        module._updates = None
        loaded = float(module.sigma_rel.item())
        if not math.isclose(loaded, module._sigma_rel, rel_tol=1e-3):  # as float32, or half precision, rounds it
            raise ConfigError(f"model.ema.posthoc.sigma_rels holds {module._sigma_rel:g} where the checkpoint's averages"
                              f" have {loaded:g}: keep the run's own model.ema.posthoc.sigma_rels to load it")

    @property
    def t(self) -> int:
        """The updates averaged so far."""
        if self._updates is None:
            self._updates = int(self.updates.item())
        return self._updates

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Average in `network`'s current weights (update t + 1) and copy its buffers."""
        t = self.t + 1
        averaged = list(self.module.parameters())
        current = [p.detach() for p in network.parameters()]
        torch._foreach_lerp_(averaged, current, 1 - power_beta(t, self.gamma))
        for mine, theirs in zip(self.module.buffers(), network.buffers(), strict=True):
            mine.copy_(theirs)
        self._updates = t
        self.updates.fill_(t)


class PosthocEMA(nn.Module):
    """EDM2's K power-function averages of the image network, and when their snapshots are due.

    A submodule of the training loop (genlab/modules/base.py), so checkpoints hold the averages and a resumed
    run goes on with them exactly; the snapshots themselves are written by genlab/callbacks/posthoc_ema.py.
    """

    def __init__(self, network: nn.Module, sigma_rels: Sequence[float], snapshot_every: int = 250) -> None:
        super().__init__()
        key = "model.ema.posthoc.sigma_rels"
        require(isinstance(sigma_rels, Sequence) and not isinstance(sigma_rels, str) and len(sigma_rels) >= 2,
                key, sigma_rels, "null (off) or a list of two or more relative lengths, e.g. [0.05, 0.10]")
        require(all(is_sigma_rel(s) for s in sigma_rels), key, list(sigma_rels),
                f"relative lengths in (0, {SIGMA_REL_MAX}), EDM2's range, e.g. [0.05, 0.10]")
        require(len(set(sigma_rels)) == len(sigma_rels), key, list(sigma_rels), "distinct lengths, e.g. [0.05, 0.10]")
        require(is_positive_integer(snapshot_every), "model.ema.posthoc.snapshot_every", snapshot_every,
                "a positive number of generator steps, e.g. 250")
        self.snapshot_every = int(snapshot_every)
        self.averages = nn.ModuleList(PowerFunctionEMA(network, s) for s in sigma_rels)

    @property
    def sigma_rels(self) -> list[float]:
        return [average._sigma_rel for average in self.averages]

    def update(self, network: nn.Module) -> None:
        """Average in `network`'s new weights: after each of its optimizer steps, on every DDP rank alike."""
        for average in self.averages:
            average.update(network)

    def due(self, generator_step: int) -> bool:
        """Whether a snapshot belongs to this generator step (every `snapshot_every`-th, never step 0)."""
        return generator_step > 0 and generator_step % self.snapshot_every == 0

    def snapshots(self, generator_step: int) -> list[Snapshot]:
        """Each average as it stands, copied to the CPU in the standard layout (channels-last copies included): what
        a snapshot file holds."""
        return [Snapshot(a._sigma_rel, a.gamma, a.t, generator_step,
                         {name: tensor.detach().to("cpu", copy=True, memory_format=torch.contiguous_format)
                          for name, tensor in a.module.state_dict().items()})
                for a in self.averages]


def reconstruction_weights(ts: Sequence[int], gammas: Sequence[float], t_r: int, gamma_r: float) -> Tensor:
    """EDM2's Algorithm 3: the weights x (float64) for which sum_i x_i p_i is the least-squares fit of the profile
    (t_r, gamma_r) by the snapshots' profiles (t_i, gamma_i), solved by ema-pytorch's `solve_weights`."""
    as_tensor = lambda values: torch.tensor([float(v) for v in values], dtype=torch.float64)  # noqa: E731
    weights = solve_weights(as_tensor(ts), as_tensor(gammas), as_tensor([t_r]), as_tensor([gamma_r]))
    return weights.reshape(-1)


def combine(snapshots: Iterable[Snapshot], weights: Sequence[float], averaged: set[str]) -> dict[str, Tensor]:
    """sum_i x_i theta_hat_i of the `averaged` tensors (the parameters), summed in float64 and given back in each
    tensor's own dtype; every other entry (batch norm statistics, counters) from the latest snapshot."""
    total: dict[str, Tensor] = {}
    latest: Snapshot | None = None
    for snapshot, weight in zip(snapshots, weights, strict=True):
        for name in averaged:
            term = snapshot.tensors[name].to(torch.float64) * float(weight)
            total[name] = total[name] + term if name in total else term
        if latest is None or snapshot.t > latest.t:
            latest = snapshot
    if latest is None:
        raise ValueError("no snapshots to combine")
    return {name: total[name].to(tensor.dtype) if name in averaged else tensor.clone()
            for name, tensor in latest.tensors.items()}


def build_posthoc_ema(network: nn.Module, options: Mapping[str, Any] | None) -> PosthocEMA | None:
    """The `model.ema.posthoc` node as K averages of `network`, or None while it (or its sigma_rels) is null."""
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise ConfigError(f"model.ema.posthoc must be null or a mapping like {{sigma_rels: [0.05, 0.10],"
                          f" snapshot_every: 500}}, got {options!r}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"model.ema.posthoc.{unknown[0]} is not a post-hoc EMA option; the options are: {', '.join(OPTIONS)}")
    if options.get("sigma_rels") is None:
        return None
    return PosthocEMA(network, **options)
