"""The UNet of denoising diffusion (Ho et al. 2020, after PixelCNN++ and Wide ResNets), sized from `image_shape`.

x (B, C, H, W) and a time t (B,) -> a tensor of x's shape (the noise, velocity or v the family predicts).
Residual blocks with GroupNorm and the time (and class) embedding added after their first conv,
strided-conv downsampling, nearest-neighbour upsampling, skip connections by concatenation,
self-attention at the resolutions listed in `attention_resolutions` and in the middle.

Conditional nets (num_classes > 0) embed the class into the time embedding; index `num_classes`
is the "no class" token that classifier-free guidance trains with label dropout (Ho & Salimans 2022).
Nets with `durations` take a second time, the length of the interval an average velocity spans
(MeanFlow's t - r, Geng et al. 2025), embedded alike by a second MLP and added.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import is_positive_integer, require
from genlab.nets.layers import sized


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoids of the (float) time t (B,) -> (B, dim), as in DDPM's reference code."""
    half = dim // 2
    dtype = torch.promote_types(t.dtype, torch.float32)  # float32 at least, float64 for float64 times
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    angles = t.to(dtype)[:, None] * frequencies[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with at most `groups` groups that divide `channels` (narrow CPU nets have few channels)."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv, + the embedding's projection, GroupNorm-SiLU-dropout-conv, plus the (1x1-projected) input."""

    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embedding = nn.Linear(embedding_dim, out_channels)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity (DDPM's zero-init of the last conv)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embedding(F.silu(embedding))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, residual (DDPM's AttnBlock)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)  # each (B, HW, C)
        attended = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(attended.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """The denoiser: `width` channels at full resolution, times `channel_mults[i]` at level i (halving H, W each level).

    `attention_resolutions`: the feature-map sizes (H) that get self-attention after each residual
    block (e.g. [7] for 28x28 with mults (1, 2, 2); DDPM's CIFAR-10 net used [16]).
    Either left None takes the entry of `by_size` for the image's height (configs/model/net/unet.yaml holds
    the layouts per size), so one config builds the net at 28, 32, 64 or 128 px.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        width: int = 32,
        channel_mults: Sequence[int] | None = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_resolutions: Sequence[int] | None = (7,),
        dropout: float = 0.0,
        norm_groups: int = 32,
        num_classes: int = 0,
        condition_channels: int = 0,
        durations: bool = False,
        by_size: Mapping[int, Mapping[str, Sequence[int]]] | None = None,
    ) -> None:
        super().__init__()
        layout = sized(image_shape, by_size, {"channel_mults": channel_mults,
                                              "attention_resolutions": attention_resolutions}, "model.net.denoiser")
        channel_mults, attention_resolutions = layout["channel_mults"], layout["attention_resolutions"]
        require(is_positive_integer(width), "model.net.denoiser.width", width, "a positive integer")
        require(len(channel_mults) > 0 and all(is_positive_integer(m) for m in channel_mults),
                "model.net.denoiser.channel_mults", list(channel_mults), "a non-empty list of positive integers")
        require(is_positive_integer(num_res_blocks), "model.net.denoiser.num_res_blocks", num_res_blocks,
                "a positive integer")
        channels, height, _ = image_shape
        divisor = 2 ** (len(channel_mults) - 1)
        require(height % divisor == 0 and image_shape[2] % divisor == 0, "model.net.denoiser.channel_mults",
                list(channel_mults), f"short enough that {divisor} divides the image size {tuple(image_shape[1:])}")
        self.num_classes = num_classes
        embedding_dim = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, embedding_dim), nn.SiLU(), nn.Linear(embedding_dim, embedding_dim))
        self.duration_mlp = nn.Sequential(nn.Linear(width, embedding_dim), nn.SiLU(),
                                          nn.Linear(embedding_dim, embedding_dim)) if durations else None
        # the last index is the "no class" token of classifier-free guidance
        self.class_embedding = nn.Embedding(num_classes + 1, embedding_dim) if num_classes > 0 else None
        self.width = width
        block = lambda i, o: ResidualBlock(i, o, embedding_dim, dropout, norm_groups)  # noqa: E731

        # an image condition (Palette, SR3: the task's input) is concatenated to x before the first conv
        self.conv_in = nn.Conv2d(channels + condition_channels, width, 3, padding=1)
        self.down = nn.ModuleList()
        skips, current, resolution = [width], width, height
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                attention = resolution in attention_resolutions
                self.down.append(nn.ModuleList([block(current, width * mult)] +
                                               ([SelfAttention(width * mult, norm_groups)] if attention else [])))
                current = width * mult
                skips.append(current)
            if level < len(channel_mults) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(current, current, 3, stride=2, padding=1)]))
                skips.append(current)
                resolution //= 2
        self.middle = nn.ModuleList([block(current, current), SelfAttention(current, norm_groups), block(current, current)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                attention = resolution in attention_resolutions
                self.up.append(nn.ModuleList([block(current + skips.pop(), width * mult)] +
                                             ([SelfAttention(width * mult, norm_groups)] if attention else [])))
                current = width * mult
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(current, current, 3, padding=1)]))
                resolution *= 2
        self.out = nn.Sequential(group_norm(current, norm_groups), nn.SiLU(), nn.Conv2d(current, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def embed(self, t: Tensor, labels: Tensor | None, duration: Tensor | None = None) -> Tensor:
        """The time embedding (B, 4*width), plus the duration's and the class's when the net takes them."""
        embedding = self.time_mlp(timestep_embedding(t, self.width))
        if (duration is None) != (self.duration_mlp is None):
            raise ValueError("a duration is what a net with durations=True takes, and only it")
        if self.duration_mlp is not None:
            embedding = embedding + self.duration_mlp(timestep_embedding(duration, self.width))
        if self.class_embedding is not None:
            if labels is None:  # no labels: the "no class" token
                labels = torch.full((len(t),), self.num_classes, device=t.device, dtype=torch.long)
            embedding = embedding + self.class_embedding(labels)
        return embedding

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None, duration: Tensor | None = None) -> Tensor:
        batch = lambda time: time.expand(len(x)) if time.dim() == 0 else time  # noqa: E731
        embedding = self.embed(batch(t), labels, None if duration is None else batch(duration))
        h = self.conv_in(x)
        skips = [h]
        for layers in self.down:
            if isinstance(layers[0], ResidualBlock):
                h = layers[0](h, embedding)
                for attention in layers[1:]:
                    h = attention(h)
            else:  # downsample
                h = layers[0](h)
            skips.append(h)
        h = self.middle[2](self.middle[1](self.middle[0](h, embedding)), embedding)
        for layers in self.up:
            if isinstance(layers[0], ResidualBlock):
                h = layers[0](torch.cat([h, skips.pop()], dim=1), embedding)
                for attention in layers[1:]:
                    h = attention(h)
            else:  # upsample
                h = layers[1](layers[0](h))
        return self.out(h)
