"""Every validation epoch: FID of generated images against the validation split, in the
domain classifier's feature space (`val/fid`), how evenly they cover the classes
(`val/coverage_entropy`, in nats; log(10) = 2.30 for ten equally covered classes), and for
conditional models how often a sample shows the class it was asked for (`val/label_accuracy`).

Cheap enough on a CPU each epoch, unlike Inception FID; it is the default checkpoint monitor
and what sweeps optimize. `genlab eval` gives the full protocol on a finished run.
"""

from __future__ import annotations

from typing import Any, Mapping

import pytorch_lightning as pl
import torch

from genlab.data.datamodule import to_signed_unit
from genlab.families.translation import Translation
from genlab.generation import sample_batches
from genlab.metrics.conditioning import label_accuracy, requested_labels
from genlab.metrics.coverage import class_coverage
from genlab.metrics.domain_classifier import judge_record, load_or_train
from genlab.metrics.features import ClassifierFeatures, extract
from genlab.metrics.quality import fid
from genlab.modules.base import TrainingModule


def has_judge(datamodule: Any) -> bool:
    """Whether a data set can be judged during training: a validation split, and two classes or more for the
    domain classifier to learn (a flat folder of images has one: `genlab eval extractor=inception` judges it)."""
    return datamodule is not None and bool(datamodule.val_size) and datamodule.num_classes >= 2


def judges_samples(module: pl.LightningModule, datamodule: Any) -> bool:
    """Whether a run's samples from noise are judged: a genlab loop, a data set with a judge, not image-to-image
    (whose outputs callbacks/translation_quality.py judges against their targets)."""
    return isinstance(module, TrainingModule) and has_judge(datamodule) and not isinstance(module.family, Translation)


def domain_classifier(trainer: pl.Trainer, module: pl.LightningModule, cache_dir: str,
                      settings: Mapping[str, Any]) -> tuple[ClassifierFeatures, dict[str, Any]]:
    """The data set's cached domain classifier (trained first if missing) on the module's device, and its facts."""
    datamodule = trainer.datamodule

    def judge() -> tuple[ClassifierFeatures, dict[str, Any]]:
        return load_or_train(cache_dir, datamodule.name, datamodule.split, datamodule.num_classes, dict(settings),
                             module.device)

    # under DDP rank 0 trains (or loads) the cached classifier first; the others then load it
    if trainer.is_global_zero:
        found = judge()
        trainer.strategy.barrier("domain classifier")
    else:
        trainer.strategy.barrier("domain classifier")
        found = judge()
    return found


class SampleQuality(pl.Callback):
    """Logs val/fid, val/coverage_entropy (and val/label_accuracy) for `n_samples` images from fixed noise.

    `sampler` holds the family's sampler options for these images (a cheap setting for many-step samplers).
    """

    def __init__(
        self, cache_dir: str, classifier: dict, n_samples: int = 1000, batch_size: int = 250, seed: int = 0,
        sampler: Mapping[str, Any] | None = None,
    ) -> None:
        self.cache_dir, self.classifier_settings = cache_dir, dict(classifier)
        self.n_samples, self.batch_size, self.seed = n_samples, batch_size, seed
        self.sampler = dict(sampler or {})
        self.extractor: ClassifierFeatures | None = None
        self.real: torch.Tensor | None = None
        # which domain classifier judged: its cache key and weights' hash, for summary.json (genlab report compares them)
        self.judge: dict[str, Any] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not judges_samples(pl_module, datamodule):
            return
        self.extractor, facts = domain_classifier(trainer, pl_module, self.cache_dir, self.classifier_settings)
        self.judge = {"classifier": judge_record(facts), "metrics": ["val/fid", "val/coverage_entropy", "val/label_accuracy"]}
        real_images = to_signed_unit(datamodule.split("val").images)
        self.real = extract(self.extractor, real_images, self.batch_size, pl_module.device, progress=False)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.extractor is None or trainer.sanity_checking:
            return
        batches = sample_batches(pl_module, self.n_samples, self.batch_size, self.seed, self.sampler)
        fake = extract(self.extractor, batches, self.batch_size, pl_module.device, progress=False)
        probabilities = self.extractor.classify(fake)
        coverage = class_coverage(probabilities)
        pl_module.log("val/fid", fid(self.real, fake))
        pl_module.log("val/coverage_entropy", coverage.entropy)
        if pl_module.family.conditional:
            labels = requested_labels(len(fake), pl_module.family.num_classes)
            pl_module.log("val/label_accuracy", label_accuracy(probabilities, labels))
