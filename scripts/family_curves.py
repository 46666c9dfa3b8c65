"""FID against training minutes, one curve per family, made through the `genlab` CLI.

Each family trains on mnist_mini for a wall-clock budget (`+trainer.max_time`), keeping a
checkpoint every `--every` minutes (genlab.callbacks.timed_checkpoint) and nothing that costs
training time on the way (no val/fid, a sample grid every 10 epochs). Then `genlab eval` judges
each kept checkpoint alike: classifier FID against the test split, class coverage, label accuracy
for the conditional families, with each family's default sampler (or `--sampler`). Out come
<out>/curves.csv (every point), <out>/curves.png (FID against minutes) and <out>/table.md (each
family's last point, its FID at the longest time every family reached, how many digits it covers,
its training steps and what 1,000 images cost to sample).

The GAN and VAE families train with the gallery's recipe for each (GALLERY, configs/recipe/*.yaml);
any recipe can be named too (`--families dcgan_ema`); the denoising families with their defaults.

    python scripts/family_curves.py --jobs 2 --threads 1                          # every family: docs/families/
    python scripts/family_curves.py --families flow ddpm --minutes 20 --every 5
    python scripts/family_curves.py --families flow dcgan --minutes 0.3 --one-pass-minutes 0.3 --every 0.1 \
        --eval-samples 100 --smoke                                                # checks the script
    python scripts/family_curves.py --families ddpm ddpm_eps_linear ddpm_eps_cosine ddpm_v_linear --minutes 10 \
        --eval-samples 1000 --jobs 2 --threads 1 --out docs/families/ddpm_objectives    # DDPM's objectives apart
    python scripts/family_curves.py --runs flow=/path/to/run ddpm=/path/to/run      # evaluate existing runs

Training minutes are wall-clock minutes of `genlab train` on this machine with `--threads` threads,
`--jobs` runs side by side: on a shared machine they move with everyone else's load (say so beside
the numbers). A family whose run folder under --work already finished is kept, not trained again.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# the families that refine an image over many network evaluations, with their defaults
DENOISING: dict[str, list[str]] = {"ddpm": ["model=ddpm"], "flow": ["model=flow"], "cddpm": ["model=cddpm"],
                                   "cflow": ["model=cflow"]}
# the few-step families trained from scratch (one network evaluation per step; --steps judges their last checkpoint
# at several step counts). iCT's curriculum spans K batches: about what 20 minutes give at one thread (`--minutes`
# longer or shorter: set model.curriculum_steps to match with --extra)
# MeanFlow with the authors' pixel-space CIFAR-10 time sampler and weighting, against the paper's of its defaults
_MEANFLOW_PIXEL = ["model.time_mean=-0.6", "model.time_std=1.6", "model.start_mean=-4.0", "model.start_std=1.6",
                   "model.unequal_share=0.75", "model.adaptive_power=0.75"]
FEW_STEP: dict[str, list[str]] = {"meanflow": ["model=meanflow"], "cmeanflow": ["model=cmeanflow"],
                                  "cmeanflow_pixel": ["model=cmeanflow", *_MEANFLOW_PIXEL],
                                  "ict": ["model=ict", "model.curriculum_steps=2000"],
                                  "cict": ["model=cict", "model.curriculum_steps=2000"]}


# each GAN and VAE family's recipe (configs/recipe/): the one that did best for it at the gallery's budget
# (docs/gallery/recipes.md; mostly lr 1e-3 + EMA on the tables' narrow conv nets)
GALLERY: dict[str, str] = {
    "gan": "gan_lr1e3_ema", "cgan": "cgan", "acgan": "acgan_real_lr1e3_ema", "rpgan": "rpgan_lr1e3_ema",
    "dcgan": "dcgan_lr1e3_ema", "lsgan": "lsgan_lr1e3_ema", "sngan": "sngan_lr1e3_ema", "wgan": "wgan_lr2e4_ema",
    "wgan_gp": "wgan_gp_lr1e3_ema", "vae": "vae", "cvae": "cvae",
}
RECIPES = sorted(path.stem for path in (Path(__file__).resolve().parents[1] / "configs" / "recipe").glob("*.yaml"))


# DDPM's objectives apart (model=ddpm is v-prediction on the cosine schedule): which trains fastest on a CPU budget
DDPM_OBJECTIVES: dict[str, list[str]] = {
    "ddpm_eps_linear": ["model=ddpm", "model.prediction=epsilon", "model.schedule=linear"],  # Ho et al.'s
    "ddpm_eps_cosine": ["model=ddpm", "model.prediction=epsilon", "model.schedule=cosine"],
    "ddpm_v_linear": ["model=ddpm", "model.prediction=v", "model.schedule=linear"],
}
# every family the plot can hold: name on the command line -> genlab overrides (GAN and VAE families: the gallery's
# recipe under the family's name, every other recipe under its own)
# students of a trained run: give the teacher with --extra model.teacher.ckpt_path=<run>/checkpoints/last.ckpt
DISTILLED: dict[str, list[str]] = {"reflow": ["model=reflow"], "creflow": ["model=creflow"], "cd": ["model=cd"],
                                   "ccd": ["model=ccd"]}
FAMILIES: dict[str, list[str]] = {
    **DENOISING, **DDPM_OBJECTIVES, **FEW_STEP, **DISTILLED,
    **{family: [f"recipe={recipe}"] for family, recipe in GALLERY.items()},
    **{recipe: [f"recipe={recipe}"] for recipe in RECIPES if recipe not in GALLERY},
}
# nothing that spends training time on measuring it: the curve's points are judged afterwards
LEAN = ["data=mnist_mini", "trainer.max_epochs=-1", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
        "callbacks.sample_quality=null", "callbacks.best_checkpoint=null", "callbacks.periodic_checkpoint=null",
        "callbacks.sample_grid.every_n_epochs=10"]
SMOKE_JUDGE = ["classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32"]
METRICS = ("fid", "kid", "precision", "recall", "coverage_entropy", "classes_covered", "confident_share", "label_accuracy")
# `point`: a timed checkpoint judged with the family's default sampler (the curve over minutes); `steps`: the last
# checkpoint judged again with sampler={steps: N} (the curve over network evaluations per image)
FIELDS = ("family", "minutes", "checkpoint", "generator_steps", "sampler", "evaluations", "sampling_seconds_per_1000",
          *METRICS, "kind")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=[*DENOISING, *GALLERY], choices=list(FAMILIES),
                        help="default: every family (the denoising ones, then the gallery's GANs and VAEs)")
    parser.add_argument("--runs", nargs="+", default=[], metavar="FAMILY=RUN_DIR",
                        help="evaluate these finished runs (trained with this script's checkpoints) instead of training")
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall-clock minutes of a denoising family")
    parser.add_argument("--one-pass-minutes", type=float, default=10.0,
                        help="training minutes of a GAN or VAE (one network pass per image), whose curves flatten sooner")
    parser.add_argument("--every", type=float, default=5.0, help="minutes between kept checkpoints (denoising)")
    parser.add_argument("--one-pass-every", type=float, default=2.5, help="minutes between kept checkpoints (GAN, VAE)")
    parser.add_argument("--jobs", type=int, default=1, help="runs (and evaluations) at once, each with --threads threads")
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--sampler", default=None, help="genlab eval's sampler={...} for many-step families")
    parser.add_argument("--steps", type=int, nargs="*", default=[],
                        help="also judge each few-step family's last checkpoint with sampler={steps: N} for each N")
    parser.add_argument("--merge", type=Path, default=None,
                        help="an earlier curves.csv whose families (those not measured now) join the table and plot")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides given to every genlab train")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/families"))
    parser.add_argument("--work", type=Path, default=Path("outputs/family_curves"))
    parser.add_argument("--smoke", action="store_true", help="a tiny judge, for checking the script")
    return parser.parse_args(argv)


@contextlib.contextmanager
def cancelled_on_failure(pool: ThreadPoolExecutor) -> Iterator[None]:
    """A failed run or Ctrl-C drops the queued runs and evaluations, instead of launching each of them first."""
    try:
        yield
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def judge_overrides(args: argparse.Namespace) -> list[str]:
    """--smoke: a tiny domain classifier, cached apart from the real one."""
    return [*SMOKE_JUDGE, f"paths.cache_dir={args.work / 'cache'}"] if args.smoke else []


def genlab(args: argparse.Namespace, *arguments: str, judge: bool = True) -> subprocess.CompletedProcess:
    """`genlab <arguments>` with --threads threads (and the smoke judge unless `judge` is false: already given)."""
    executable = Path(sys.executable).with_name("genlab")
    command = str(executable) if executable.is_file() else (shutil.which("genlab") or "genlab")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    extra = judge_overrides(args) if judge else []
    return subprocess.run([command, *arguments, *extra], env=env, capture_output=True, text=True, check=False)


def max_time(minutes: float, every: float) -> str:
    """Lightning's DD:HH:MM:SS, a little past the last checkpoint so that it is written: a quarter of an interval
    (at least 5 s, at most 30 s) covers the batch, or the short validation, that runs past it."""
    seconds = int(minutes * 60 + min(30.0, max(5.0, every * 15)))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def denoising(family: str) -> bool:
    """A family with a sampler (trained for --minutes), not a one-pass GAN or VAE."""
    return family in DENOISING or family in DDPM_OBJECTIVES or family in FEW_STEP or family in DISTILLED


def few_steps(family: str) -> bool:
    """A family judged again at --steps: the few-step ones and the distilled students."""
    return family in FEW_STEP or family in DISTILLED


def budget(args: argparse.Namespace, family: str) -> tuple[float, float]:
    """(training minutes, minutes between checkpoints) of a family."""
    return (args.minutes, args.every) if denoising(family) else (args.one_pass_minutes, args.one_pass_every)


def train_overrides(args: argparse.Namespace, family: str, run_dir: Path) -> list[str]:
    """What `genlab train` is given for a family's curve (the smoke judge included when --smoke)."""
    minutes, every = budget(args, family)
    timed = (f"+callbacks.timed_checkpoint={{_target_:genlab.callbacks.timed_checkpoint.TimedCheckpoint,"
             f"dirpath:{run_dir / 'checkpoints'},minutes:{every}}}")
    return [*FAMILIES[family], *LEAN, f"+trainer.max_time={max_time(minutes, every)}", timed, f"seed={args.seed}",
            *args.extra, *judge_overrides(args)]


