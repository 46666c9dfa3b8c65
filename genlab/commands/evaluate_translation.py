"""`genlab eval` of an image-to-image run: its outputs judged against their targets, beside the task's do-nothing
baseline, under one stated protocol (metrics.json keeps it with the numbers).

Protocol: the first `n_samples` images of `split` made into the task's pairs under `seed` (keys 0, 1, ...: every
family and checkpoint judged with one seed gets the same inputs), one output per input (draws from `seed`).
PSNR and SSIM per image then averaged (torchmetrics; data range fixed: [-1, 1], SSIM on [0, 1] with an 11x11
Gaussian window); FID and KID of the outputs against the targets in `extractor`'s features; label accuracy: the
share of outputs the domain classifier (trained on the data set's clean images; colour outputs of grey data
shown as their luma) assigns to their image's class; colourfulness (Hasler & Süsstrunk 2003) for colour
targets; for stochastic families the diversity of `outputs_per_input` outputs of each of the first
`diversity_inputs` inputs; for CycleGAN the PSNR of F(G(a)) against a. LPIPS only where its backbone weights are
already on this machine (never downloaded): the protocol says which, or why not.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from omegaconf import DictConfig
from torch import Tensor

from genlab.commands.app import sampler_options
from genlab.commands.judges import KID_UNITS, cached_features, choose_judges
from genlab.errors import ConfigError

# what each row of the table means
MEANINGS = {
    "psnr": "dB, per image then averaged; data range 2 ([-1, 1])",
    "ssim": "per image then averaged; 11x11 Gaussian window, sigma 1.5, on [0, 1]",
    "fid": "Fréchet distance to the targets' {features}",
    "kid": KID_UNITS + ", to the targets' {features}",
    "label_accuracy": "share the domain classifier assigns to the image's class",
    "lpips": "LPIPS to the target ({lpips})",
    "colourfulness": "Hasler & Süsstrunk; the targets': {target_colourfulness:.4g}",
    "diversity": "mean std over {k} outputs of each of {m} inputs, [-1, 1] units",
    "pairwise_l1": "mean L1 between two of the {k} outputs of an input",
    "cycle_psnr": "dB, F(G(a)) against a: CycleGAN's cycle consistency",
}


def judge_translation(model: Any, run_cfg: DictConfig, cfg: DictConfig, device: str, checkpoint: str) -> dict[str, Any]:
    """The metrics of an image-to-image `model` and of its task's baseline under the protocol `cfg` (eval.yaml)."""
    from genlab.builder import build_datamodule
    from genlab.data.datamodule import to_signed_unit
    from genlab.generation import translate_batches
    from genlab.metrics.conditioning import label_accuracy
    from genlab.metrics.domain_classifier import judge_record, tensor_digest
    from genlab.metrics.features import extract
    from genlab.metrics.quality import fid, kid
    from genlab.metrics.translation import classifier_view, diversity, local_lpips, pairwise_l1, pixel_scores, psnr_per_image

    family, task = model.family, model.family.task
    datamodule = build_datamodule(run_cfg)
    split = datamodule.split(cfg.split)
    n = min(cfg.n_samples, len(split))
    if n < 2:
        raise ConfigError(f"split={cfg.split}: the split holds {len(split)} image(s), and FID needs 2 at least: choose another split")
    images = to_signed_unit(split.images[:n]).to(device)
    labels = split.labels[:n]
    pair = task.fixed_pair(images, cfg.seed)
    classifier, facts, name, extractor, judge = choose_judges(cfg, datamodule, device)
    channels = task.image_shape[0]

    def features(batch: Tensor, network: Any) -> Tensor:
        shown = classifier_view(batch, channels) if network is classifier else batch
        return extract(network, shown, cfg.batch_size, device, progress=False)

    key = f"{datamodule.name}_{cfg.split}_{task.seeded(cfg.seed)!r}_{name}-{judge['weights_sha256'][:12]}_{n}_{tensor_digest(split.images[:n])[:12]}"
    real = cached_features(cfg.paths.cache_dir, key, lambda: features(pair.target, extractor))
    kid_subset_size = min(cfg.kid_subset_size, n)
    lpips, lpips_note = local_lpips()

    def scores(outputs: Tensor) -> dict[str, float]:
        found = features(outputs, extractor)
        result = pixel_scores(outputs, pair.target)
        kid_result = kid(real, found, subsets=cfg.kid_subsets, subset_size=kid_subset_size)
        result.update(fid=fid(real, found), kid=kid_result.mean, kid_std=kid_result.std)
        if classifier is not None:  # a data set of one class has no domain classifier, and no label accuracy
            judged = found if extractor is classifier else features(outputs, classifier)
            result["label_accuracy"] = label_accuracy(classifier.classify(judged).cpu(), labels)
        if lpips is not None:
            result["lpips"] = float(torch.cat([lpips(o, t) for o, t in zip(outputs.split(cfg.batch_size),
                                                                          pair.target.split(cfg.batch_size))]).mean())
        return result

    sampler = sampler_options(cfg)
    started = time.perf_counter()
    outputs = torch.cat(list(translate_batches(model, pair.source, cfg.batch_size, cfg.seed, sampler)))
    seconds = time.perf_counter() - started
    metrics = scores(outputs)
    k, m = cfg.get("outputs_per_input", 4), min(cfg.get("diversity_inputs", 100), n)
    if family.stochastic and k >= 2:
        drawn = torch.stack([torch.cat(list(translate_batches(model, pair.source[:m], cfg.batch_size, cfg.seed + 1 + i,
                                                              sampler))) for i in range(k)], dim=1)
        metrics.update(diversity=float(diversity(drawn).mean()), pairwise_l1=float(pairwise_l1(drawn).mean()))
    reverse: Callable[[Tensor], Tensor] | None = getattr(family, "reverse", None)
    if reverse is not None:
        with torch.no_grad(), model.averaged():
            family.eval()
            back = torch.cat([reverse(batch) for batch in outputs.split(cfg.batch_size)])
        metrics["cycle_psnr"] = float(psnr_per_image(back, pair.source).mean())
    baseline = scores(task.baseline(pair.source))
    return {
        "checkpoint": checkpoint,
        "protocol": {
            "data": datamodule.name, "split": cfg.split, "n_generated": n, "n_real": n, "task": repr(task.seeded(cfg.seed)),
            "baseline": task.baseline_name, "extractor": name, "extractor_source": judge["source"], "seed": cfg.seed,
            "sampler": family.sampler_settings(sampler), "weights": model.weights,
            "kid_subsets": cfg.kid_subsets, "kid_subset_size": kid_subset_size,
            "outputs_per_input": k if family.stochastic else 1, "diversity_inputs": m if family.stochastic else 0,
            "lpips": lpips_note, "feature_dim": extractor.feature_dim,
            "classifier_test_accuracy": facts["test_accuracy"] if facts else None,
            "judge": {"extractor": judge, "classifier": judge_record(facts) if facts else None},
            "sampling_seconds_per_1000": round(1000 * seconds / n, 3), "device": str(device),
            "threads": torch.get_num_threads(),
        },
        "metrics": metrics,
        "baseline": baseline,
    }


