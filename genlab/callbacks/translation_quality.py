"""Every validation epoch of an image-to-image run: its outputs for fixed held-out inputs, judged against their
targets (`val/psnr`, `val/ssim`, `val/fid`, `val/label_accuracy`, and for colour targets `val/colourfulness`),
beside the task's do-nothing baseline (`val/baseline_*`), and a grid of input | output | target rows.

The inputs are the task's pairs of the validation split's first `n_samples` images under `seed` (the same for
every run, whatever its own seed), so runs of a sweep are judged on the same inputs; `val/fid` (the domain
classifier's features of outputs against targets) keeps its place as the checkpoint monitor, so best.ckpt,
sweeps, pruning and `genlab report` work as for the noise families. `genlab eval` gives the full protocol.
A data set of one class (a flat `data=folder`) has no domain classifier: its runs log the pixel scores alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from torchvision.utils import make_grid

from genlab.callbacks.sample_grid import publish_grid
from genlab.callbacks.sample_quality import domain_classifier, has_judge
from genlab.data.datamodule import to_signed_unit
from genlab.families.translation import Translation
from genlab.generation import translate_batches, translation_rows
from genlab.metrics.conditioning import label_accuracy
from genlab.metrics.domain_classifier import judge_record
from genlab.metrics.features import ClassifierFeatures, extract
from genlab.metrics.quality import fid
from genlab.metrics.translation import classifier_view, pixel_scores
from genlab.modules.base import TrainingModule
from genlab.tasks.base import Pair

log = logging.getLogger(__name__)
METRICS = ["val/fid", "val/psnr", "val/ssim", "val/label_accuracy", "val/colourfulness"]
JUDGED = ("fid", "label_accuracy")  # the scores that need the domain classifier


class TranslationQuality(pl.Callback):
    """Logs the val/* scores of an image-to-image run's outputs; writes `translations/epoch_XXXX.png` rows of
    `grid_rows` inputs, each with its target and `grid_outputs` outputs (a stochastic family's differ; one for the others)."""

    def __init__(
        self, cache_dir: str, classifier: dict, dirpath: str | Path, n_samples: int = 500, batch_size: int = 250,
        seed: int = 0, grid_rows: int = 8, grid_outputs: int = 2, sampler: Mapping[str, Any] | None = None,
    ) -> None:
        self.cache_dir, self.classifier_settings, self.dirpath = cache_dir, dict(classifier), Path(dirpath)
        self.n_samples, self.batch_size, self.seed = n_samples, batch_size, seed
        self.grid_rows, self.grid_outputs = grid_rows, grid_outputs
        self.sampler = dict(sampler or {})
        self.extractor: ClassifierFeatures | None = None
        self.pair: Pair | None = None
        self.judge: dict[str, Any] | None = None  # which classifier judged, for summary.json

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not isinstance(pl_module, TrainingModule) or not isinstance(pl_module.family, Translation) or \
                datamodule is None or not datamodule.val_size:
            return
        if has_judge(datamodule):
            self.extractor, facts = domain_classifier(trainer, pl_module, self.cache_dir, self.classifier_settings)
            self.judge = {"classifier": judge_record(facts), "metrics": METRICS}
        else:
            log.info("%s has one class: val/psnr and val/ssim only, no val/fid or val/label_accuracy (they need a domain"
                     " classifier); genlab eval extractor=inception gives FID", datamodule.name)
            self.judge = {"classifier": None, "metrics": [m for m in METRICS if m.removeprefix("val/") not in JUDGED]}
        held_out = datamodule.split("val")
        images = to_signed_unit(held_out.images[: self.n_samples]).to(pl_module.device)
        self.labels = held_out.labels[: self.n_samples].to(pl_module.device)
        task = pl_module.family.task
        self.pair = task.fixed_pair(images, self.seed)
        self.real = self.features(self.pair.target, pl_module) if self.extractor is not None else None
        self.baseline = self.scores(task.baseline(self.pair.source), pl_module)

    def features(self, images: torch.Tensor, module: TrainingModule) -> torch.Tensor:
        return extract(self.extractor, classifier_view(images, module.family.task.image_shape[0]), self.batch_size,
                       module.device, progress=False)

    def scores(self, outputs: torch.Tensor, module: TrainingModule) -> dict[str, float]:
        scores = pixel_scores(outputs, self.pair.target)
        if self.extractor is not None:
            features = self.features(outputs, module)
            scores["fid"] = fid(self.real, features)
            scores["label_accuracy"] = label_accuracy(self.extractor.classify(features), self.labels)
        return scores

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.pair is None or trainer.sanity_checking:
            return
        outputs = torch.cat(list(translate_batches(pl_module, self.pair.source, self.batch_size, self.seed, self.sampler)))
        scores = self.scores(outputs, pl_module)
        for name, value in scores.items():
            if name != "target_colourfulness":
                pl_module.log(f"val/{name}", value)
        for name in ("psnr", "ssim", *(JUDGED if self.extractor is not None else ())):
            pl_module.log(f"val/baseline_{name}", self.baseline[name])
        if trainer.is_global_zero:
            generator = torch.Generator().manual_seed(self.seed)
            outputs_per_input = self.grid_outputs if pl_module.family.stochastic else 1
            rows, nrow = translation_rows(pl_module, self.pair.source[: self.grid_rows], self.pair.target[: self.grid_rows],
                                          outputs_per_input, generator, self.sampler)
            publish_grid(trainer, make_grid(rows.float(), nrow=nrow, normalize=True, value_range=(-1, 1)), self.dirpath,
                         "translations")