def finished_as_asked(run_dir: Path, overrides: list[str]) -> bool:
    """A run in `run_dir` completed, has its timed checkpoints, and was trained with these very overrides (another
    budget, recipe, seed or a --smoke run in the same --work folder is trained again, not plotted as this one)."""
    from omegaconf import OmegaConf

    summary, recorded = run_dir / "summary.json", run_dir / ".hydra" / "overrides.yaml"
    if not (summary.is_file() and recorded.is_file() and timed_checkpoints(run_dir)):
        return False
    if json.loads(summary.read_text()).get("status") != "completed":
        return False
    return [str(item) for item in OmegaConf.load(recorded) if not str(item).startswith("hydra.")] == overrides


def train(args: argparse.Namespace, family: str, run_dir: Path) -> None:
    """Train a family in `run_dir`, unless a run there already finished as asked (a stopped script goes on where
    it was)."""
    overrides = train_overrides(args, family, run_dir)
    if finished_as_asked(run_dir, overrides):
        print(f"{family}: kept {run_dir} (finished before)", flush=True)
        return
    if run_dir.exists():  # an unfinished run, or one made otherwise: set aside, never deleted
        run_dir.rename(run_dir.with_name(f"{run_dir.name}_set_aside_{time.strftime('%Y%m%d_%H%M%S')}"))
    print(f"training {family} for {budget(args, family)[0]} minutes -> {run_dir}", flush=True)
    result = genlab(args, "train", *overrides, f"hydra.run.dir={run_dir}", judge=False)
    if result.returncode != 0:
        raise SystemExit(f"genlab train {family} failed:\n{result.stderr[-3000:]}")


