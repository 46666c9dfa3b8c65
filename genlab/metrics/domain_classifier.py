"""The domain classifier genlab trains once per data set and caches: fast features for a
"classifier FID" and class predictions for mode coverage (and the Inception Score).

Cached as <cache_dir>/classifiers/<data name>.pt with its own test accuracy, so every later
evaluation of that data set uses the same judge.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from genlab.run.checkpoints import atomic_torch_save, load_checkpoint
from genlab.data.datamodule import DeviceBatchLoader
from genlab.data.sources import LabeledImages
from genlab.metrics.features import ClassifierFeatures
from genlab.nets.classifier import Classifier

log = logging.getLogger("genlab")


def classifier_path(cache_dir: str | Path, data_name: str) -> Path:
    return Path(cache_dir).expanduser() / "classifiers" / f"{data_name}.pt"


@torch.no_grad()
def accuracy(classifier: Classifier, data: LabeledImages, batch_size: int = 500) -> float:
    classifier.eval()
    correct = 0
    for images, labels in DeviceBatchLoader(data, batch_size, shuffle=False):
        correct += int((classifier(images).argmax(1) == labels).sum())
    return correct / len(data)


def train_classifier(
    train: LabeledImages, test: LabeledImages, num_classes: int, settings: Mapping[str, Any], device: str | torch.device
) -> tuple[Classifier, float]:
    """Adam on batches sliced on the device; returns the classifier and its test accuracy.

    Runs on a forked random state, so training it inside a run leaves that run's seeded
    sequence exactly as it would be with a cached classifier.
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(settings.get("seed", 0))
        return _train(train, test, num_classes, settings, device)


def _train(
    train: LabeledImages, test: LabeledImages, num_classes: int, settings: Mapping[str, Any], device: torch.device
) -> tuple[Classifier, float]:
    image_shape = tuple(train.images.shape[1:])
    classifier = Classifier(image_shape, num_classes, settings["base_channels"], settings["feature_dim"]).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=settings["lr"])
    loader = DeviceBatchLoader(train.to(device), settings["batch_size"], shuffle=True, seed=settings.get("seed", 0))
    for epoch in range(settings["epochs"]):
        classifier.train()
        loader.sampler.set_epoch(epoch)
        for images, labels in loader:
            loss = F.cross_entropy(classifier(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return classifier.eval(), accuracy(classifier, test.to(device))


def load_or_train(
    cache_dir: str | Path,
    data_name: str,
    splits: Any,
    num_classes: int,
    settings: Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> tuple[ClassifierFeatures, dict[str, Any]]:
    """The cached classifier of a data set, training it first if there is none.

    `splits` is called as splits("train") and splits("test") only when training is needed.
    Returns the frozen feature extractor and the cache entry's facts (test accuracy, stamp).
    """
    path = classifier_path(cache_dir, data_name)
    if path.is_file():
        saved = load_checkpoint(path)
    else:
        log.info("training the %s domain classifier once (cached as %s) ...", data_name, path)
        start = time.perf_counter()
        train = splits("train")
        classifier, test_accuracy = train_classifier(train, splits("test"), num_classes, settings, device)
        saved = {
            "state_dict": {k: v.cpu() for k, v in classifier.state_dict().items()},
            "config": {
                "image_shape": list(train.images.shape[1:]),
                "num_classes": num_classes,
                "base_channels": settings["base_channels"],
                "feature_dim": settings["feature_dim"],
            },
            "test_accuracy": test_accuracy,
            "stamp": f"{int(time.time())}",
            "epochs": settings["epochs"],
        }
        atomic_torch_save(saved, path)
        log.info("%s classifier: %.2f%% test accuracy, trained in %.0f s", data_name, 100 * test_accuracy, time.perf_counter() - start)
    config = saved["config"]
    classifier = Classifier(config["image_shape"], config["num_classes"], config["base_channels"], config["feature_dim"])
    classifier.load_state_dict(saved["state_dict"])
    facts = {"path": str(path), "test_accuracy": saved["test_accuracy"], "stamp": saved["stamp"]}
    return ClassifierFeatures(classifier).to(device), facts
