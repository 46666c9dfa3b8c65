"""`genlab eval ckpt_path=...`: FID, KID, precision/recall, Inception Score and class coverage of a
trained run (and for conditional models label accuracy and intra-class FID), under one stated
protocol, written to metrics.json beside the checkpoint.

Protocol: `n_samples` generated images (latents from `seed`; conditional models cycle through the
classes) against the first `n_samples` real images of `split` (at most the whole split), both in
[-1, 1]. Features come from `extractor`: `inception` (FID Inception-v3 pool features, 2048-d,
images resized to 299x299 with TF1 bilinear, grayscale repeated to RGB) or `classifier` (genlab's
domain classifier, 128-d). IS, coverage and label accuracy always use the domain classifier's class
probabilities; intra-class FID uses the extractor's features, class by class, with the real images'
own labels.
Real-image features are cached per (data set, split, extractor, N).

metrics.json beside the checkpoint keeps every evaluation side by side (genlab/run/metrics_file.py).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genlab.api.loading import checkpoint_run
from genlab.commands.app import Job, hydra_app, sampler_options
from genlab.commands.judges import EXTRACTORS, KID_UNITS, cached_features, choose_judges
from genlab.errors import ConfigError
from genlab.run.folder import why_unwritable
from genlab.run.load import load_run_config
from genlab.run.metrics_file import ResultsNotSaved, keep_in_job_folder, results_file, write_results

log = logging.getLogger("genlab")
def generate(model: Any, n: int, batch_size: int, seed: int, options: dict[str, Any]) -> Any:
    import torch

    from genlab.generation import sample_batches

    return torch.cat([images.float().cpu() for images in sample_batches(model, n, batch_size, seed, options)])


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """`genlab eval`: the checkpoint's run rebuilt from its folder (genlab's Python API, genlab/api/), judged under
    `cfg`'s protocol."""
    from genlab.builder import resolve_device

    if cfg.extractor not in EXTRACTORS:
        raise ConfigError(f"extractor={cfg.extractor!r} is not known; choose one of: {', '.join(EXTRACTORS)}")
    device = resolve_device(cfg.device)
    run_cfg = load_run_config(cfg.ckpt_path, cfg.paths, trust_run=cfg.get("trust_run", False))
    check_results_folder(cfg.ckpt_path)
    run = checkpoint_run(cfg.ckpt_path, run_cfg, device=device, ema=cfg.get("ema", True),
                         ema_length=cfg.get("ema_length"), ema_step=cfg.get("ema_step"))
    return judge(run.model, run.config, cfg, device, str(Path(cfg.ckpt_path).resolve()))


def check_results_folder(ckpt_path: str | Path) -> None:
    """Refuse at once, not after the sampling, a checkpoint whose folder cannot take metrics.json."""
    folder = results_file(ckpt_path).parent
    reason = why_unwritable(folder)
    if reason is not None:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: genlab eval writes its results to metrics.json beside the checkpoint,"
            f" but {reason}:"
            f" make {folder} writable, or copy the run folder somewhere writable and evaluate the copy"
        )


