"""FID against training minutes, one curve per family, made through the `genlab` CLI.

Each family trains on mnist_mini for a wall-clock budget (`+trainer.max_time`), keeping a
checkpoint every `--every` minutes (Lightning's `train_time_interval`) and nothing that costs
training time on the way (no val/fid, a sample grid every 10 epochs). Then `genlab eval` judges
each kept checkpoint: classifier FID against the test split, class coverage, with the family's
default sampler (or `--sampler`). Out come <out>/curves.csv (every point), <out>/curves.png (FID
against minutes) and <out>/table.md (each family's last point, and how many digits it covers).

    python scripts/family_curves.py --families flow ddpm --minutes 20 --every 5          # docs/families/
    python scripts/family_curves.py --families flow --minutes 0.3 --every 0.1 --eval-samples 100 --smoke
    python scripts/family_curves.py --runs flow=/path/to/run ddpm=/path/to/run           # evaluate existing runs

Training minutes are wall-clock minutes of `genlab train` on this machine with `--threads` threads:
on a shared machine they move with everyone else's load (say so beside the numbers).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# every family the plot can hold: name on the command line -> genlab overrides
# the quick start's conv nets and latent size (configs/experiment/quickstart.yaml; scripts/model_gallery.py)
CONV_NETS = ["model.latent_dim=64", "model.net.generator.base_channels=16", "model.net.discriminator.base_channels=32"]
FAMILIES: dict[str, list[str]] = {
    "flow": ["model=flow"], "ddpm": ["model=ddpm"], "cflow": ["model=cflow"], "cddpm": ["model=cddpm"],
    "dcgan": ["model=dcgan"], "dcgan_ema": ["model=dcgan", "model.ema.decay=0.999"], "vae": ["model=vae"],
    "cgan": ["model=cgan"], "wgan_gp": ["model=wgan_gp"], "rpgan": ["model=rpgan"],
    # the GANs at the quick start's widths, with the recipe table's best settings where they apply (lr 1e-3 + EMA)
    "dcgan_quickstart": ["model=dcgan", "optimizer.lr=1e-3", "model.ema.decay=0.999", *CONV_NETS],
    "wgan_gp_narrow": ["model=wgan_gp", *CONV_NETS], "rpgan_narrow": ["model=rpgan", *CONV_NETS],
}
# nothing that spends training time on measuring it: the curve's points are judged afterwards
LEAN = ["data=mnist_mini", "trainer.max_epochs=-1", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
        "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "callbacks.periodic_checkpoint=null",
        "callbacks.sample_grid.every_n_epochs=10"]
SMOKE_JUDGE = ["classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32"]
METRICS = ("fid", "kid", "precision", "recall", "coverage_entropy", "classes_covered", "confident_share", "label_accuracy")
FIELDS = ("family", "minutes", "checkpoint", "generator_steps", "sampler", "evaluations", "eval_seconds",
          "sampling_seconds_per_1000", *METRICS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["flow", "ddpm"], choices=list(FAMILIES))
    parser.add_argument("--runs", nargs="+", default=[], metavar="FAMILY=RUN_DIR",
                        help="evaluate these finished runs (trained with this script's checkpoints) instead of training")
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall-clock minutes per family")
    parser.add_argument("--every", type=float, default=5.0, help="minutes between kept checkpoints")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--sampler", default=None, help="genlab eval's sampler={...} for many-step families")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/families"))
    parser.add_argument("--work", type=Path, default=Path("outputs/family_curves"))
    parser.add_argument("--smoke", action="store_true", help="a tiny judge, for checking the script")
    return parser.parse_args(argv)


def genlab(args: argparse.Namespace, *arguments: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("genlab")
    command = str(executable) if executable.is_file() else (shutil.which("genlab") or "genlab")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    judge = [*SMOKE_JUDGE, f"paths.cache_dir={args.work / 'cache'}"] if args.smoke else []
    return subprocess.run([command, *arguments, *judge], env=env, capture_output=True, text=True, check=False)


def max_time(minutes: float) -> str:
    """Lightning's DD:HH:MM:SS, a little past the last checkpoint so that it is written."""
    seconds = int(minutes * 60 + 30)
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def train(args: argparse.Namespace, family: str, run_dir: Path) -> None:
    interval = f"{{_target_:datetime.timedelta,seconds:{int(args.every * 60)}}}"
    timed = (f"+callbacks.timed_checkpoint={{_target_:pytorch_lightning.callbacks.ModelCheckpoint,"
             f"dirpath:{run_dir / 'checkpoints'},filename:'timed_{{step}}',auto_insert_metric_name:false,save_top_k:-1,train_time_interval:{interval}}}")
    result = genlab(args, "train", *FAMILIES[family], *LEAN, f"+trainer.max_time={max_time(args.minutes)}", timed,
                    f"seed={args.seed}", f"hydra.run.dir={run_dir}")
    if result.returncode != 0:
        raise SystemExit(f"genlab train {family} failed:\n{result.stderr[-3000:]}")


