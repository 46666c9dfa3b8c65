"""Image-to-image measures: how close an output is to its target, how colourful and how varied outputs are.

Images are float tensors (N, C, H, W) in [-1, 1], as genlab's models produce them. Each function
returns one value per image (or per input), so callers average over a data set and can report a spread.
LPIPS is computed only from backbone weights already on this machine: genlab never downloads them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import ConfigError
from genlab.tasks.base import luma as luminance

DATA_RANGE = 2.0  # max - min of the [-1, 1] image range
PSNR_CAP_DB = 100.0
LPIPS_MIN_SIZE = 64

# torchvision's file names for the LPIPS backbones (the basenames of its weight URLs, checked in the tests),
# in the order genlab prefers them: AlexNet is the LPIPS paper's default.
LPIPS_BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
_SLICE = re.compile(r"^(slice\d+|slices\.\d+)\.")


def _check_images(*images: Tensor) -> None:
    shapes = {tuple(x.shape) for x in images}
    if any(x.ndim != 4 for x in images) or len(shapes) != 1:
        raise ConfigError(f"expected (N, C, H, W) images of one shape, got {[tuple(x.shape) for x in images]}")


def _check_samples(samples: Tensor) -> None:
    if samples.ndim != 5 or samples.shape[1] < 2:
        raise ConfigError(
            f"expected (N, K, C, H, W) samples with K >= 2 outputs per input, got shape {tuple(samples.shape)}"
        )


def psnr_per_image(output: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of each image, (N,); data range 2, so both are clamped to [-1, 1] first, and capped at 100 dB.

    The peak is fixed at the range's width, which holds only for values inside it; an image equal to its
    target has infinite PSNR, capped at 100 dB so a mean over images stays finite.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    _check_images(output, target)
    values = peak_signal_noise_ratio(
        output.clamp(-1, 1), target.clamp(-1, 1), data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3)
    )
    return values.clamp(max=PSNR_CAP_DB)


def ssim_per_image(output: Tensor, target: Tensor) -> Tensor:
    """SSIM of each image (Wang et al. 2004), (N,): Gaussian window 11, sigma 1.5, on images moved to [0, 1].

    SSIM's luminance term assumes non-negative intensities and is not shift-invariant, so it is computed
    in [0, 1] with data range 1 (SSIM on [-1, 1] with data range 2 gives other, lower values).
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_images(output, target)
    output, target = ((x.clamp(-1, 1) + 1) / 2 for x in (output, target))
    return structural_similarity_index_measure(
        output, target, gaussian_kernel=True, kernel_size=11, sigma=1.5, data_range=1.0, reduction="none"
    )


def colourfulness(images: Tensor) -> Tensor:
    """Hasler & Süsstrunk (2003) colourfulness of each image, (N,), in the paper's [0, 255] units; 0 for grey.

    M = sqrt(sigma_rg^2 + sigma_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2), rg = R - G, yb = (R + G) / 2 - B,
    with population standard deviations over the pixels.
    """
    _check_images(images)
    if images.shape[1] == 1:
        return images.new_zeros(len(images))
    if images.shape[1] != 3:
        raise ConfigError(f"colourfulness needs 1 or 3 channels, got {images.shape[1]}")
    red, green, blue = ((images.clamp(-1, 1) + 1) * 127.5).flatten(2).unbind(1)
    rg, yb = red - green, 0.5 * (red + green) - blue
    spread = (rg.var(dim=1, correction=0) + yb.var(dim=1, correction=0)).sqrt()
    offset = (rg.mean(dim=1).square() + yb.mean(dim=1).square()).sqrt()
    return spread + 0.3 * offset


def diversity(samples: Tensor) -> Tensor:
    """Mean over pixels of the standard deviation across K outputs for one input, (N,), in [-1, 1] units.

    samples: (N, K, C, H, W), K >= 2 outputs of a stochastic model per input; 0 means it ignores its noise.
    """
    _check_samples(samples)
    return samples.std(dim=1, correction=0).flatten(1).mean(dim=1)


