"""A small CNN domain classifier: its class probabilities drive the Inception Score and class
coverage of MNIST/CIFAR-10 samples, its penultimate activations a cheap domain-specific FID.

ImageNet's Inception knows nothing of digits; a classifier trained on the data set itself
measures what matters there (is this a clear "7"?) in a fraction of the time.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from genlab.nets.layers import quarter_size


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, then a 2x2 max-pool that halves the map (VGG's pattern)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(True),
        nn.MaxPool2d(2),
    )


class Classifier(nn.Module):
    """image (N, C, H, W) in [-1, 1] -> class logits (N, num_classes); H and W divisible by 4."""

    def __init__(
        self, image_shape: Sequence[int], num_classes: int = 10, base_channels: int = 32, feature_dim: int = 128
    ):
        super().__init__()
        channels, h4, w4 = quarter_size(image_shape)
        self.num_classes, self.feature_dim = num_classes, feature_dim
        c = base_channels
        self.body = nn.Sequential(
            conv_block(channels, c),  # -> (N, c, H/2, W/2)
            conv_block(c, 2 * c),  # -> (N, 2c, H/4, W/4)
            nn.Flatten(),
            nn.Linear(2 * c * h4 * w4, feature_dim),
            nn.ReLU(True),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images: Tensor) -> Tensor:
        """Penultimate activations (N, feature_dim): the classifier's embedding of each image."""
        return self.body(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))
