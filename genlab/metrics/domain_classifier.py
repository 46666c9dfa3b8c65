"""The domain classifier genlab trains once per data set and judge settings, and caches: fast features
for a "classifier FID" and class predictions for mode coverage (and the Inception Score).

The cache is keyed by everything that makes the classifier (its architecture's version, the training
images and labels it learns from, its settings: `classifier.*`), as
<cache_dir>/classifiers/<data name>-<key>.pt with its own test accuracy. A run that trains its
classifier with other settings gets its own entry instead of becoming the judge of every later run,
and the key (with the weights' hash) goes into metrics.json and summary.json beside each number it
judged, so that two numbers measured under different judges can be told apart (`genlab report` says so).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from genlab.run.checkpoints import atomic_torch_save, load_checkpoint
from genlab.run.waiting_lock import exclusive_lock
from genlab.data.datamodule import DeviceBatchLoader
from genlab.data.sources import LabeledImages
from genlab.metrics.features import ClassifierFeatures
from genlab.nets.classifier import Classifier

log = logging.getLogger("genlab")

# bumped whenever genlab/nets/classifier.py or the training below changes what a given key trains
ARCHITECTURE = "classifier-v1"
# what of `classifier.*` shapes the classifier (its cache key)
SETTINGS = ("epochs", "batch_size", "lr", "base_channels", "feature_dim", "seed")


def tensor_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' bytes, shapes and dtypes: the same data gives the same digest on any machine."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a network's state_dict, in key order: what `metrics.json` records of the judge's weights."""
    state = module.state_dict()
    return tensor_digest(*(state[name] for name in sorted(state)))


def judge_key(data_name: str, train: LabeledImages, num_classes: int, settings: Mapping[str, Any]) -> str:
    """The cache key of the classifier these inputs train: 12 hex digits of a sha256 over all of them."""
    made_of = {
        "architecture": ARCHITECTURE, "data": data_name, "num_classes": num_classes,
        # a split left on disk (data=folder) names its rows of a cache that is keyed by its content
        "train_split": train.digest() if hasattr(train, "digest") else tensor_digest(train.images, train.labels),
        "settings": {name: settings.get(name) for name in SETTINGS},
    }
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:12]


def judge_record(facts: Mapping[str, Any]) -> dict[str, Any]:
    """What metrics.json and summary.json record of the classifier that judged: its cache key, the sha256 of
    its weights, its settings and its test accuracy (not where this machine keeps it)."""
    return {name: facts[name] for name in ("key", "weights_sha256", "settings", "test_accuracy")}


def classifier_path(cache_dir: str | Path, data_name: str, key: str) -> Path:
    return Path(cache_dir).expanduser() / "classifiers" / f"{data_name}-{key}.pt"


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


def train_and_save(train: LabeledImages, splits: Any, num_classes: int, settings: Mapping[str, Any],
                   device: str | torch.device, key: str, data_name: str, path: Path) -> dict[str, Any]:
    """Train the classifier of `settings` on `train` and write it to `path` whole (atomically); returns what was saved."""
    log.info("training the %s domain classifier once (cached as %s) ...", data_name, path)
    start = time.perf_counter()
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
        "key": key,
        "settings": {name: settings.get(name) for name in SETTINGS},
    }
    atomic_torch_save(saved, path)
    log.info("%s classifier: %.2f%% test accuracy, trained in %.0f s", data_name, 100 * test_accuracy, time.perf_counter() - start)
    return saved


def load_or_train(
    cache_dir: str | Path,
    data_name: str,
    splits: Any,
    num_classes: int,
    settings: Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> tuple[ClassifierFeatures, dict[str, Any]]:
    """The cached classifier of a data set and these settings, training it first if there is none.

    `splits` is called as splits("train") (the key is made of it) and splits("test") only when training
    is needed. Returns the frozen feature extractor and the judge's facts: its cache `key`, its
    `weights_sha256`, `settings`, `test_accuracy` and `path`.
    """
    train = splits("train")
    key = judge_key(data_name, train, num_classes, settings)
    path = classifier_path(cache_dir, data_name, key)
    # processes judging at once (a parallel eval sweep, runs side by side) train it once: the others wait and read it
    with exclusive_lock(Path(cache_dir).expanduser() / ".locks" / f"{path.name}.lock"):
        saved = load_checkpoint(path) if path.is_file() else train_and_save(train, splits, num_classes, settings,
                                                                            device, key, data_name, path)
    config = saved["config"]
    classifier = Classifier(config["image_shape"], config["num_classes"], config["base_channels"], config["feature_dim"])
    classifier.load_state_dict(saved["state_dict"])
    facts = {"key": key, "weights_sha256": weights_digest(classifier), "settings": saved["settings"],
             "test_accuracy": saved["test_accuracy"], "path": str(path)}
    return ClassifierFeatures(classifier).to(device), facts
