"""What the image-to-image families share, and the simplest of them: `Regress`, a CNN generator fitted by a pixel loss.

An image-to-image family makes an image of the task's target from the task's input (genlab/tasks/): its
condition is the input image, the third member of a task's batch (target, labels, input), where a class
label is a noise family's. It samples through `Family.sample(noise=input)`, so the EMA, `genlab eval` and
`genlab sample` reach it the way they reach the others (`translate` says so by name).

Its networks are built here, from the partial nets of `model.net` sized by the task (input and target
channels), each from the random state that (`model.seed`, its role) gives, drawing nothing from the run's
random stream: adding a critic changes neither the generator's first weights nor the draws training makes,
so `pix2pix` at adversarial weight 0 trains bit for bit as `regress` with the same nets.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ConfigError, is_integer, is_number, require
from genlab.families.base import OneLossFamily, Terms, require_networks
from genlab.tasks.base import Task

PIXEL_DISTANCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"l1": F.l1_loss, "l2": F.mse_loss}


def pixel_distance(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    require(name in PIXEL_DISTANCES, "model.pixel_loss", name, " or ".join(PIXEL_DISTANCES))
    return PIXEL_DISTANCES[name]


def role_seed(seed: int, role: str) -> int:
    """A seed for one network's first weights, from the run's seed and the network's role."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{role}".encode()).digest()[:7], "little")


