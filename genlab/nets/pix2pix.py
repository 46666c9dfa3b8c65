"""pix2pix's networks (Isola et al. 2017), which CycleGAN (Zhu et al. 2017) shares, sized per image size.

`UNetGenerator`: an input image (C_in, H, W) -> an image (C_out, H, W) in [-1, 1]. Encoder blocks of 4x4
stride-2 convs (LeakyReLU 0.2, batch norm), decoder blocks of 4x4 stride-2 transposed convs (ReLU, batch norm,
dropout 0.5 on the blocks next to the bottleneck), each decoder block fed the mirrored encoder block's output
(the skip connections), tanh out. The paper's 8 levels take 256 px to 1x1, as `depth` 5 takes 32 px (28 px is
padded to 32 and cropped back), 6 takes 64 px and 7 takes 128 px.
`PatchGAN`: a critic that scores overlapping patches, each score a logit; `layers` strided blocks (the paper's
70x70 PatchGAN has 3 at 256 px; 1 gives its 16x16 PatchGAN, half of a 28-32 px image; 2 its 34x34 one).
Conditional on an input image when given one (pix2pix's D(x, y) sees both, concatenated); CycleGAN's critics see
one image. `depth` and `layers` left None take the entry of `by_size` for the image's height (configs/model/net/
pix2pix.yaml holds the table).
Weights start from N(0, 0.02), batch norm scales from N(1, 0.02), as the reference code's `init_weights`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import is_positive_integer, require
from genlab.nets.layers import sized

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    require(kind in NORMS, "model.net.*.norm", kind, " or ".join(NORMS))
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The reference code's `init_type=normal`: conv weights N(0, gain), norm scales N(1, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: `width` channels at the first level, doubling per level up to `max_channels`."""

    def __init__(
        self, in_channels: int, out_channels: int, width: int = 32, depth: int | None = 5, max_channels: int = 256,
        dropout: float = 0.5, dropout_blocks: int = 2, norm: str = "batch",
        image_shape: Sequence[int] | None = None, by_size: Mapping[Any, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        depth = sized(image_shape, by_size, {"depth": depth}, "model.net.generator")["depth"]
        require(is_positive_integer(width), "model.net.generator.width", width, "a positive integer")
        require(is_positive_integer(depth) and depth >= 2, "model.net.generator.depth", depth, "an integer >= 2")
        require(0 <= dropout < 1, "model.net.generator.dropout", dropout, "a number in [0, 1)")
        channels = [min(width * 2**level, max_channels) for level in range(depth)]
        self.depth = depth
        bias = norm != "batch"  # a batch norm's shift makes a conv's bias redundant (the reference code's use_bias)
        self.down = nn.ModuleList()
        for level, out in enumerate(channels):
            if level == 0:  # outermost: no activation before, no norm after
                self.down.append(nn.Conv2d(in_channels, out, 4, 2, 1))
                continue
            innermost = level == depth - 1
            self.down.append(nn.Sequential(
                nn.LeakyReLU(0.2), nn.Conv2d(channels[level - 1], out, 4, 2, 1, bias=bias or innermost),
                norm_layer("none" if innermost else norm, out)))
        self.up = nn.ModuleList()
        for level in reversed(range(1, depth)):  # innermost first; its input has no skip
            inputs = channels[level] * (1 if level == depth - 1 else 2)
            drop = 1 <= depth - 1 - level <= dropout_blocks and dropout > 0
            self.up.append(nn.Sequential(
                nn.ReLU(), nn.ConvTranspose2d(inputs, channels[level - 1], 4, 2, 1, bias=bias),
                norm_layer(norm, channels[level - 1]), *([nn.Dropout(dropout)] if drop else [])))
        self.out = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * channels[0], out_channels, 4, 2, 1), nn.Tanh())
        init_weights(self)

    def forward(self, source: Tensor) -> Tensor:
        height, width = source.shape[-2:]
        size = 2**self.depth
        pad_h, pad_w = (-height) % size, (-width) % size
        x = F.pad(source, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate") \
            if pad_h or pad_w else source
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            x = block(x)
            x = torch.cat([x, skips.pop()], dim=1)
        x = self.out(x)
        return x[..., pad_h // 2: pad_h // 2 + height, pad_w // 2: pad_w // 2 + width]


class PatchGAN(nn.Module):
    """pix2pix's PatchGAN critic: one logit per overlapping patch, (N, 1, h, w)."""

    def __init__(
        self, in_channels: int, width: int = 32, layers: int | None = 1, norm: str = "batch",
        image_shape: Sequence[int] | None = None, by_size: Mapping[Any, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        layers = sized(image_shape, by_size, {"layers": layers}, "model.net.discriminator")["layers"]
        require(is_positive_integer(layers), "model.net.discriminator.layers", layers, "a positive integer")
        bias = norm != "batch"
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        current = width
        for layer in range(1, layers):
            out = width * min(2**layer, 8)
            blocks += [nn.Conv2d(current, out, 4, 2, 1, bias=bias), norm_layer(norm, out), nn.LeakyReLU(0.2)]
            current = out
        out = width * min(2**layers, 8)
        blocks += [nn.Conv2d(current, out, 4, 1, 1, bias=bias), norm_layer(norm, out), nn.LeakyReLU(0.2),
                   nn.Conv2d(out, 1, 4, 1, 1)]
        self.net = nn.Sequential(*blocks)
        init_weights(self)

    def forward(self, image: Tensor, condition: Tensor | None = None) -> Tensor:
        return self.net(image if condition is None else torch.cat([condition, image], dim=1))
