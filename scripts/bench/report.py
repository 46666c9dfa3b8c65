"""The benchmark's results: a table on stdout and, when asked for, every measurement as JSON."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from .measure import Pair, extra_step_milliseconds, repeat_ratios, spread


def print_report(
    results: dict[str, dict[str, list[Pair]]], startup: dict[str, float], args: argparse.Namespace, device: torch.device,
    sampling: dict[str, list[dict]] | None = None, standing: dict[str, dict[str, float]] | None = None,
) -> None:
    print(
        f"\n{device.type}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch size {args.batch_size},"
        f" {args.batches} timed batches after {args.warmup} warm-up, {args.repeats} repeats\n"
        "images/s: the best repeat; ratios and ms: the median of the repeats (their range)\n"
    )
    images = args.batches * args.batch_size
    header = (
        f"{'model':<9}{'genlab img/s':>13}{'plain img/s':>12}{'DataLoader':>11}"
        f"{'genlab/plain':>20}{'genlab extra ms/step':>24}{'plain/DataLoader':>20}"
    )
    if results:
        print(header)
        print("-" * len(header))
    for model, runs in results.items():
        ratios = repeat_ratios(runs)
        print(
            f"{model:<9}{max(images / p.first_seconds for p in runs['genlab']):>13.1f}"
            f"{max(images / p.second_seconds for p in runs['genlab']):>12.1f}"
            f"{max(images / p.second_seconds for p in runs['plain/DataLoader']):>11.1f}"
            f"{spread(ratios['genlab/plain']):>20}{spread(extra_step_milliseconds(runs['genlab']), 1):>24}"
            f"{spread(ratios['plain/DataLoader']):>20}"
        )
    options = [run.partition("+")[2] for run in next(iter(results.values())) if run.startswith("genlab+")] if results else []
    if options:
        print(f"\noptions: the speed of genlab with the option / without it (below 1: the option costs time);"
              f" [its warm-up of {args.warmup} batches, first repeat]")
        header = f"{'model':<9}" + "".join(f"{name:>28}" for name in options) + f"{'without':>12}"
        print(header)
        print("-" * len(header))
        for model, runs in results.items():
            ratios = repeat_ratios(runs)
            cells = [f"{spread(ratios[name])} [{runs[f'genlab+{name}'][0].warmup_seconds:.1f} s]" for name in options]
            without = f"[{runs['genlab'][0].warmup_seconds:.1f} s]"
            print(f"{model:<9}" + "".join(f"{cell:>28}" for cell in cells) + f"{without:>12}")
    if sampling:
        print(f"\nsampling: {args.sample_images} images per call, the best of {args.repeats}; NFE: network evaluations per image")
        header = f"{'model':<9}{'sampler':>8}{'steps':>7}{'NFE':>6}{'img/s':>10}{'s / 1,000 images':>19}"
        print(header)
        print("-" * len(header))
        for model, rows in sampling.items():
            for row in rows:
                print(f"{model:<9}{row['method']:>8}{row['steps']:>7}{row['evaluations']:>6}"
                      f"{row['images_per_second']:>10.1f}{row['seconds_per_1000_images']:>19.1f}")
    if standing:
        print("\nstanding statistics of the EMA: what measuring them adds to the first sample() after an update of the"
              " average (once per sample grid or val/fid, not per batch), and as training batches of genlab")
        for model, row in standing.items():
            step_seconds = min(p.first_seconds / p.batches for p in results[model]["genlab"])
            print(f"  {model:<9}{row['batches']} batches of {row['batch_size']}: {row['seconds'] * 1000:8.1f} ms"
                  f" = {row['seconds'] / step_seconds:5.1f} training batches")
    if startup:
        print(f"\nstart-up (best of {args.repeats})")
        for name, seconds in startup.items():
            print(f"  {name:<45}{seconds:7.2f} s")


def save_json(
    path: Path, results: dict[str, dict[str, list[Pair]]], startup: dict[str, float], args: argparse.Namespace,
    device: torch.device, sampling: dict[str, list[dict]] | None = None,
    standing: dict[str, dict[str, float]] | None = None,
) -> None:
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    machine = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version()}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    report = {
        "settings": settings,
        "machine": machine,
        "runs": {model: {run: [asdict(pair) for pair in pairs] for run, pairs in runs.items()} for model, runs in results.items()},
        "repeat_ratios": {model: repeat_ratios(runs) for model, runs in results.items()},
        "ratios": {model: {k: statistics.median(v) for k, v in repeat_ratios(runs).items()} for model, runs in results.items()},
        "genlab_extra_ms_per_step": {model: statistics.median(extra_step_milliseconds(runs["genlab"])) for model, runs in results.items()},
        "startup_seconds": startup,
        "sampling": sampling or {},
        "standing_statistics_seconds": standing or {},
    }
    path.write_text(json.dumps(report, indent=2))
