"""Write mnist_mini's 5,000 real digits as a folder of image files: data=folder's offline example.

One sub-folder per class (`0/` ... `9/`), or flat with `--flat`; each digit enlarged to `--size` px with
Pillow's bicubic filter, tinted (`--colour`: a colour per class on a grey background) so the folder holds
RGB images, and saved as PNG and JPEG in turn, as a folder of someone's pictures would mix them.

    python scripts/digit_folder.py --out data/digits64 --size 64
    genlab train model=dcgan data=folder data.root=data/digits64 data.image_size=64
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from genlab.data.formats import read_mnist_csv
from genlab.data.sources import MNISTMini

# one colour per class (RGB), a digit drawn in it on a mid-grey background
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=np.float64)


def digit_image(digit: np.ndarray, label: int, size: int, colour: bool):
    from PIL import Image

    grey = Image.fromarray(digit.astype(np.uint8), "L").resize((size, size), Image.Resampling.BICUBIC)
    if not colour:
        return grey.convert("RGB")
    ink = np.asarray(grey, dtype=np.float64)[..., None] / 255.0
    rgb = (1 - ink) * 96.0 + ink * PALETTE[label]
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (must not exist yet)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--count", type=int, default=5000, help="how many digits (at most 5,000)")
    parser.add_argument("--flat", action="store_true", help="no class sub-folders")
    parser.add_argument("--grey", action="store_true", help="grey digits instead of one colour per class")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"--out {args.out} exists: choose a new folder (nothing of yours is overwritten)")
    images, labels = read_mnist_csv(MNISTMini().path())
    for i, (digit, label) in enumerate(zip(images[: args.count], labels[: args.count])):
        folder = args.out if args.flat else args.out / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".png" if i % 2 == 0 else ".jpg"
        options = {"quality": 95} if suffix == ".jpg" else {}
        digit_image(digit.reshape(28, 28), int(label), args.size, not args.grey).save(folder / f"{i:05d}{suffix}", **options)
    print(f"wrote {min(args.count, len(labels))} images to {args.out}")


if __name__ == "__main__":
    main()