def build_networks(net: Mapping[str, Any], sizes: Mapping[str, dict[str, int]], seed: int) -> dict[str, nn.Module]:
    """Each role's network: a partial net (`_partial_: true` in `model/net/*.yaml`) called with its `sizes`, under
    its own seed (the run's random stream is left as it was); a network given built is kept as it is."""
    require(is_integer(seed), "model.seed", seed, "an integer")
    built: dict[str, nn.Module] = {}
    for role, size in sizes.items():
        if role not in net:
            continue
        factory = net[role]
        if isinstance(factory, nn.Module):
            built[role] = factory
            continue
        if not callable(factory):
            raise ConfigError(f"model.net.{role} is a {type(factory).__name__}, not a network: give it a _target_ and"
                              " _partial_: true (configs/model/net/pix2pix.yaml)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(role_seed(seed, role))
            built[role] = factory(**size)
    return built


def check_task(task: Any, family: str) -> Task:
    if task is None:
        raise ConfigError(f"model={family} makes an image from an input image: choose what it learns with"
                          " task=<name> (configs/task/: inpaint, superres, denoise, colorize, colorize_digits, edges,"
                          " restyle)")
    if not isinstance(task, Task):
        raise ConfigError(f"model.task is a {type(task).__name__}, not a genlab task (genlab/tasks/)")
    return task


class Translation:
    """Mixed into each image-to-image family (before its Family base): the task, its input as the condition,
    sampling from an input, and test-time dropout seeded by the sampling generator."""

    task: Task
    test_dropout: bool = False
    paired_only: bool = True  # whether the family needs the true target of each input to learn

    def use_task(self, task: Any, family: str) -> None:
        self.task = check_task(task, family)
        self.check_pairing(self.task, family)

    @classmethod
    def check_pairing(cls, task: Task, family: str) -> None:
        """A family that learns from pairs refuses an unpaired task."""
        if cls.paired_only and not task.paired:
            raise ConfigError(f"task={task.name} is unpaired (each input's target is unknown in training), and"
                              f" model={family} learns from pairs: use model=cyclegan, or a paired task")

    def condition_of(self, batch: tuple[Tensor, ...]) -> Any:
        if len(batch) < 3:
            raise ConfigError(f"{type(self).__name__} trains on a task's (target, labels, input) batches: build the"
                              " data with the task (genlab.builder.build_datamodule)")
        return batch[2]

    def kept(self, x: Tensor, source: Tensor) -> Tensor:
        """x with the task's known pixels put back (inpainting: an output is the known image with its hole
        filled, for every family alike); x itself for the other tasks."""
        known = self.task.known(source)
        if known is None:
            return x
        image, hole = known
        return image + hole * (x - image)

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """G(input), the known pixels kept, dropout's masks from `generator` (test_dropout): the one-pass families'
        outputs; `noise` is the task's input here (Translation.translate)."""
        with self.dropout_at_test(self.generator, generator):  # type: ignore[attr-defined]
            return self.kept(self.generator(noise), noise)  # type: ignore[attr-defined]

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise ConfigError(f"{type(self).__name__} makes outputs from a task's inputs, not from noise: call"
                          " translate(inputs), or sample(noise=inputs)")

    def translate(self, source: Tensor, generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """Outputs for a batch of task inputs, in eval mode; `generator` seeds whatever the family draws."""
        return self.sample(noise=source, generator=generator, **options)  # type: ignore[attr-defined]

    @property
    def stochastic(self) -> bool:
        """Whether two calls on one input may differ (test-time dropout, a sampler's noise)."""
        return self.test_dropout

    @contextmanager
    def dropout_at_test(self, network: nn.Module, generator: torch.Generator | None) -> Iterator[None]:
        """pix2pix's noise: dropout kept on when sampling (Isola et al. 2017, sec. 3.1), its masks drawn from
        `generator` (a fixed seed gives fixed outputs) without touching the run's random stream."""
        layers = [m for m in network.modules() if isinstance(m, nn.Dropout)] if self.test_dropout else []
        if not layers:
            yield
            return
        device = next(network.parameters()).device
        seed = int(torch.randint(0, 2**62, (), generator=generator)) if generator is not None else None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            for layer in layers:
                layer.train()
            try:
                yield
            finally:
                for layer in layers:
                    layer.train(network.training)

    def standing_batches(self) -> Callable[[int], None]:
        def refuse(n: int) -> None:
            raise ConfigError("model.ema.standing_statistics measures batch norm on noise, and an image-to-image family"
                              " is fed task inputs: set model.ema.standing_statistics=0")

        return refuse


class Regress(Translation, OneLossFamily):
    """The CNN generator trained on pixels alone: `pixel_weight` * L1 (or L2) between G(input) and the target.

    With pix2pix's nets and weight this is pix2pix at adversarial weight 0, exactly (`pixel_weight` 100, the
    paper's lambda; under Adam the scale of a lone loss barely matters). Predicting the conditional median (L1)
    or mean (L2), it blurs what the input leaves uncertain: the pixel loss's answer, beside which the
    adversarial and diffusion families are judged.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        task: Task | None = None,
        pixel_loss: str = "l1",
        pixel_weight: float = 100.0,
        test_dropout: bool = False,
        seed: int = 0,
    ) -> None:
        self.use_task(task, "regress")
        self.test_dropout = bool(test_dropout)
        self.distance = pixel_distance(pixel_loss)
        require(is_number(pixel_weight) and pixel_weight > 0, "model.pixel_weight", pixel_weight, "a positive number")
        nets = build_networks(net, {"generator": self.generator_sizes(self.task)}, seed)
        super().__init__(self.task.source_shape)
        require_networks(nets, ("generator",), "regress", "model/net=pix2pix")
        self.generator = nets["generator"]
        self.pixel_weight = float(pixel_weight)

    @staticmethod
    def generator_sizes(task: Task) -> dict[str, int]:
        return {"in_channels": task.source_shape[0], "out_channels": task.target_shape[0]}

    def image_network(self) -> nn.Module:
        return self.generator

    def parameters_of(self, role: str) -> Iterable[nn.Parameter]:
        return self.generator.parameters()

    def loss(self, images: Tensor, source: Tensor) -> Terms:
        pixel = self.distance(self.kept(self.generator(source), source), images)
        return {"loss": self.pixel_weight * pixel, "pixel": pixel.detach()}

    def validation_terms(self, images: Tensor, source: Tensor, batch_index: int) -> Terms:
        with torch.no_grad():
            return {"pixel": self.distance(self.kept(self.generator(source), source), images)}