def timed_checkpoints(run_dir: Path) -> list[Path]:
    """The run's time-interval checkpoints, in training order (their step in the name)."""
    found = [path for path in (run_dir / "checkpoints").glob("timed_*.ckpt") if re.fullmatch(r"timed_\d+\.ckpt", path.name)]
    return sorted(found, key=lambda path: int(re.search(r"timed_(\d+)", path.name).group(1)))


def generator_steps(checkpoint: Path) -> int | None:
    """Updates of the network that makes images, as the module counted them (the name's {step} is Lightning's
    global step, which counts every optimizer's steps: a GAN's critic steps too)."""
    import torch

    progress = torch.load(checkpoint, map_location="cpu", weights_only=True).get("progress") or {}
    return progress.get("generator_steps")


def evaluate(args: argparse.Namespace, family: str, checkpoint: Path, minutes: float) -> dict[str, Any]:
    out = checkpoint.parent.parent / "eval" / f"{checkpoint.stem}_{args.eval_samples}"
    sampler = [f"sampler={args.sampler}"] if args.sampler and family in ("flow", "ddpm", "cflow", "cddpm") else []
    start, seconds = time.perf_counter(), None
    if not (out / "metrics.json").is_file():  # a point judged before (same folder) is read back, not judged again
        result = genlab(args, "eval", f"ckpt_path={checkpoint}", "extractor=classifier", "split=test",
                        f"n_samples={args.eval_samples}", f"seed={args.seed}", "progress=false", *sampler,
                        f"hydra.run.dir={out}")
        seconds = round(time.perf_counter() - start, 1)
        if result.returncode != 0:
            raise SystemExit(f"genlab eval {checkpoint} failed:\n{result.stderr[-3000:]}")
    report = json.loads((out / "metrics.json").read_text())
    settings = report["protocol"].get("sampler") or {}
    steps = generator_steps(checkpoint)
    return {"family": family, "minutes": round(minutes, 2), "checkpoint": str(checkpoint),
            "generator_steps": steps,
            "sampler": json.dumps({k: v for k, v in settings.items() if k != "evaluations"}),
            "evaluations": settings.get("evaluations", 1), "eval_seconds": seconds,
            "sampling_seconds_per_1000": report["protocol"].get("sampling_seconds_per_1000"),
            **{name: report["metrics"].get(name) for name in METRICS}}


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for family in dict.fromkeys(row["family"] for row in rows):
        points = [(row["minutes"], row["fid"]) for row in rows if row["family"] == family]
        axis.plot(*zip(*points), marker="o", label=family)
    axis.axhline(40, color="grey", linestyle="--", linewidth=1, label="target: FID 40")
    axis.set(xlabel="training minutes (wall clock, this CPU)", ylabel="classifier FID vs test split (lower is better)",
             title="mnist_mini: FID against training time", yscale="log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| family | overrides | minutes | generator steps | sampler | NFE | classifier FID | coverage entropy"
             " | classes covered | s per 1,000 images |", "|---|---|---|---|---|---|---|---|---|---|"]
    for family in dict.fromkeys(row["family"] for row in rows):
        last = [row for row in rows if row["family"] == family][-1]
        sampling = last.get("sampling_seconds_per_1000")
        lines.append(f"| {family} | `{' '.join(FAMILIES.get(family, []))}` | {last['minutes']} | {last['generator_steps']}"
                     f" | {last['sampler']} | {last['evaluations']} | {last['fid']:.1f} | {last['coverage_entropy']:.3f}"
                     f" | {last['classes_covered']:.0f} | {'–' if sampling is None else f'{sampling:.1f}'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = dict(item.split("=", 1) for item in args.runs)
    if not runs:
        for family in args.families:
            run_dir = (args.work / family).resolve()
            print(f"training {family} for {args.minutes} minutes -> {run_dir}", flush=True)
            train(args, family, run_dir)
            runs[family] = str(run_dir)
    rows = []
    for family, run_dir in runs.items():
        for index, checkpoint in enumerate(timed_checkpoints(Path(run_dir)), start=1):
            rows.append(evaluate(args, family, checkpoint, index * args.every))
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "curves.png")
    (args.out / "table.md").write_text(table(rows))
    print(f"wrote {args.out / 'curves.csv'}, {args.out / 'curves.png'}, {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
