"""How a VAE trains: maximise the ELBO with the reparameterisation trick (Kingma & Welling 2013)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError, is_non_negative_number, require
from genlab.modules.base import GenerativeModule, latent_vector
from genlab.objectives import gaussian_kl_divergence, reconstruction_loss, reparameterize


class VAEModule(GenerativeModule):
    """Encoder q(z|x[,y]) and decoder p(x|z[,y]); conditional when `num_classes` > 0 (CVAE).

    Pixels are modelled in [0, 1]: the batch in [-1, 1] is mapped back before the likelihood.
    Logged per image: `reconstruction` (-log p(x|z)), `kl`, `loss` (what is minimised) and
    `elbo` (= -(reconstruction + kl), the bound itself, whatever `kl_weight` is).
    """

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        optimizer: Mapping[str, Any],
        latent_dim: int = 16,
        kl_weight: float = 1.0,
        likelihood: str = "bernoulli",
        num_classes: int = 0,
        ema: Mapping[str, Any] | None = None,
        on_nonfinite: str = "stop",
        speed: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer, latent_vector(latent_dim), num_classes, on_nonfinite, speed)
        if "encoder" not in net or "decoder" not in net:
            raise ConfigError(
                f"a VAE needs model.net.encoder and model.net.decoder, got {sorted(net)}: use model/net=conv_vae"
            )
        require(is_non_negative_number(kl_weight), "model.kl_weight", kl_weight, "a number >= 0")
        self.latent_dim = latent_dim
        self.encoder, self.decoder = net["encoder"], net["decoder"]
        self.kl_weight, self.likelihood = kl_weight, likelihood
        self.reconstruction_loss = reconstruction_loss(likelihood)
        self.attach_ema(ema)  # `model.ema`: an average of the decoder, which samples then use
        self.save_hyperparameters(ignore=["net", "optimizer", "speed"])

    def configure_optimizers(self) -> Any:
        optimizer = self._make_optimizer("generator", self.parameters())
        schedulers = self._schedulers_for([optimizer])
        return ([optimizer], schedulers) if schedulers else optimizer

    def _labels(self, labels: Tensor) -> Tensor | None:
        return labels if self.conditional else None

    def elbo_terms(self, images: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        """Batch means of the loss terms for images in [-1, 1]; `loss` keeps its graph."""
        target = (images + 1) / 2
        mu, logvar = self.encoder(images, labels)
        z = reparameterize(mu, logvar)
        reconstruction = self.reconstruction_loss(self.decoder(z, labels), target)
        kl = gaussian_kl_divergence(mu, logvar)
        return {
            "loss": (reconstruction + self.kl_weight * kl).mean(),
            "reconstruction": reconstruction.mean().detach(),
            "kl": kl.mean().detach(),
            "elbo": -(reconstruction + kl).mean().detach(),
        }

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        terms = self.elbo_terms(batch[0], self._labels(batch[1]))
        self.generator_steps += 1  # one update of the whole model (encoder and decoder) per batch
        if self.logs_this_step:
            self.log("train/loss", terms["loss"].detach(), prog_bar=True)
            self.log_dict({f"train/{k}": v for k, v in terms.items() if k != "loss"})
        # returning None makes Lightning skip this optimizer step
        return terms["loss"] if self.loss_is_finite("train/loss", terms["loss"]) else None

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        terms = self.elbo_terms(batch[0], self._labels(batch[1]))
        self.log_dict({f"val/{k}": v.detach() for k, v in terms.items()}, sync_dist=True)

    def _to_images(self, parameters: Tensor) -> Tensor:
        """Decoder output -> the mean image in [-1, 1]."""
        mean = torch.sigmoid(parameters) if self.likelihood == "bernoulli" else parameters.clamp(0, 1)
        return mean * 2 - 1

    def decode(self, noise: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The decoder's mean image for prior samples z = `noise`."""
        return self._to_images(self.decoder(noise, labels))

    @torch.no_grad()
    def reconstruct(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decode the posterior mean of each image: what the VAE keeps of it."""
        was_training = self.training
        self.eval()
        try:
            labels = None if labels is None or not self.conditional else labels.to(self.device)
            mu, _ = self.encoder(images.to(self.device), labels)
            return self.decode(mu, labels)
        finally:
            self.train(was_training)