def judge(model: Any, run_cfg: DictConfig, cfg: DictConfig, device: str, checkpoint: str) -> dict[str, Any]:
    """The metrics of `model` (a trained module of the run `run_cfg` describes, on `device`) under the protocol
    `cfg` (configs/eval.yaml's keys), with the protocol beside them; `checkpoint` names the weights judged."""
    import torch

    from genlab.builder import build_datamodule
    from genlab.data.datamodule import to_signed_unit
    from genlab.metrics.domain_classifier import judge_record, tensor_digest
    from genlab.metrics.features import extract
    from genlab.metrics.quality import fid, kid, precision_recall

    if getattr(model.family, "task", None) is not None:  # image-to-image: outputs against their targets
        from genlab.commands.evaluate_translation import judge_translation

        return judge_translation(model, run_cfg, cfg, device, checkpoint)
    datamodule = build_datamodule(run_cfg)
    sampler = sampler_options(cfg)
    real_split = datamodule.split(cfg.split)
    n_real = min(cfg.n_samples, len(real_split))
    check_protocol_fits(cfg, len(real_split), run_cfg)
    classifier, classifier_facts, name, extractor, judge = choose_judges(cfg, datamodule, device)

    def features(images: Any, what: str) -> Any:
        return extract(extractor, images, cfg.batch_size, device, progress=cfg.progress, desc=f"{what} features")

    # real-image features are cached per (data, split, extractor's weights, the very images)
    real_images = real_split.images[:n_real]
    key = f"{datamodule.name}_{cfg.split}_{name}-{judge['weights_sha256'][:12]}_{n_real}_{tensor_digest(real_images)[:12]}"
    real = cached_features(cfg.paths.cache_dir, key, lambda: features(to_signed_unit(real_images), "real"))
    started = time.perf_counter()
    fake_images = generate(model, cfg.n_samples, cfg.batch_size, cfg.seed, sampler)
    sampling_seconds = time.perf_counter() - started
    fake = features(fake_images, "generated")
    metrics: dict[str, float] = {"fid": fid(real, fake)}
    kid_subset_size = min(cfg.kid_subset_size, len(real), len(fake))
    kid_result = kid(real, fake, subsets=cfg.kid_subsets, subset_size=kid_subset_size)
    metrics.update(kid=kid_result.mean, kid_std=kid_result.std)
    pr = precision_recall(real, fake, k=cfg.pr_k)
    metrics.update(precision=pr.precision, recall=pr.recall)
    counts = classifier_metrics(classifier, name, fake, fake_images, real, real_split, n_real, model, cfg, device,
                                metrics) if classifier is not None else None
    return {
        "checkpoint": checkpoint,
        "protocol": {
            "data": datamodule.name, "split": cfg.split, "n_generated": cfg.n_samples, "n_real": n_real,
            "extractor": name, "extractor_source": judge["source"],
            "seed": cfg.seed, "sampler": model.family.sampler_settings(sampler), "kid_subset_size": kid_subset_size,
            # ema, raw, or a post-hoc average (`posthoc_ema sigma_rel=0.1 at step N`): its own metrics.json entry
            "weights": model.weights,
            "kid_subsets": cfg.kid_subsets, "pr_k": cfg.pr_k,
            "classifier_test_accuracy": classifier_facts["test_accuracy"] if classifier_facts else None,
            # who judged: the features' network and the domain classifier (IS, coverage, label accuracy), by
            # their weights' hashes and the classifier's cache key (genlab/metrics/domain_classifier.py); a data
            # set of one class has no classifier, and no label metrics
            "judge": {"extractor": judge, "classifier": judge_record(classifier_facts) if classifier_facts else None},
            "feature_dim": extractor.feature_dim, "kid_units": KID_UNITS, "is_splits": cfg.is_splits,
            "coverage_threshold": cfg.coverage_threshold, "val_fid": val_fid_protocol(run_cfg, datamodule.val_size),
            # the wall clock of making the images (the EMA's standing statistics included), on this run's
            # device and threads: what a family's sampler costs, beside what its images score
            "sampling_seconds_per_1000": round(1000 * sampling_seconds / cfg.n_samples, 3),
            "device": str(device), "threads": torch.get_num_threads(),
        },
        "metrics": metrics,
        "class_counts": counts,
    }


