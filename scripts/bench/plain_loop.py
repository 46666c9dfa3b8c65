"""The hand-written PyTorch training loops that genlab's own path is measured against.

A plain loop is the yardstick: the same family objects (genlab/families/, built by genlab.builder:
the same networks, losses, regularizers, augmentation, label dropout), optimizers, gradient clipping,
EMA and batch size as `genlab train`, stepped by hand with no Lightning, logging, callbacks, progress
counting or non-finite guard. Both sides run one math, so genlab/plain is what genlab's loops
(genlab/modules/) and Lightning add to a step. Its batches come either sliced from the data set on
the device, as genlab's data module does (device_batches), or the usual way: PIL images through
per-item transforms and a shuffling DataLoader (loader_batches), which is what plain/DataLoader compares.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from genlab.builder import build_family, build_optimizers, model_nodes
from genlab.data.datamodule import to_signed_unit
from genlab.data.sources import LabeledImages
from genlab.ema import ExponentialMovingAverage, build_ema
from genlab.families.base import Family, OneLossFamily
from genlab.families.gan import GAN

Batch = tuple[Tensor, Tensor]
Step = Callable[[Tensor, Tensor], None]


def optimizers_of(family: Family, cfg: DictConfig) -> tuple[list[torch.optim.Optimizer], float | None]:
    """One optimizer per role of the family, as genlab's loops make them, and optimizer.clip_grad_norm."""
    factories = build_optimizers(cfg)
    return [factories[role](family.parameters_of(role)) for role in family.roles], factories["clip_grad_norm"]


def take_step(optimizer: torch.optim.Optimizer, loss: Tensor, parameters: list[torch.nn.Parameter], clip: float | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(parameters, clip)
    optimizer.step()


def adversarial_step(gan: GAN, cfg: DictConfig, ema: ExponentialMovingAverage | None) -> Step:
    """A critic step on every batch, a generator step on every n_critic-th, one fake batch shared by both
    (genlab/modules/two_player.py's order), by hand; nothing logged."""
    (opt_g, opt_d), clip = optimizers_of(gan, cfg)
    generator_parameters, critic_parameters = list(gan.parameters_of("generator")), list(gan.parameters_of("discriminator"))
    critic_steps = itertools.count(1)

    def step(real: Tensor, labels: Tensor) -> None:
        labels = gan.labels_of(labels)
        k = next(critic_steps)
        generator_turn = gan.is_generator_turn(k)
        with torch.set_grad_enabled(generator_turn):
            real, fake = gan.augmented(real, gan.generate(len(real), labels))
        d_loss, logs = gan.critic_loss(real, fake, labels, k)
        take_step(opt_d, d_loss, critic_parameters, clip)
        gan.after_critic_step()
        gan.observe(logs["d_real_sign"], len(real), k)
        if generator_turn:
            gan.discriminator.requires_grad_(False)  # as Lightning's toggle_optimizer: no critic gradients from G's loss
            g_loss, _ = gan.generator_loss(real, fake, labels)
            take_step(opt_g, g_loss, generator_parameters, clip)
            gan.discriminator.requires_grad_(True)
            if ema is not None:
                ema.update(gan.image_network())

    return step


def one_loss_step(family: OneLossFamily, cfg: DictConfig, ema: ExponentialMovingAverage | None) -> Step:
    """Minimise the family's loss (genlab/modules/one_player.py's step: the ELBO, the denoising losses with
    label dropout), by hand: one optimizer, gradient clipping, the EMA after each step; nothing logged."""
    (optimizer,), clip = optimizers_of(family, cfg)
    parameters = list(family.parameters_of("generator"))

    def step(images: Tensor, labels: Tensor) -> None:
        take_step(optimizer, family.loss(images, family.labels_of(labels))["loss"], parameters, clip)
        if ema is not None:
            ema.update(family.image_network())

    return step


def device_batches(data: LabeledImages, batch_size: int) -> Iterator[Batch]:
    """Endless shuffled batches sliced from the uint8 data set on the device, scaled there, as genlab does."""
    while True:
        order = torch.randperm(len(data)).to(data.images.device)
        for start in range(0, len(data) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield to_signed_unit(data.images.index_select(0, index)), data.labels.index_select(0, index)


class PILImages(Dataset):
    """torchvision's dataset pattern (datasets.MNIST): uint8 arrays, one PIL image per item, per-item transforms to [-1, 1]."""

    def __init__(self, data: LabeledImages) -> None:
        channels = data.images.shape[1]
        images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C), PIL's layout
        self.images = images[..., 0] if channels == 1 else images
        self.labels = data.labels.tolist()
        half = [0.5] * channels
        self.transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(half, half)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def loader_batches(data: LabeledImages, batch_size: int, device: torch.device, workers: int) -> Iterator[Batch]:
    """Endless batches from a shuffling DataLoader, copied to the device."""
    cuda = device.type == "cuda"
    loader = DataLoader(
        PILImages(data), batch_size=batch_size, shuffle=True, drop_last=True,
        num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
    )
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=cuda), labels.to(device, non_blocking=cuda)


def plain_stepper(cfg: DictConfig, batches: Iterator[Batch], device: torch.device) -> Callable[[], None]:
    """One plain-loop training step on the next batch of `batches` per call, with a family (and EMA) of its own."""
    family = build_family(cfg).to(device).train()
    ema = build_ema(family.image_network(), model_nodes(cfg)[1])
    ema = ema.to(device) if ema is not None else None
    step = adversarial_step(family, cfg, ema) if isinstance(family, GAN) else one_loss_step(family, cfg, ema)
    return lambda: step(*next(batches))
