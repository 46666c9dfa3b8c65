"""Networks adapt to each data set's shape and to class conditioning."""

from __future__ import annotations

import pytest
import torch

from genlab.errors import ConfigError
from genlab.nets import dcgan, mlp

SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@pytest.mark.parametrize("family", [dcgan, mlp], ids=["dcgan", "mlp"])
@pytest.mark.parametrize("dataset", SHAPES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_generator_output_matches_the_data_shape(family, dataset, num_classes):
    shape = SHAPES[dataset]
    generator = family.Generator(latent_dim=16, image_shape=shape, num_classes=num_classes)
    discriminator = family.Discriminator(image_shape=shape, num_classes=num_classes)
    labels = torch.tensor([1, 2, 3]) if num_classes else None
    images = generator(torch.randn(3, 16), labels)
    assert images.shape == (3, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images, labels).shape == (3,)


def test_conditional_generator_uses_the_label():
    torch.manual_seed(0)
    generator = dcgan.Generator(latent_dim=8, image_shape=(1, 28, 28), base_channels=8, num_classes=10).eval()
    z = torch.randn(1, 8)
    assert not torch.allclose(generator(z, torch.tensor([3])), generator(z, torch.tensor([7])))


@pytest.mark.parametrize("norm", ["batch", "layer", "none", "spectral"])
def test_discriminator_norm_choices(norm):
    discriminator = dcgan.Discriminator(image_shape=(1, 28, 28), base_channels=8, norm=norm)
    has_batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())
    assert has_batch_norm == (norm == "batch")
    assert discriminator(torch.randn(2, 1, 28, 28)).shape == (2,)


def test_shapes_not_divisible_by_four_are_refused():
    with pytest.raises(ConfigError, match="divisible by 4"):
        dcgan.Generator(latent_dim=8, image_shape=(1, 30, 30))


def test_unknown_norm_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="batch, layer, none, spectral"):
        dcgan.Discriminator(image_shape=(1, 28, 28), norm="instance")