def checkpoint_minutes(run_dir: Path, default: float) -> float:
    """Minutes between a run's timed checkpoints, as it was trained (its own config), so that runs made with
    different --every share one plot; `default` for a run without that record."""
    from omegaconf import OmegaConf

    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        return default
    config = OmegaConf.load(config)
    minutes = OmegaConf.select(config, "callbacks.timed_checkpoint.minutes")
    if minutes:
        return float(minutes)
    # runs made with Lightning's ModelCheckpoint(train_time_interval=...)
    seconds = OmegaConf.select(config, "callbacks.timed_checkpoint.train_time_interval.seconds")
    return seconds / 60 if seconds else default


def timed_checkpoints(run_dir: Path) -> list[Path]:
    """The run's time-interval checkpoints, in training order (their step in the name)."""
    found = [path for path in (run_dir / "checkpoints").glob("timed_*.ckpt") if re.fullmatch(r"timed_\d+\.ckpt", path.name)]
    return sorted(found, key=lambda path: int(re.search(r"timed_(\d+)", path.name).group(1)))


def progress(checkpoint: Path) -> tuple[int | None, float | None]:
    """(updates of the network that makes images, as the module counted them; the training minutes the checkpoint
    was written at, as TimedCheckpoint records them). The updates are in the name too, but runs made with Lightning's
    ModelCheckpoint named theirs by its global step, which counts a GAN's critic steps."""
    import torch

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return (saved.get("progress") or {}).get("generator_steps"), saved.get("training_minutes")


