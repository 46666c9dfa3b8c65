"""Each family trained and sampled by a hand-written PyTorch loop, with no Lightning and no Hydra:
run by tests/test_plain_loop.py in a fresh interpreter, which prints one JSON line of what it measured.

What a user of genlab's families writes to use them in their own code (genlab/families/base.py).
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F

from genlab.data.sources import MNISTMini
from genlab.ema import ExponentialMovingAverage
from genlab.families.ddpm import DDPM
from genlab.families.flow import FlowMatching
from genlab.families.gan import GAN
from genlab.families.vae import VAE
from genlab.metrics.frechet import frechet_distance_of_features
from genlab.nets import dcgan, unet, vae

STEPS, BATCH = 30, 32


def batches(seed: int):
    """Shuffled batches of the 4,500 training digits of mnist_mini, in [-1, 1], forever."""
    data = MNISTMini().load("train")
    images, labels = data.images.float() / 127.5 - 1, data.labels
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order) - BATCH + 1, BATCH):
            index = order[start : start + BATCH]
            yield images[index], labels[index]


def pooled(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images, 4).flatten(1)


def distance_to_digits(family, real: torch.Tensor) -> float:
    """FID's formula on 4x4-pooled pixels between 500 samples and 500 held-out digits (cheap, moves early)."""
    return frechet_distance_of_features(pooled(family.sample(500, generator=torch.Generator().manual_seed(1))), pooled(real))


def train_gan(real: torch.Tensor) -> dict[str, float]:
    gan = GAN({"generator": dcgan.Generator(32, (1, 28, 28), base_channels=16),
               "discriminator": dcgan.Discriminator((1, 28, 28), base_channels=16)}, latent_dim=32)
    opt_g = torch.optim.Adam(gan.parameters_of("generator"), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(gan.parameters_of("discriminator"), lr=1e-3, betas=(0.5, 0.999))
    before = distance_to_digits(gan, real)
    for step, (images, _) in zip(range(1, 2 * STEPS + 1), batches(0)):
        fake = gan.generate(len(images), None)
        d_loss, _ = gan.critic_loss(images, fake, None, step)
        opt_d.zero_grad(); d_loss.backward(); opt_d.step()
        gan.after_critic_step()
        gan.discriminator.requires_grad_(False)
        g_loss, _ = gan.generator_loss(images, fake, None)
        opt_g.zero_grad(); g_loss.backward(); opt_g.step()
        gan.discriminator.requires_grad_(True)
    return {"before": before, "after": distance_to_digits(gan, real)}


def train_vae(real: torch.Tensor) -> dict[str, float]:
    model = VAE({"encoder": vae.Encoder((1, 28, 28), 16), "decoder": vae.Decoder(16, (1, 28, 28))}, latent_dim=16)
    optimizer = torch.optim.Adam(model.parameters_of("generator"), lr=1e-3)

    def held_out_elbo() -> float:
        torch.manual_seed(2)
        with torch.no_grad():
            return model.loss(real, None)["elbo"].item()

    before = held_out_elbo()
    for _, (images, labels) in zip(range(STEPS), batches(1)):
        loss = model.loss(images, model.labels_of(labels))["loss"]
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    return {"before": before, "after": held_out_elbo()}


def train_denoiser(family, seed: int) -> dict[str, float]:
    optimizer = torch.optim.Adam(family.parameters_of("generator"), lr=2e-3)
    average = ExponentialMovingAverage(family.image_network(), decay=0.9, rampup=None)
    losses = []
    for _, (images, labels) in zip(range(STEPS), batches(seed)):
        loss = family.loss(images, family.labels_of(labels))["loss"]
        optimizer.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(family.parameters_of("generator"), 1.0)
        optimizer.step()
        average.update(family.image_network())
        losses.append(loss.item())
    with average.applied_to(family):  # sampling with the averaged weights, as genlab's loops do
        samples = family.sample(8, generator=torch.Generator().manual_seed(0), steps=4)
    return {"before": sum(losses[:10]) / 10, "after": sum(losses[-10:]) / 10,
            "samples_finite": bool(torch.isfinite(samples).all()), "samples_shape": list(samples.shape)}


def main() -> None:
    torch.manual_seed(0)
    real = MNISTMini().load("test").images.float() / 127.5 - 1
    results = {
        "gan": train_gan(real),
        "vae": train_vae(real),
        "ddpm": train_denoiser(DDPM({"denoiser": unet.UNet((1, 28, 28), width=8)}, (1, 28, 28), schedule="cosine",
                                    prediction="v", sampler={"method": "ddim", "steps": 4}), 2),
        "flow": train_denoiser(FlowMatching({"denoiser": unet.UNet((1, 28, 28), width=8)}, (1, 28, 28),
                                            sampler={"method": "euler", "steps": 4}), 3),
    }
    results["modules"] = sorted(name for name in ("pytorch_lightning", "lightning", "hydra") if name in sys.modules)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