def classifier_metrics(classifier: Any, name: str, fake: Any, fake_images: Any, real: Any, real_split: Any,
                       n_real: int, model: Any, cfg: DictConfig, device: str, metrics: dict[str, float]) -> list[int]:
    """IS, class coverage (and for conditional models label accuracy and intra-class FID) from the domain
    classifier's probabilities, into `metrics`; the generated images' class counts."""
    from genlab.metrics.conditioning import intra_class_fid, label_accuracy, requested_labels
    from genlab.metrics.coverage import class_coverage
    from genlab.metrics.features import extract
    from genlab.metrics.quality import inception_score

    # class probabilities from the domain classifier, reusing the features when it is the extractor
    judged = fake if name == "classifier" else extract(classifier, fake_images, cfg.batch_size, device, progress=False)
    probabilities = classifier.classify(judged).cpu()
    score = inception_score(probabilities, splits=cfg.is_splits)
    metrics.update(inception_score=score.mean, inception_score_std=score.std)
    coverage = class_coverage(probabilities, threshold=cfg.coverage_threshold)
    metrics.update(
        coverage_entropy=coverage.entropy, coverage_normalized_entropy=coverage.normalized_entropy,
        confident_share=coverage.confident_share, classes_covered=float(coverage.classes_covered),
    )
    if model.family.conditional:
        asked = requested_labels(len(fake), model.family.num_classes)
        metrics["label_accuracy"] = label_accuracy(probabilities, asked)
        intra_fid = intra_class_fid(real, real_split.labels[:n_real], fake, asked)
        if intra_fid is not None:
            metrics["intra_fid"] = intra_fid
    return coverage.counts.tolist()


def check_protocol_fits(cfg: DictConfig, split_size: int, run_cfg: DictConfig) -> None:
    """The keys whose valid range depends on how many images there are, refused by name before any image is made
    (the metric functions would refuse them too, but only after the sampling)."""
    n_real = min(cfg.n_samples, split_size)
    if n_real < 2:
        val_size = OmegaConf.select(run_cfg, "data.val_size")
        held_out = f" (the run held out data.val_size={val_size})" if cfg.split == "val" else ""
        raise ConfigError(f"split={cfg.split}: the split holds {split_size} image(s){held_out}, and FID needs"
                          " 2 at least: choose another split")
    if cfg.pr_k >= n_real:
        raise ConfigError(f"pr_k={cfg.pr_k} must be below {n_real}, the real images compared"
                          f" (n_samples={cfg.n_samples}, at most the {split_size} of split={cfg.split}):"
                          " lower pr_k or raise n_samples")
    if cfg.is_splits > cfg.n_samples:
        raise ConfigError(f"is_splits={cfg.is_splits} must be at most n_samples={cfg.n_samples} (each split needs an"
                          " image): lower is_splits or raise n_samples")


def val_fid_protocol(run_cfg: DictConfig, val_size: int) -> dict[str, Any] | None:
    """How training measured the val/fid that picked best.ckpt (callbacks/sample_quality.py); None if it did not."""
    n_generated = OmegaConf.select(run_cfg, "callbacks.sample_quality.n_samples")
    if n_generated is None or not val_size:
        return None
    return {"split": "val", "n_generated": n_generated, "n_real": val_size, "extractor": "classifier"}


def count(n: int) -> str:
    return f"{n:,}"


def with_std(metrics: dict[str, float], name: str) -> str:
    return f"{metrics[name]:.4g} ± {metrics[name + '_std']:.2g}"


