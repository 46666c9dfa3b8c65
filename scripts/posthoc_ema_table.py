"""FID against EMA length for one run, without retraining: EDM2's post-hoc EMA judged by `genlab eval`.

The run must have kept post-hoc snapshots (`genlab train ... model/ema=posthoc`). Each `--lengths` value
(EDM2's sigma_rel) is rebuilt from the snapshots and judged like every family in docs/results.md (classifier
FID against the test split, `--eval-samples` images, seed 0), beside the run's own EMA (`model.ema.decay`) and
its raw weights. Out comes a markdown table (stdout and `--out`). Choosing the length by the test split's FID
would flatter it: `--split val` judges against the 500 held-out validation images instead, to choose the length
that is then reported on test.

    python scripts/posthoc_ema_table.py outputs/family_curves/ddpm_posthoc/checkpoints/last.ckpt \\
        --lengths 0.02 0.05 0.08 0.1 0.15 0.2 --out docs/few_step/posthoc_ema.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--lengths", type=float, nargs="+", default=[0.02, 0.05, 0.08, 0.1, 0.15, 0.2])
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="the real images judged against: val to choose a length, then test to report it")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--judge", nargs="*", default=[], help="extra genlab eval overrides (e.g. a small classifier)")
    return parser.parse_args(argv)


def genlab_eval(args: argparse.Namespace, weights: str, *overrides: str) -> dict[str, Any]:
    """One `genlab eval` of the checkpoint; its metrics.json entry (the one of this protocol whose weights, as
    recorded, begin with `weights`)."""
    executable = Path(sys.executable).with_name("genlab")
    command = str(executable) if executable.is_file() else (shutil.which("genlab") or "genlab")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    result = subprocess.run([command, "eval", f"ckpt_path={args.checkpoint}", "extractor=classifier",
                             f"split={args.split}", f"n_samples={args.eval_samples}", f"seed={args.seed}",
                             "progress=false", *overrides, *args.judge],
                            env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"genlab eval {' '.join(overrides)} failed:\n{result.stderr[-3000:]}")
    entries = json.loads((args.checkpoint.parent / "metrics.json").read_text()).values()
    return next(entry for entry in entries if str(entry["protocol"]["weights"]).startswith(weights)
                and entry["protocol"]["n_generated"] == args.eval_samples and entry["protocol"]["seed"] == args.seed
                and entry["protocol"]["extractor"] == "classifier" and entry["protocol"]["split"] == args.split)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [("raw weights", genlab_eval(args, "raw", "ema=false")), ("EMA (model.ema.decay)", genlab_eval(args, "ema"))]
    rows += [(f"post-hoc sigma_rel = {length:g}", genlab_eval(args, f"posthoc_ema sigma_rel={length:g}",
                                                              f"ema_length={length}")) for length in args.lengths]
    lines = [f"FID against EMA length, one run ({args.checkpoint}), no retraining: classifier FID vs the"
             f" {args.split} split, {args.eval_samples:,} samples, seed {args.seed}.", "",
             "| weights | recorded as | classifier FID | precision | recall |", "|---|---|---|---|---|"]
    for name, entry in rows:
        metrics = entry["metrics"]
        lines.append(f"| {name} | `{entry['protocol']['weights']}` | {metrics['fid']:.1f} | {metrics['precision']:.3f}"
                     f" | {metrics['recall']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