def judged_folder(args: argparse.Namespace, checkpoint: Path, steps: int | None = None) -> Path:
    """Where a point's genlab eval results stay, so that a later call reads them back instead of judging again."""
    return checkpoint.parent.parent / "eval" / f"{checkpoint.stem}_{args.eval_samples}{f'_steps{steps}' if steps else ''}"


def judge_run(args: argparse.Namespace, family: str, checkpoints: list[Path], steps: int | None = None) -> None:
    """Judge a run's timed checkpoints that were not judged before (with sampler={steps: `steps`} when given), in one
    `genlab eval -m` over them (one interpreter for all), each job's metrics.json then kept in the checkpoint's own
    folder."""
    todo = [checkpoint for checkpoint in checkpoints
            if not (judged_folder(args, checkpoint, steps) / "metrics.json").is_file()]
    if not todo:
        return
    sweep = todo[0].parent.parent / "eval" / f"sweep_{time.strftime('%Y%m%d_%H%M%S')}{f'_steps{steps}' if steps else ''}"
    sampler = [f"sampler={{steps:{steps}}}"] if steps else \
        [f"sampler={args.sampler}"] if args.sampler and denoising(family) else []
    result = genlab(args, "eval", "-m", f"ckpt_path={','.join(str(c) for c in todo)}", "extractor=classifier", "split=test",
                    f"n_samples={args.eval_samples}", f"seed={args.seed}", "progress=false", *sampler,
                    f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}")
    if result.returncode != 0:
        raise SystemExit(f"genlab eval of {family}'s checkpoints failed:\n{result.stderr[-3000:]}")
    for number, checkpoint in enumerate(todo):  # Hydra's jobs run in the order of the list
        judged_folder(args, checkpoint, steps).mkdir(parents=True, exist_ok=True)
        shutil.move(sweep / str(number) / "metrics.json", judged_folder(args, checkpoint, steps) / "metrics.json")
    shutil.rmtree(sweep, ignore_errors=True)