def metric_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, its protocol and units) for each number in the table; a std goes beside its mean."""
    protocol, metrics = results["protocol"], results["metrics"]
    features = f"{protocol['extractor']} features ({protocol['feature_dim']}-d)"
    k, threshold = protocol["pr_k"], protocol["coverage_threshold"]
    rows = [
        ("FID", f"{metrics['fid']:.4g}", f"Fréchet distance of {features}, {protocol['split']} split"),
        ("KID ± std", with_std(metrics, "kid"),
         f"{KID_UNITS}, cubic kernel; {protocol['kid_subsets']} subsets of {count(protocol['kid_subset_size'])}"),
        ("precision", f"{metrics['precision']:.4g}", f"share of generated images inside the real manifold (k={k})"),
        ("recall", f"{metrics['recall']:.4g}", f"share of real images inside the generated manifold (k={k})"),
    ]
    if results["class_counts"] is None:  # one class: no domain classifier, no label metrics
        return [*rows, ("label metrics", "none", "a data set of one class has no domain classifier (IS, coverage)")]
    n_classes = len(results["class_counts"])
    return [
        *rows,
        ("inception score ± std", with_std(metrics, "inception_score"),
         f"domain classifier's probabilities (not ImageNet Inception), {protocol['is_splits']} splits; 1 to {n_classes}"),
        ("coverage entropy", f"{metrics['coverage_entropy']:.4g} nats",
         f"of the predicted classes; ln {n_classes} = {math.log(n_classes):.2f} is every class equally"),
        ("coverage, normalized", f"{metrics['coverage_normalized_entropy']:.4g}", f"coverage entropy / ln {n_classes}"),
        ("confident share", f"{metrics['confident_share']:.4g}", f"share of images whose top class probability is >= {threshold}"),
        ("classes covered", f"{int(metrics['classes_covered'])} of {n_classes}", "classes with at least one confident image"),
        *conditioning_rows(metrics, protocol, features),
    ]


def conditioning_rows(metrics: dict[str, float], protocol: dict[str, Any], features: str) -> list[tuple[str, str, str]]:
    """Conditional models only: do the samples show the classes they were asked for?"""
    rows = []
    if "label_accuracy" in metrics:
        rows.append(("label accuracy", f"{metrics['label_accuracy']:.4g}",
                     "share of images the domain classifier assigns to the class they were asked for"))
    if "intra_fid" in metrics:
        rows.append(("intra-class FID", f"{metrics['intra_fid']:.4g}",
                     f"mean over classes of the FID of one class's images, {features}, {protocol['split']} split"))
    return rows


def val_fid_note(protocol: dict[str, Any]) -> str:
    """One line on why this FID and the training's val/fid (which picked best.ckpt) differ."""
    here = f"{protocol['split']} split, {count(protocol['n_generated'])} generated vs {count(protocol['n_real'])} real," \
           f" {protocol['extractor']} features"
    during = protocol.get("val_fid")
    if during is None:
        return f"FID above: {here}; this run logged no val/fid while training."
    there = f"{during['split']} split, {count(during['n_generated'])} generated vs {count(during['n_real'])} real," \
            f" {during['extractor']} features"
    if here == there:
        return f"FID above: {here}, the protocol of the val/fid that picked best.ckpt."
    return f"FID above: {here}; not comparable to the val/fid that picked best.ckpt ({there})."


def format_table(results: dict[str, Any]) -> str:
    """The metrics with the protocol and units beside each number: an FID or KID means nothing without them."""
    protocol = results["protocol"]
    if "baseline" in results:
        from genlab.commands.evaluate_translation import format_translation_table

        return format_translation_table(results)
    rows = [("metric", "value", "protocol and units"), *metric_rows(results)]
    name_width, value_width = (max(len(row[i]) for row in rows) + 2 for i in (0, 1))
    lines = [
        f"{protocol['n_generated']} generated vs {protocol['n_real']} real ({protocol['data']}, {protocol['split']} split),"
        f" {protocol['extractor']} features ({protocol['feature_dim']}-d), seed {protocol['seed']}",
        f"sampling: {protocol['sampling_seconds_per_1000']:.1f} s per 1,000 images ({protocol['device']},"
        f" {protocol['threads']} threads)" if "sampling_seconds_per_1000" in protocol else "",
        "",
        *(f"{name:<{name_width}}{value:<{value_width}}{about}" for name, value, about in rows),
        "",
        val_fid_note(protocol),
    ]
    return "\n".join(lines)


@hydra_app("eval")
def main(cfg: DictConfig, job: Job) -> None:
    results = evaluate(cfg)
    print(format_table(results), flush=True)  # first: whatever happens to the files, the numbers are seen
    kept = keep_in_job_folder(results, Path(cfg.paths.output_dir))
    try:
        path = write_results(results, cfg.ckpt_path)
    except ResultsNotSaved as error:
        where = f"kept in {kept}" if kept is not None else "only printed above"
        raise ResultsNotSaved(f"{error} (the results are {where})") from None
    log.info("written to %s", path)
