"""One image file to a uint8 (C, S, S) array under a stated policy, or the reason it cannot be.

- Orientation: the EXIF orientation is applied (a phone photo stands as it was taken).
- Transparency is flattened onto white; palette and 16-bit images are converted like any other.
- Channels: `channels=3` makes every image RGB (a grey image is repeated on the three channels, which loses
  nothing); `channels=1` makes it grey, and refuses a colour image rather than drop its colour.
- Size: `resize=center_crop` (the default; ADM's and StudioGAN's) scales the shorter side to `size` with
  Pillow's antialiased bicubic filter and crops the centre; `resize=stretch` scales both sides to `size`,
  ignoring the aspect ratio. An image smaller than `size` on either side is refused, never enlarged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RESIZE_POLICIES = ("center_crop", "stretch")
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


class BadImage(Exception):
    """A file that cannot become a training image; the message says why, without the path."""


def _flatten(image):
    """RGB or L without an alpha channel: transparent parts onto white."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float grey: to 8 bits by range
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("1", "L", "RGB"):
        return image.convert("L") if image.mode == "1" else image
    rgba = image.convert("LA" if image.mode == "LA" else "RGBA")
    white = Image.new(rgba.mode, rgba.size, (255,) * len(rgba.mode))
    return Image.alpha_composite(white, rgba).convert(rgba.mode[:-1]) if rgba.mode == "RGBA" else \
        Image.composite(rgba, white, rgba.getchannel("A")).convert("L")


def _is_colour(image) -> bool:
    if image.mode in GREY_MODES:
        return False
    rgb = np.asarray(image.convert("RGB"))
    return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def decode(path: Path, size: int, channels: int, resize: str = "center_crop") -> np.ndarray:
    """The image at `path` as uint8 (channels, size, size); BadImage says why it cannot be."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            if opened.format == "JPEG":  # decode at a power-of-two reduction that still covers `size`: far faster
                opened.draft("RGB" if channels == 3 else "L", (size, size))
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadImage(f"cannot be read as an image ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    width, height = image.size
    if min(width, height) < size:
        raise BadImage(f"is {width}x{height}, smaller than data.image_size={size}")
    if channels == 1 and _is_colour(image):
        raise BadImage("is a colour image but data.channels=1")
    image = _flatten(image).convert("RGB" if channels == 3 else "L")
    if resize == "stretch":
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    else:
        scale = size / min(width, height)
        scaled = (max(size, round(width * scale)), max(size, round(height * scale)))
        image = image.resize(scaled, Image.Resampling.BICUBIC)
        left, top = (scaled[0] - size) // 2, (scaled[1] - size) // 2
        image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)