def point(args: argparse.Namespace, family: str, checkpoint: Path, minutes: float, steps: int | None = None) -> dict[str, Any]:
    """One judged timed checkpoint (at `steps` sampler steps, when given); `minutes` (its interval times its rank)
    stands in for runs that did not record the minutes they were written at."""
    report = json.loads((judged_folder(args, checkpoint, steps) / "metrics.json").read_text())
    settings = report["protocol"].get("sampler") or {}
    updates, recorded = progress(checkpoint)
    minutes = minutes if recorded is None else recorded
    return {"family": family, "minutes": round(minutes, 2), "checkpoint": str(checkpoint),
            "generator_steps": updates,
            "sampler": json.dumps({k: v for k, v in settings.items() if k != "evaluations"}),
            "evaluations": settings.get("evaluations", 1),
            "sampling_seconds_per_1000": report["protocol"].get("sampling_seconds_per_1000"),
            **{name: report["metrics"].get(name) for name in METRICS}, "kind": "steps" if steps else "point"}


def plot(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    """Two panels: FID against training minutes (each family's timed checkpoints, its default sampler), and FID
    against network evaluations per image (each family's last checkpoint, at every step count judged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(row["family"] for row in rows))
    # 40 colours (tab20, then tab20b) and 12 markers: no two of up to 40 families look alike
    colours = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors
    figure, (over_time, over_nfe) = plt.subplots(1, 2, figsize=(14, 5.5))
    for index, family in enumerate(families):
        style = {"marker": "os^Dv<>ph*XP"[index % 12], "color": colours[index % len(colours)],
                 "linestyle": "-" if denoising(family) else "--"}
        timed = [row for row in rows if row["family"] == family and row.get("kind", "point") != "steps"]
        if not timed:
            continue
        over_time.plot([float(row["minutes"]) for row in timed], [float(row["fid"]) for row in timed], label=family, **style)
        last = [row for row in rows if row["family"] == family and row["checkpoint"] == timed[-1]["checkpoint"]]
        by_nfe = sorted({int(row["evaluations"]): float(row["fid"]) for row in last}.items())
        over_nfe.plot(*zip(*by_nfe), label=family, **style)
    for axis in (over_time, over_nfe):
        axis.axhline(20, color="grey", linestyle=":", linewidth=1, label="FID 20")
        axis.set(yscale="log", ylabel="classifier FID vs test split (lower is better)")
    # --runs judges runs trained elsewhere: this call's --threads and --jobs say nothing of their training
    threads = ("as each run was trained" if args.runs else
               f"{args.threads} CPU thread{'s' if args.threads > 1 else ''} per run, {args.jobs} run{'s' if args.jobs > 1 else ''} at once")
    over_time.set(xlabel=f"training minutes (wall clock, {threads})",
                  title=f"mnist_mini: FID against training time ({args.eval_samples:,} samples per point)")
    over_nfe.set(xscale="log", xlabel="network evaluations per image (log; guidance counts twice)",
                 title="FID against sampling cost (each family's last checkpoint)")
    over_nfe.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def sampler_cell(settings: str) -> str:
    """'dpm++ 20 steps, guidance 2' from the JSON a point keeps; 'one pass' for a GAN or VAE."""
    options = json.loads(settings)
    if not options:
        return "one pass"
    text = f"{options.get('method', 'jump')} {options['steps']} step{'s' if options['steps'] > 1 else ''}"
    return text + (f", guidance {options['guidance']:g}" if options.get("guidance") not in (None, 1, 1.0) else "")


def table(rows: list[dict[str, Any]]) -> str:
    """Each family's last point, and its FID at the longest time every family reached: the one column that
    compares them on the same axis (training minutes), since the families may train for different times."""
    steps_rows = [row for row in rows if row.get("kind") == "steps"]
    rows = [row for row in rows if row.get("kind", "point") != "steps"]
    families = list(dict.fromkeys(row["family"] for row in rows))
    shared = min(max(row["minutes"] for row in rows if row["family"] == family) for family in families)
    lines = ["| family | overrides | minutes | generator steps | sampler | NFE | classifier FID"
             f" | FID at {shared:g} min | coverage entropy | classes covered | label accuracy | s per 1,000 images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for family in families:
        points = [row for row in rows if row["family"] == family]
        last = points[-1]
        # a checkpoint's minutes run past its interval by a batch or two (5.02 for 5)
        at_shared = ([row for row in points if row["minutes"] <= shared + 0.05] or [{"fid": math.nan}])[-1]
        sampling, accuracy = last.get("sampling_seconds_per_1000"), last.get("label_accuracy")
        lines.append(f"| {family} | `{' '.join(FAMILIES.get(family, []))}` | {last['minutes']:g} | {last['generator_steps']}"
                     f" | {sampler_cell(last['sampler'])} | {last['evaluations']} | {last['fid']:.1f} | {at_shared['fid']:.1f}"
                     f" | {last['coverage_entropy']:.3f} | {last['classes_covered']:.0f}"
                     f" | {'–' if accuracy in (None, '') else f'{float(accuracy):.3f}'}"
                     f" | {'–' if sampling in (None, '') else f'{float(sampling):.1f}'} |")
    return "\n".join(lines) + "\n" + (steps_table(steps_rows) if steps_rows else "")


def steps_table(rows: list[dict[str, Any]]) -> str:
    """Each few-step family's last checkpoint at each step count judged (--steps)."""
    lines = ["", "| family | steps | NFE | classifier FID | precision | recall | classes covered | label accuracy"
             " | s per 1,000 images |", "|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda row: (row["family"], int(row["evaluations"]))):
        accuracy, sampling = row.get("label_accuracy"), row.get("sampling_seconds_per_1000")
        lines.append(f"| {row['family']} | {json.loads(row['sampler'])['steps']} | {row['evaluations']}"
                     f" | {float(row['fid']):.1f} | {float(row['precision']):.3f} | {float(row['recall']):.3f}"
                     f" | {float(row['classes_covered']):.0f} | {'–' if accuracy in (None, '') else f'{float(accuracy):.3f}'}"
                     f" | {'–' if sampling in (None, '') else f'{float(sampling):.2f}'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = dict(item.split("=", 1) for item in args.runs)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool, cancelled_on_failure(pool):
        if not runs:
            # the longest runs first, so that the pool's last runs are short ones
            families = sorted(args.families, key=lambda family: -budget(args, family)[0])
            folders = {family: (args.work / family).resolve() for family in families}
            list(pool.map(lambda family: train(args, family, folders[family]), families))
            runs = {family: str(folders[family]) for family in args.families}
        list(pool.map(lambda item: judge_run(args, item[0], timed_checkpoints(Path(item[1]))), runs.items()))
        few_step = [(family, run_dir, steps) for family, run_dir in runs.items() if few_steps(family)
                    for steps in args.steps]
        list(pool.map(lambda item: judge_run(args, item[0], timed_checkpoints(Path(item[1]))[-1:], item[2]), few_step))
        rows = []
        for family, run_dir in runs.items():
            every = checkpoint_minutes(Path(run_dir), budget(args, family)[1])
            for index, checkpoint in enumerate(timed_checkpoints(Path(run_dir)), start=1):
                rows.append(point(args, family, checkpoint, index * every))
                print(rows[-1], flush=True)
            for steps in args.steps if few_steps(family) and timed_checkpoints(Path(run_dir)) else ():
                rows.append(point(args, family, checkpoint, index * every, steps))
                print(rows[-1], flush=True)
    if args.merge is not None:  # an earlier measurement's families, as measured then
        earlier = [{**row, **{key: float(row[key]) for key in ("minutes", *METRICS) if row.get(key) not in (None, "")},
                    "evaluations": int(row["evaluations"]), "kind": row.get("kind") or "point"}
                   for row in csv.DictReader(args.merge.open()) if row["family"] not in runs]
        rows = earlier + rows
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "curves.png", args)
    (args.out / "table.md").write_text(table(rows))
    print(f"wrote {args.out / 'curves.csv'}, {args.out / 'curves.png'}, {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
