"""A VAE's math: the negative ELBO with the reparameterisation trick (Kingma & Welling 2013), and its decoder's images."""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn

from genlab.errors import is_non_negative_number, require
from genlab.families.base import OneLossFamily, Terms, latent_vector, require_networks
from genlab.objectives import gaussian_kl_divergence, reconstruction_loss, reparameterize


class VAE(OneLossFamily):
    """Encoder q(z|x[,y]) and decoder p(x|z[,y]); conditional when `num_classes` > 0 (CVAE, Sohn et al. 2015).

    Pixels are modelled in [0, 1]: the batch in [-1, 1] is mapped back before the likelihood.
    Its terms, per image: `reconstruction` (-log p(x|z)), `kl`, `loss` (what is minimised:
    reconstruction + kl_weight * kl) and `elbo` (= -(reconstruction + kl), the bound itself,
    whatever `kl_weight` is).
    """

    def __init__(
        self,
        net: Mapping[str, nn.Module],
        latent_dim: int = 16,
        kl_weight: float = 1.0,
        likelihood: str = "bernoulli",
        num_classes: int = 0,
    ) -> None:
        super().__init__(latent_vector(latent_dim), num_classes)
        require_networks(net, ("encoder", "decoder"), "a VAE", "model/net=conv_vae")
        require(is_non_negative_number(kl_weight), "model.kl_weight", kl_weight, "a number >= 0")
        self.latent_dim = latent_dim
        self.encoder, self.decoder = net["encoder"], net["decoder"]
        self.kl_weight, self.likelihood = kl_weight, likelihood
        self.reconstruction_loss = reconstruction_loss(likelihood)

    def image_network(self) -> nn.Module:
        return self.decoder

    def parameters_of(self, role: str) -> Iterable[nn.Parameter]:
        return self.parameters()  # one update of the whole model (encoder and decoder) per batch

    def loss(self, images: Tensor, labels: Tensor | None) -> Terms:
        """Batch means of the negative ELBO's terms for images in [-1, 1]; `loss` keeps its graph."""
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

    def validation_terms(self, images: Tensor, labels: Tensor | None, batch_index: int) -> Terms:
        return {name: value.detach() for name, value in self.loss(images, labels).items()}

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
