"""Train every model family on mnist_mini with its paper's defaults and keep one sample grid each.

The README's model table shows these grids. Every model gets the same budget (epochs, CPU,
narrow conv nets), so the pictures also show which objectives learn fast:

    python scripts/model_gallery.py --epochs 15 --out docs/gallery
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NARROW_CONV = ["model.net.generator.base_channels=16", "model.net.discriminator.base_channels=32"]
MODELS: dict[str, list[str]] = {
    "gan": [],
    "cgan": [],
    "dcgan": NARROW_CONV,
    "lsgan": NARROW_CONV,
    "sngan": NARROW_CONV,
    "wgan": NARROW_CONV,
    "wgan_gp": NARROW_CONV,
    "vae": [],
    "cvae": [],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    genlab = str(Path(sys.executable).with_name("genlab"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            run_dir = Path(scratch) / name
            command = [
                genlab, "train", f"model={name}", "data=mnist_mini", f"trainer.max_epochs={args.epochs}",
                "trainer.enable_progress_bar=false", "~callbacks.progress_bar", f"hydra.run.dir={run_dir}",
                *MODELS[name],
            ]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            shutil.copy(run_dir / "samples" / "last.png", args.out / f"{name}.png")
            print(f"{name:8s} {args.epochs} epochs in {time.perf_counter() - start:5.0f} s -> {args.out / name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
