"""Images/s of each evaluation feature extractor on this machine (the README quotes these).

    python scripts/extractor_speed.py                 # CPU: 2,000 images for the classifier, 40 for Inception
    python scripts/extractor_speed.py --device cuda --inception-images 2000
"""

from __future__ import annotations

import argparse
import time

import torch

from genlab.data.datamodule import to_signed_unit
from genlab.data.sources import MNISTMini
from genlab.metrics.features import ClassifierFeatures, InceptionFeatures, extract
from genlab.nets.classifier import Classifier


def images_per_second(extractor: torch.nn.Module, images: torch.Tensor, batch_size: int, device: str) -> float:
    extract(extractor, images[:batch_size], batch_size, device, progress=False)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    extract(extractor, images, batch_size, device, progress=False)  # ends with a copy to the CPU: synchronised
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--classifier-images", type=int, default=2000)
    parser.add_argument("--inception-images", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=20)
    args = parser.parse_args()
    digits = to_signed_unit(MNISTMini().load("train").images)
    classifier = ClassifierFeatures(Classifier((1, 28, 28))).to(args.device)  # speed does not depend on training
    rows = [
        ("domain classifier (128-d)", images_per_second(classifier, digits[: args.classifier_images], 250, args.device)),
        ("FID Inception-v3 (2048-d)", images_per_second(
            InceptionFeatures().to(args.device), digits[: args.inception_images], args.batch_size, args.device)),
    ]
    print(f"{args.device}, {torch.get_num_threads()} threads, 1x28x28 MNIST digits")
    for name, rate in rows:
        print(f"  {name:<28} {rate:8.1f} images/s")


if __name__ == "__main__":
    main()