def pairwise_l1(samples: Tensor) -> Tensor:
    """Mean L1 distance (per pixel) over all pairs of the K outputs for each input, (N,): diversity in L1."""
    _check_samples(samples)
    n, k = samples.shape[:2]
    flat = samples.reshape(n, k, -1)
    distances = torch.cdist(flat, flat, p=1) / flat.shape[2]  # (N, K, K), zero diagonal
    return distances.sum(dim=(1, 2)) / (k * (k - 1))


def _lpips_input(images: Tensor) -> Tensor:
    """Clamped to [-1, 1], grey repeated to RGB, upsampled to 64 px a side at least (AlexNet's pools empty 28 px)."""
    images = images.float().clamp(-1, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    height, width = images.shape[2:]
    if min(height, width) < LPIPS_MIN_SIZE:
        size = (max(height, LPIPS_MIN_SIZE), max(width, LPIPS_MIN_SIZE))
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    return images


def _build_lpips(net: str, path: Path) -> torch.nn.Module:
    """torchmetrics' LPIPS with a random backbone (nothing fetched), then torchvision's weights from the file."""
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    model = _NoTrainLpips(net=net, pnet_rand=True)  # linear heads ship with torchmetrics
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    # the backbone's slices keep torchvision's layer indices: slice2.3.weight (slices.1.3.squeeze.weight
    # for SqueezeNet) is features.3.weight (features.3.squeeze.weight)
    backbone = {key: checkpoint[_SLICE.sub("features.", key)] for key in model.net.state_dict()}
    model.net.load_state_dict(backbone)
    return model.eval()


def local_lpips() -> tuple[Callable[[Tensor, Tensor], Tensor] | None, str]:
    """LPIPS (Zhang et al. 2018) per image pair, if a backbone's weights are already here; never downloads.

    Returns (lpips(output, target) -> (N,), "lpips-<net> (<path>)"), or (None, why it is not computed).
    """
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    found = [(net, checkpoints / name) for net, name in LPIPS_BACKBONE_FILES.items()]
    found = [(net, path) for net, path in found if path.is_file()]
    if not found:
        return None, (
            "not computed: no LPIPS backbone weights on this machine (genlab never downloads them); "
            f"put torchvision's alexnet weights ({LPIPS_BACKBONE_FILES['alex']}) in {checkpoints} to enable it"
        )
    net, path = found[0]
    try:
        model = _build_lpips(net, path)
    except Exception as error:  # a private torchmetrics API that moved, or a file that is not these weights
        return None, f"not computed: could not build lpips-{net} offline from {path}: {type(error).__name__}: {error}"

    @torch.no_grad()
    def lpips(output: Tensor, target: Tensor) -> Tensor:
        _check_images(output, target)
        x, y = _lpips_input(output), _lpips_input(target)
        return model.to(x.device)(x, y).reshape(len(x))

    return lpips, f"lpips-{net} ({os.fspath(path)})"


# --- a protocol's scores -------------------------------------------------------------


def classifier_view(images: Tensor, channels: int) -> Tensor:
    """What a domain classifier trained on `channels`-channel images is shown: colour images' luma for a grey one
    (colourised digits are judged on their shapes; their colours by `colourfulness`)."""
    return luminance(images) if channels == 1 and images.shape[1] != 1 else images


def pixel_scores(outputs: Tensor, targets: Tensor) -> dict[str, float]:
    """Mean PSNR and SSIM of outputs against their targets, and for colour targets the mean colourfulness of both
    (a pixel loss's average colour shows as a colourfulness far below the targets')."""
    scores = {"psnr": float(psnr_per_image(outputs, targets).mean()), "ssim": float(ssim_per_image(outputs, targets).mean())}
    if targets.shape[1] == 3:
        scores["colourfulness"] = float(colourfulness(outputs).mean())
        scores["target_colourfulness"] = float(colourfulness(targets).mean())
    return scores
