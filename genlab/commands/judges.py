"""Who judges a checkpoint, for both protocols of `genlab eval` (samples from noise, commands/evaluate.py; an
image-to-image run's outputs, commands/evaluate_translation.py): the data set's domain classifier and the
extractor of the features, and the cache of the real images' features.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig

from genlab.errors import ConfigError

log = logging.getLogger("genlab")
EXTRACTORS = ("auto", "classifier", "inception")
# KID as torch-fidelity reports it: the unbiased MMD² itself, not the KID paper's x10³
KID_UNITS = "unbiased MMD² in the kernel's units, as torch-fidelity (not x10³)"


def cached_features(cache_dir: str | Path, key: str, compute) -> Any:
    """Features stored under <cache_dir>/features/<key>.pt, computed once."""
    from genlab.run.checkpoints import atomic_torch_save, load_checkpoint

    path = Path(cache_dir).expanduser() / "features" / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '-', key)}.pt"
    if path.is_file():
        log.info("real-image features from the cache: %s", path)
        return load_checkpoint(path)["features"]
    features = compute()
    atomic_torch_save({"features": features, "key": key}, path)
    return features


class Judges(NamedTuple):
    """Who judges: the domain classifier (and its facts; None for a data set of one class), and the extractor of
    the features (its name and record)."""

    classifier: Any
    classifier_facts: dict[str, Any]
    name: str
    extractor: Any
    record: dict[str, Any]


def choose_judges(cfg: DictConfig, datamodule: Any, device: str) -> Judges:
    """The data set's domain classifier (trained once, cached) and `extractor`'s features: FID Inception, or that
    classifier (auto: Inception on a GPU, the classifier on a CPU)."""
    from genlab.metrics.domain_classifier import load_or_train
    from genlab.metrics.features import InceptionFeatures

    if cfg.extractor not in EXTRACTORS:
        raise ConfigError(f"extractor={cfg.extractor!r} is not known; choose one of: {', '.join(EXTRACTORS)}")
    if datamodule.num_classes < 2:  # a flat folder of images: nothing for a domain classifier to learn
        if cfg.extractor == "classifier":
            raise ConfigError("extractor=classifier needs a domain classifier, which a data set of one class (a flat"
                              " data=folder) cannot train: use extractor=inception (or auto)")
        log.info("%s has one class: FID Inception features, and no label metrics (IS, coverage: they need a"
                 " domain classifier)%s", datamodule.name, "" if device.startswith("cuda") else
                 "; Inception runs at ~5 images/s on 2 CPU cores")
        extractor = InceptionFeatures(cfg.inception_weights).to(device)
        return Judges(None, None, "inception", extractor,
                      {"name": "inception", "source": extractor.source, "weights_sha256": extractor.weights_sha256})
    classifier, facts = load_or_train(cfg.paths.cache_dir, datamodule.name, datamodule.split, datamodule.num_classes,
                                      cfg.classifier, device)
    name = cfg.extractor if cfg.extractor != "auto" else ("inception" if device.startswith("cuda") else "classifier")
    if name == "inception":
        extractor = InceptionFeatures(cfg.inception_weights).to(device)
        return Judges(classifier, facts, name, extractor,
                      {"name": "inception", "source": extractor.source, "weights_sha256": extractor.weights_sha256})
    return Judges(classifier, facts, name, classifier,
                  {"name": "classifier", "source": facts["path"], "weights_sha256": facts["weights_sha256"]})
