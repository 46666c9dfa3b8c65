"""The hand-written PyTorch training loops that genlab's own path is measured against.

A plain loop is the yardstick: the same networks (built by genlab.builder), optimizers, losses
and batch size as `genlab train`, stepped by hand with no Lightning, logging or callbacks, so
that genlab/plain is what Lightning and genlab add to a step. Its batches come either sliced from
the data set on the device, as genlab's data module does (device_batches), or the usual way:
PIL images through per-item transforms and a shuffling DataLoader (loader_batches), which is
what plain/DataLoader compares.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Callable, Iterator

import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from genlab.builder import build_module, build_optimizers
from genlab.data.datamodule import to_signed_unit
from genlab.data.sources import LabeledImages
from genlab.modules.base import GenerativeModule
from genlab.modules.diffusion import DenoisingModule, DiffusionModule
from genlab.modules.flow import TIME_SCALE
from genlab.modules.vae import VAEModule
from genlab.objectives import (
    adversarial_loss,
    clip_weights_,
    gaussian_kl_divergence,
    gradient_penalty,
    reconstruction_loss,
    reparameterize,
)

Batch = tuple[Tensor, Tensor]
Step = Callable[[Tensor, Tensor], None]


def networks_of(cfg: DictConfig, device: torch.device) -> GenerativeModule:
    """The LightningModule exactly as genlab.builder.build makes it; the plain loop uses its nets only."""
    return build_module(cfg).to(device).train()


def adversarial_step(module: GenerativeModule, cfg: DictConfig) -> Step:
    """genlab/modules/gan.py's training_step without Lightning: a critic step on every batch,
    a generator step on every n_critic-th, one fake batch shared by both; nothing logged."""
    generator, critic = module.generator, module.discriminator
    factories = build_optimizers(cfg)
    opt_g, opt_d = factories["generator"](generator.parameters()), factories["discriminator"](critic.parameters())
    objective = adversarial_loss(cfg.model.loss)
    regularizers = {name: node for name, node in (cfg.model.get("regularizers") or {}).items() if node is not None}
    unknown = set(regularizers) - {"gradient_penalty", "weight_clipping"}
    if unknown:
        raise SystemExit(f"the plain loop writes out gradient_penalty and weight_clipping only, not {sorted(unknown)}")
    gp_weight = regularizers["gradient_penalty"].weight if "gradient_penalty" in regularizers else 0.0
    clip_value = regularizers["weight_clipping"].clip_value if "weight_clipping" in regularizers else None
    n_critic = cfg.model.n_critic
    latent_dim, conditional = cfg.model.latent_dim, cfg.model.num_classes > 0
    critic_steps = itertools.count(1)

    def step(real: Tensor, labels: Tensor) -> None:
        labels = labels if conditional else None
        generator_turn = next(critic_steps) % n_critic == 0
        with torch.set_grad_enabled(generator_turn):
            fake = generator(torch.randn(real.shape[0], latent_dim, device=real.device), labels)
        d_loss = objective.discriminator(critic(real, labels), critic(fake.detach(), labels))
        if gp_weight > 0:
            d_loss = d_loss + gp_weight * gradient_penalty(partial(critic, labels=labels), real, fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if clip_value is not None:
            clip_weights_(critic, clip_value)
        if generator_turn:
            critic.requires_grad_(False)  # as Lightning's toggle_optimizer: the generator's loss makes no critic gradients
            g_loss = objective.generator(critic(fake, labels))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            critic.requires_grad_(True)

    return step


def vae_step(module: GenerativeModule, cfg: DictConfig) -> Step:
    """genlab/modules/vae.py's training step without Lightning: minimise the negative ELBO; nothing logged."""
    encoder, decoder = module.encoder, module.decoder
    optimizer = build_optimizers(cfg)["generator"]([*encoder.parameters(), *decoder.parameters()])
    reconstruction = reconstruction_loss(cfg.model.likelihood)
    kl_weight, conditional = cfg.model.kl_weight, cfg.model.num_classes > 0

    def step(images: Tensor, labels: Tensor) -> None:
        labels = labels if conditional else None
        mu, logvar = encoder(images, labels)
        z = reparameterize(mu, logvar)
        nll = reconstruction(decoder(z, labels), (images + 1) / 2)
        loss = (nll + kl_weight * gaussian_kl_divergence(mu, logvar)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def denoising_step(module: DenoisingModule, cfg: DictConfig) -> Step:
    """genlab/modules/diffusion.py's and flow.py's training step without Lightning, written out: the DDPM
    (eps or v) or flow-matching loss, label dropout for conditional models, gradient-norm clipping
    (trainer.gradient_clip_val) and the EMA of the UNet after each step, as genlab does; nothing logged."""
    net = module.denoiser
    optimizer = build_optimizers(cfg)["generator"](net.parameters())
    clip = cfg.trainer.get("gradient_clip_val")
    average = [p.detach().clone() for p in net.parameters()] if module.ema is not None else None
    decay = module.ema.decay if module.ema is not None else 0.0
    conditional, dropout, null = module.conditional, module.label_dropout, module.num_classes
    ddpm = isinstance(module, DiffusionModule)
    abar = module.schedule.alphas_cumprod.to(next(net.parameters()).device) if ddpm else None

    def step(images: Tensor, labels: Tensor) -> None:
        if conditional:
            labels = torch.where(torch.rand(labels.shape, device=labels.device) < dropout, torch.full_like(labels, null), labels)
        else:
            labels = None
        noise = torch.randn_like(images)
        if ddpm:
            t = torch.randint(0, len(abar), (len(images),), device=images.device)
            a = abar[t].view(-1, 1, 1, 1)
            noisy = a.sqrt() * images + (1 - a).sqrt() * noise
            target = noise if module.schedule.prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * images
            prediction = net(noisy, t.float(), labels)
        else:
            t = torch.rand(len(images), device=images.device).view(-1, 1, 1, 1)
            prediction = net((1 - t) * noise + t * images, t.flatten() * TIME_SCALE, labels)
            target = images - noise
        loss = (prediction - target).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        optimizer.step()
        if average is not None:
            torch._foreach_lerp_(average, [p.detach() for p in net.parameters()], 1 - decay)

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
    """One plain-loop training step on the next batch of `batches` per call, with networks of its own."""
    module = networks_of(cfg, device)
    if isinstance(module, DenoisingModule):
        step = denoising_step(module, cfg)
    else:
        step = vae_step(module, cfg) if isinstance(module, VAEModule) else adversarial_step(module, cfg)
    return lambda: step(*next(batches))
