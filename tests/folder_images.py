"""Folders of real image files (PNG, JPEG, WebP) that the data=folder tests point genlab at."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_image(path: Path, array: np.ndarray, format: str | None = None) -> Path:
    """uint8 (H, W) grey or (H, W, 3) colour, saved by Pillow in the format its suffix names."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format, **({"quality": 95} if path.suffix in (".jpg", ".jpeg") else {}))
    return path


def colour(rng: np.random.Generator, height: int, width: int, tint: int) -> np.ndarray:
    """A smooth colour image (JPEG keeps it close), tinted per class so that the classes differ."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, tint)], -1)
    return np.clip(base + rng.integers(-8, 9, size=base.shape), 0, 255).astype(np.uint8)


def make_class_folder(root: Path, per_class: int = 6, size: int = 20, seed: int = 0,
                      classes: tuple[str, ...] = ("cats", "dogs")) -> Path:
    """root/<class>/*.png|jpg|webp, colour, sizes around `size` (some not square)."""
    rng = np.random.default_rng(seed)
    suffixes = (".png", ".jpg", ".webp")
    for c, name in enumerate(classes):
        for i in range(per_class):
            h, w = size + int(rng.integers(0, 6)), size + int(rng.integers(0, 10))
            write_image(root / name / f"{i:03d}{suffixes[i % 3]}", colour(rng, h, w, 60 + 120 * c))
    return root


def make_flat_folder(root: Path, count: int = 12, size: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(count):
        write_image(root / f"img_{i:03d}.png", colour(rng, size, size + i % 3, 100))
    return root