def format_translation_table(results: dict[str, Any]) -> str:
    """The model's and the baseline's numbers side by side, with what each means."""
    protocol, metrics, baseline = results["protocol"], results["metrics"], results["baseline"]
    features = f"{protocol['extractor']} features ({protocol['feature_dim']}-d)"
    context = {"features": features, "lpips": protocol.get("lpips"), "k": protocol.get("outputs_per_input"),
               "m": protocol.get("diversity_inputs"), "target_colourfulness": metrics.get("target_colourfulness", 0.0)}

    def shown(values: dict[str, float], name: str) -> str:
        if name not in values:
            return "-"
        if name == "kid":
            return f"{values['kid']:.4g} ± {values['kid_std']:.2g}"
        return f"{values[name]:.4g}"

    rows = [("metric", "model", protocol["baseline"], "protocol and units")]
    rows += [(name.replace("_", " "), shown(metrics, name), shown(baseline, name), MEANINGS[name].format(**context))
             for name in MEANINGS if name in metrics]
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(3)]
    lines = [
        f"{protocol['task']} on {protocol['n_generated']} {protocol['data']} {protocol['split']} images, seed {protocol['seed']},"
        f" {features}; weights: {protocol['weights']}",
        f"sampling: {protocol['sampling_seconds_per_1000']:.1f} s per 1,000 outputs ({protocol['device']},"
        f" {protocol['threads']} threads)",
        "",
        *("".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + row[3] for row in rows),
        "",
        f"LPIPS: {protocol['lpips']}" if "lpips" not in metrics else "",
    ]
    return "\n".join(line for line in lines)
