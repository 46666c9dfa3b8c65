"""Which GAN recipe trains best on small data? Issue 13's table, made through the `genlab` CLI.

Every recipe trains on mnist_mini for the same budget in generator updates (the updates of the
network that makes the images: `budget.generator_steps=N trainer.max_epochs=-1`, so that WGAN-GP's
five critic steps per generator update are not counted against it), with the same batch size and
the conv nets' widths of configs/model/net/dcgan.yaml, once per seed, each in its own run folder
(`--jobs` runs at a time, each with `--threads` threads). `genlab eval` then judges the last
checkpoint: classifier FID against the test split, class-coverage entropy (and label accuracy for
conditional models). Out come
<out>/recipes.md (mean ± std over seeds), recipes.csv and recipes.json (every run's numbers) and
recipes_seed0.png (each recipe's seed-0 sample grid, side by side; alone in grids/<recipe>.png):

    python scripts/gan_recipes.py --budget 1500                         # the table, docs/recipes/
    python scripts/gan_recipes.py --budget 4 --seeds 0 --recipes dcgan rpgan --eval-samples 100 --smoke

A recipe is a list of genlab overrides in RECIPES below: add one there.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

EMA = ["model.ema.decay=0.999"]
# name on the command line: (label in the table, genlab overrides)
RECIPES: dict[str, tuple[str, list[str]]] = {
    "dcgan": ("dcgan", ["model=dcgan"]),
    "dcgan_ema": ("dcgan + EMA", ["model=dcgan", *EMA]),
    "dcgan_ema_diffaugment": ("dcgan + EMA + DiffAugment", ["model=dcgan", *EMA, "model/augment=diffaugment"]),
    # the quick start's recipe: 5x DCGAN's learning rate, which an EMA keeps from showing its noise
    "dcgan_lr1e3_ema": ("dcgan, lr 1e-3 + EMA", ["model=dcgan", "optimizer.lr=1e-3", *EMA]),
    "dcgan_lr1e3_ema_diffaugment": ("dcgan, lr 1e-3 + EMA + DiffAugment",
                                    ["model=dcgan", "optimizer.lr=1e-3", *EMA, "model/augment=diffaugment"]),
    # DiffAugment at about the strength ADA's controller reached by 5,000 updates on mnist_mini (p 0.26, seed 0):
    # tells "augmentation hurts here" from "augmenting every image from the first step is too strong here"
    "dcgan_lr1e3_ema_diffaugment_p25": ("dcgan, lr 1e-3 + EMA + DiffAugment, p 0.25",
                                        ["model=dcgan", "optimizer.lr=1e-3", *EMA, "model/augment=diffaugment",
                                         "model.augment.probability=0.25"]),
    "dcgan_lr1e3_ema_ada": ("dcgan, lr 1e-3 + EMA + ADA", ["model=dcgan", "optimizer.lr=1e-3", *EMA, "model/augment=ada"]),
    "rpgan": ("rpgan", ["model=rpgan"]),
    "wgan_gp": ("wgan_gp", ["model=wgan_gp"]),
    "sngan": ("sngan", ["model=sngan"]),
    # conditional: --recipes cgan acgan (the table gains a label-accuracy column)
    "cgan": ("cgan (projection D, CBN G)", ["model=cgan"]),
    "acgan": ("acgan (auxiliary classifier)", ["model=acgan"]),
    # the gallery's other families (scripts/model_gallery.py): their defaults, or the table's best recipe for
    # DCGAN's nets and optimizer (lr 1e-3 + EMA) where they share them
    "gan": ("gan (MLP)", ["model=gan"]),
    "lsgan_lr1e3_ema": ("lsgan, lr 1e-3 + EMA", ["model=lsgan", "optimizer.lr=1e-3", *EMA]),
    "acgan_real_lr1e3_ema": ("acgan, lr 1e-3 + EMA, class term on real images",
                             ["model=acgan", "optimizer.lr=1e-3", *EMA, "model.regularizers.auxiliary_classifier.on_fake=false"]),
    "wgan": ("wgan (weight clipping)", ["model=wgan"]),
    # the families that lag at their papers' rates, with the recipe that helped DCGAN most (a faster rate, and an EMA
    # to hide its noise): which of them is each family's best at a short budget is what the gallery should show
    "gan_lr1e3_ema": ("gan (MLP), lr 1e-3 + EMA", ["model=gan", "optimizer.lr=1e-3", *EMA]),
    "sngan_lr1e3_ema": ("sngan, lr 1e-3 + EMA", ["model=sngan", "optimizer.lr=1e-3", *EMA]),
    "rpgan_lr1e3_ema": ("rpgan, lr 1e-3 + EMA", ["model=rpgan", "optimizer.lr=1e-3", *EMA]),
    "wgan_gp_lr1e3_ema": ("wgan_gp, lr 1e-3 + EMA", ["model=wgan_gp", "optimizer.lr=1e-3", *EMA]),
    "wgan_lr2e4_ema": ("wgan (weight clipping), lr 2e-4 + EMA", ["model=wgan", "optimizer.lr=2e-4", *EMA]),
    "vae": ("vae", ["model=vae"]),
    "cvae": ("cvae", ["model=cvae"]),
}
# issue 13's table: what each trick adds to DCGAN, and the modern and classic baselines
DEFAULT_RECIPES = ["dcgan", "dcgan_ema", "dcgan_ema_diffaugment", "dcgan_lr1e3_ema", "dcgan_lr1e3_ema_diffaugment",
                   "rpgan", "wgan_gp", "sngan"]
# what every run shares besides the budget and the seed (the batch size is added from --batch-size)
COMMON = ["data=mnist_mini", "trainer.enable_progress_bar=false", "~callbacks.progress_bar"]
# --smoke: seconds instead of minutes, for checking the script (the numbers mean nothing)
SMOKE_TRAIN = ["trainer.limit_val_batches=2", "trainer.log_every_n_steps=1", "callbacks.sample_quality.n_samples=100"]
SMOKE_JUDGE = ["classifier.epochs=1", "classifier.base_channels=8", "classifier.feature_dim=32"]
# each finished run's row, in its run folder: a later call with the same --work folder keeps it
ROW_FILE = "recipe_row.json"
# the numbers each run keeps from `genlab eval` (those it reports)
METRICS = ("fid", "kid", "precision", "recall", "inception_score", "coverage_entropy",
           "coverage_normalized_entropy", "confident_share", "classes_covered", "label_accuracy", "intra_fid")
CSV_FIELDS = ("recipe", "seed", "status", "budget_generator_steps", "generator_steps", "images_seen", "epochs",
              "train_minutes", "threads", "seconds_per_generator_step", "steady_seconds_per_generator_step", "eval_seconds", *METRICS, "fid_raw_weights", "d_real_train", "d_real_held_out", "run_dir", "overrides", "error")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, required=True, help="generator updates per run (budget.generator_steps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES, choices=list(RECIPES))
    parser.add_argument("--out", type=Path, default=Path("docs/recipes"))
    parser.add_argument("--eval-samples", type=int, default=1000, help="generated (and real test) images per eval")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OMP_NUM_THREADS of every run")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once (each with --threads threads): on a 2-core CPU, --jobs 2 --threads 1 trains"
                             " about twice as many runs an hour as one run with 2 threads; their minutes then count one core each")
    parser.add_argument("--batch-size", type=int, default=64, help="data.batch_size of every recipe")
    parser.add_argument("--set", nargs="+", default=[], metavar="OVERRIDE", dest="common",
                        help="genlab overrides for every recipe, e.g. the quick start's narrower nets:"
                             " model.net.generator.base_channels=16 model.net.discriminator.base_channels=32")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the run folders here (default: a temporary folder, removed at the end); run again with"
                             " the same folder to keep its finished runs and do only the rest (more seeds, a stopped table)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny validation and domain classifier (cached in the work folder): checks the script only")
    args = parser.parse_args(argv)
    if args.budget < 1 or args.eval_samples < 2 or args.threads < 1 or args.batch_size < 1 or args.jobs < 1:
        parser.error("--budget, --threads, --jobs and --batch-size must be positive, --eval-samples at least 2")
    return args


def genlab_command() -> str:
    beside = Path(sys.executable).with_name("genlab")
    return str(beside) if beside.is_file() else (shutil.which("genlab") or "genlab")


class Runner:
    """Runs genlab subcommands with the same environment, from the same folder (--jobs of them at once)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.genlab = genlab_command()
        self.env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        self.judge = [*SMOKE_JUDGE, f"paths.cache_dir={work / 'cache'}"] if args.smoke else []
        self.budget = args.budget
        self.train_common = [*COMMON, f"data.batch_size={args.batch_size}", "trainer.max_epochs=-1", *args.common,
                             *(SMOKE_TRAIN if args.smoke else []), *self.judge]

    def train_overrides(self, recipe: str, seed: int, budget: int | None = None) -> list[str]:
        budget = self.budget if budget is None else budget
        return [*RECIPES[recipe][1], *self.train_common, f"budget.generator_steps={budget}", f"seed={seed}"]

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.genlab, *args], env=self.env, capture_output=True, text=True, check=False)

    def composed(self, recipe: str) -> dict[str, Any]:
        """The config that `genlab train` would run (fails early if a recipe's overrides do not compose)."""
        import yaml

        result = self("train", *self.train_overrides(recipe, 0), "--cfg", "job")
        if result.returncode != 0:
            raise SystemExit(f"recipe {recipe} does not compose: {RECIPES[recipe][1]}\n{result.stderr[-2000:]}")
        return yaml.safe_load(result.stdout)


def facts(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the table should say about a recipe's composed config."""
    model, net = cfg["model"], cfg["model"].get("net", {})
    return {
        "loss": model.get("loss"), "n_critic": model.get("n_critic"), "latent_dim": model.get("latent_dim"),
        "generator_width": net.get("generator", {}).get("base_channels"),
        "discriminator_width": net.get("discriminator", {}).get("base_channels"),
        "discriminator_norm": net.get("discriminator", {}).get("norm"),
        "regularizers": sorted(model.get("regularizers") or {}), "ema": model.get("ema"),
        "augment": (model.get("augment") or {}).get("_target_"), "batch_size": cfg["data"]["batch_size"],
        "optimizer": {key: cfg.get("optimizer", {}).get(key) for key in ("lr", "betas")},
        "conditional": bool(model.get("num_classes")),
    }


def run_one(runner: Runner, recipe: str, seed: int, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    overrides = runner.train_overrides(recipe, seed)
    row: dict[str, Any] = {"recipe": recipe, "seed": seed, "budget_generator_steps": args.budget,
                           "run_dir": str(run_dir), "overrides": " ".join(overrides), "status": "failed", "error": None,
                           "threads": args.threads, "jobs": args.jobs}
    start = time.perf_counter()
    trained = runner("train", *overrides, f"hydra.run.dir={run_dir}")
    row["train_minutes"] = (time.perf_counter() - start) / 60
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for key in ("generator_steps", "images_seen", "epochs"):
        row[key] = int(summary[key]) if summary.get(key) is not None else None
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if trained.returncode != 0 or not checkpoint.is_file():
        row["error"] = f"genlab train exited {trained.returncode}: {trained.stderr.strip()[-1500:]}"
        return row
    if row["generator_steps"]:
        row["seconds_per_generator_step"] = 60 * row["train_minutes"] / row["generator_steps"]
    events = scalar_events(run_dir, ("train/generator_steps", "train/d_real", "val/d_real"))
    row["steady_seconds_per_generator_step"] = steady_seconds_per_update(events)
    row.update(discriminator_gap(events))
    start = time.perf_counter()
    results, row["error"] = evaluate(runner, checkpoint, run_dir / "eval", args)
    row["eval_seconds"] = time.perf_counter() - start
    if results is None:
        return row
    row.update({name: results["metrics"][name] for name in METRICS if name in results["metrics"]})
    row["eval_protocol"] = results["protocol"]
    row["status"] = "completed"
    return row


def evaluate(runner: Runner, checkpoint: Path, folder: Path, args: argparse.Namespace,
             *overrides: str) -> tuple[dict[str, Any] | None, str | None]:
    """`genlab eval`'s metrics.json for a checkpoint (classifier FID etc. against the test split), or the error."""
    evaluated = runner(
        "eval", f"ckpt_path={checkpoint}", "extractor=classifier", "split=test", f"n_samples={args.eval_samples}",
        "progress=false", *runner.judge, *overrides, f"hydra.run.dir={folder}",
    )
    results_path = folder / "metrics.json"
    if evaluated.returncode != 0 or not results_path.is_file():
        return None, f"genlab eval exited {evaluated.returncode}: {evaluated.stderr.strip()[-1500:]}"
    return json.loads(results_path.read_text()), None


def add_raw_weights_fid(runner: Runner, row: dict[str, Any], args: argparse.Namespace) -> None:
    """FID of the same run's raw weights (`ema=false`): EMA's effect, paired on one training run."""
    run_dir = Path(row["run_dir"])
    results, error = evaluate(runner, run_dir / "checkpoints" / "last.ckpt", run_dir / "eval_raw_weights", args, "ema=false")
    if results is None:
        row["error"] = error
    else:
        row["fid_raw_weights"] = results["metrics"]["fid"]


@contextlib.contextmanager
def cancelled_on_failure(pool: ThreadPoolExecutor) -> Iterator[None]:
    """A failed run or Ctrl-C drops the queued runs and evaluations, instead of launching each of them first."""
    try:
        yield
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def finished_row(run_dir: Path, overrides: list[str], earlier: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The row of a run this script finished earlier with the same overrides, and where it was found: in its
    folder under --work, else among `earlier` (the rows of the table already in --out, whose work folder may be
    gone: a table grows by new recipes or seeds without training the old ones again)."""
    path = run_dir / ROW_FILE
    joined = " ".join(overrides)
    if path.is_file():
        row = json.loads(path.read_text())
        if row.get("status") == "completed" and row.get("overrides") == joined:
            return row, str(run_dir)
    for row in earlier:
        if row.get("status") == "completed" and row.get("overrides") == joined:
            return row, "the table's recipes.json"
    return None, ""


def earlier_rows(out: Path) -> list[dict[str, Any]]:
    """The runs of the table already written to `out` (a smoke run's overrides differ from a real one's, so
    `finished_row` never mixes them)."""
    path = out / "recipes.json"
    return list(json.loads(path.read_text()).get("runs", [])) if path.is_file() else []


def set_aside(run_dir: Path) -> None:
    """Move an unfinished or different earlier run out of the way (renamed, never deleted)."""
    if run_dir.exists():
        target = run_dir.with_name(f"{run_dir.name}_set_aside_{time.strftime('%Y%m%d_%H%M%S')}")
        run_dir.rename(target)
        print(f"{run_dir} was unfinished or made with other overrides: moved to {target.name}", flush=True)


def scalar_events(run_dir: Path, tags: tuple[str, ...]) -> dict[str, list[Any]]:
    """Every logged event of `tags` in the run's TensorBoard files, oldest first ({} without tensorboard)."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator,
        )
    except ImportError:
        return {}
    found: dict[str, list[Any]] = {tag: [] for tag in tags}
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in set(tags) & set(accumulator.Tags()["scalars"]):
            found[tag] += accumulator.Scalars(tag)
    return {tag: sorted(values, key=lambda event: event.wall_time) for tag, values in found.items()}


def steady_seconds_per_update(events: dict[str, list[Any]]) -> float | None:
    """Seconds per generator update between the second and the last logged one (TensorBoard wall times of
    train/generator_steps): training alone, validation epochs included, start-up and the first update not."""
    points = sorted((event.step, event.wall_time) for event in events.get("train/generator_steps", []))
    if len(points) < 3 or points[-1][0] <= points[1][0]:
        return None
    return (points[-1][1] - points[1][1]) / (points[-1][0] - points[1][0])


def discriminator_gap(events: dict[str, list[Any]]) -> dict[str, float | None]:
    """D's mean verdict on real training images (`train/d_real`, the last epoch's logged batches) and on the
    held-out validation images (`val/d_real`, the last validation): a gap that opens means D memorises its
    training set, the overfitting DiffAugment and ADA fight. For BCE losses both are probabilities."""
    train, held_out = events.get("train/d_real", []), events.get("val/d_real", [])
    if not train or not held_out:
        return {"d_real_train": None, "d_real_held_out": None}
    # the epoch the last validation judged: from the validation before it up to it (not batches trained after it)
    since, until = (held_out[-2].step if len(held_out) > 1 else -1), held_out[-1].step
    last_epoch = [event.value for event in train if since < event.step <= until] or [train[-1].value]
    return {"d_real_train": statistics.mean(last_epoch), "d_real_held_out": held_out[-1].value}


def mean_std(values: list[float], digits: int) -> str:
    values = [value for value in values if value is not None and math.isfinite(value)]
    if not values:
        return "–"
    def number(value: float) -> str:
        text = f"{value:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"

    if len(values) == 1:
        return number(values[0])
    return f"{number(statistics.mean(values))} ± {number(statistics.stdev(values))}"


def summarize(rows: list[dict[str, Any]], recipes: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for recipe in recipes:
        done = [row for row in rows if row["recipe"] == recipe and row["status"] == "completed"]
        entry: dict[str, Any] = {"label": RECIPES[recipe][0], "runs": len(done),
                                 "failed": sum(row["recipe"] == recipe and row["status"] != "completed" for row in rows)}
        for name in (*METRICS, "fid_raw_weights", "d_real_train", "d_real_held_out", "train_minutes", "threads", "seconds_per_generator_step",
                     "steady_seconds_per_generator_step"):
            values = [row[name] for row in done if row.get(name) is not None]
            if values:
                entry[name] = {"mean": statistics.mean(values),
                               "std": statistics.stdev(values) if len(values) > 1 else None, "values": values}
        out[recipe] = entry
    return out


def threads_note(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The runs' OMP_NUM_THREADS: one number, or which recipes ran with which (runs kept from earlier calls)."""
    recipes_by_threads: dict[Any, list[str]] = {}
    for row in rows:
        recipes_by_threads.setdefault(row.get("threads", args.threads), []).append(row["recipe"])
    if len(recipes_by_threads) <= 1:
        return str(next(iter(recipes_by_threads), args.threads))
    return "; ".join(f"{threads} for {', '.join(dict.fromkeys(recipes))}" for threads, recipes in recipes_by_threads.items())


def jobs_note(rows: list[dict[str, Any]]) -> str:
    """How many runs trained side by side: one number, or the numbers the kept runs were made with."""
    jobs = sorted({row.get("jobs", 1) for row in rows})
    return " or ".join(map(str, jobs)) if jobs else "1"


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, recipe_facts: dict[str, dict[str, Any]]) -> str:
    recipes, seeds = args.recipes, args.seeds
    conditional = any(recipe_facts[recipe]["conditional"] for recipe in recipes)
    head = ["recipe", "overrides", "FID ↓", "coverage entropy (nats) ↑", "classes covered"]
    averaging = any((recipe_facts[recipe]["ema"] or {}).get("decay") is not None for recipe in recipes)
    head += ["FID of the raw weights (same runs)"] if averaging else []
    head += ["label accuracy"] if conditional else []
    gap = any(row.get("d_real_train") is not None for row in rows)
    head += ["D(x): training / held-out images"] if gap else []
    head += ["train minutes", "s / generator update", "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for recipe in recipes:
        done = [row for row in rows if row["recipe"] == recipe and row["status"] == "completed"]

        def column(name: str, done: list[dict[str, Any]] = done) -> list[Any]:
            return [row.get(name) for row in done]

        cells = [RECIPES[recipe][0], "`" + " ".join(RECIPES[recipe][1]) + "`", mean_std(column("fid"), 1),
                 mean_std(column("coverage_entropy"), 3), mean_std(column("classes_covered"), 1)]
        if averaging:
            cells.append(mean_std(column("fid_raw_weights"), 1))
        if conditional:
            cells.append(mean_std(column("label_accuracy"), 3) if recipe_facts[recipe]["conditional"] else "–")
        if gap:
            cells.append(f"{mean_std(column('d_real_train'), 2)} / {mean_std(column('d_real_held_out'), 2)}")
        cells += [mean_std(column("train_minutes"), 2), mean_std(column("steady_seconds_per_generator_step"), 3),
                  f"{len(done)} of {len(seeds)}"]
        lines.append("| " + " | ".join(cells) + " |")
    first = recipe_facts[recipes[0]]
    widths = sorted({(facts_["generator_width"], facts_["discriminator_width"]) for facts_ in recipe_facts.values()
                     if facts_["generator_width"] is not None})
    own_nets = [recipe for recipe in recipes if recipe_facts[recipe]["generator_width"] is None]
    critics = [f"{recipe} {recipe_facts[recipe]['n_critic']}" for recipe in recipes if recipe_facts[recipe]["n_critic"] != 1]
    notes = [
        f"mnist_mini, {args.budget:,} generator updates per run (`budget.generator_steps={args.budget}"
        " trainer.max_epochs=-1`; critic steps are not counted"
        + (f": critic steps per update {', '.join(critics)}" if critics else "")
        + f"), batch {first['batch_size']}, conv nets of base width (G/D) "
        + ", ".join(f"{g}/{d}" for g, d in widths)
        + (f" ({', '.join(own_nets)}: their own nets)" if own_nets else "")
        + (f", every recipe with `{' '.join(args.common)}`" if args.common else "")
        + "".join(f", {', '.join(group)} with `{' '.join(shared)}`" for group, shared in getattr(args, "shared", []))
        + f"; seeds {' '.join(map(str, seeds))}: mean ± std over seeds.",
        (f"FID: `genlab eval extractor=classifier split=test n_samples={args.eval_samples}` of `checkpoints/last.ckpt`"
         " (EMA weights where the recipe keeps an EMA): Fréchet distance of the domain classifier's features against"
         " the test split, comparable only with other genlab classifier FIDs at the same number of samples. Coverage"
         " entropy: of the classifier's predicted classes, ln 10 = 2.303 is every digit equally. Classes covered:"
         " with at least one confident (p ≥ 0.9) sample. FID of the raw weights: the same checkpoints judged with"
         " `ema=false`, for the recipes that keep an EMA: what the average adds, paired on one training run."
         + (" D(x): the discriminator's mean verdict on real training images over the last epoch (`train/d_real`;"
            " augmented ones where the recipe augments) and on the held-out validation images at the last validation"
            " (`val/d_real`): a gap means D memorises its training set, what augmentation is for. It reads D's output"
            " as the loss does: a probability for the (non-saturating) GAN loss, the raw score for the others"
            " (a Wasserstein critic's score has no fixed scale: only its gap means something)." if gap else "")),
        (f"Train minutes: wall clock of `genlab train` (start-up, validation and checkpoints included) with"
         f" OMP_NUM_THREADS={threads_note(rows, args)} on {platform.machine()} ({os.cpu_count()} CPUs); the script ran {jobs_note(rows)} at a time (each run's minutes then count the cores it had), and other load on the machine is not controlled: compare times only within one table."
         " s / generator update: training alone, from the TensorBoard wall times of the second to the last update"
         " (validation epochs included, start-up not); recipes.csv also has the whole run's time over its updates."),
        f"Made by `python scripts/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}`.",
    ]
    if args.smoke:
        notes.insert(0, "**Smoke run** (`--smoke`: tiny validation and domain classifier): the numbers mean nothing.")
    failed = [row for row in rows if row["status"] != "completed"]
    notes += [f"Failed: {row['recipe']} seed {row['seed']}: {row['error']}" for row in failed]
    title = getattr(args, "title", "GAN recipes on mnist_mini at one budget")
    return "\n".join([f"# {title}", "", *lines, "", *notes]) + "\n"


def strip(rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> Path | None:
    """Each recipe's sample grid of its first seed, four to a row, each with its label, FID and coverage."""
    from PIL import Image, ImageDraw

    grids = []
    for recipe in args.recipes:
        row = next((row for row in rows if row["recipe"] == recipe and row["seed"] == args.seeds[0]), None)
        if row is None:
            continue
        picture = Path(row["run_dir"]) / "samples" / "last.png"
        saved = path.parent / "grids" / f"{recipe}.png"
        if not picture.is_file():  # a row kept from the table's JSON: its run folder may be gone, its grid is not
            picture = saved
        if not picture.is_file():
            continue
        # two lines: the label, then the numbers (a long label would cut them off)
        caption = RECIPES[recipe][0] + "\n" + (f"FID {row['fid']:.1f}" if row.get("fid") is not None else "")
        caption += f"  cov {row['coverage_entropy']:.2f}" if row.get("coverage_entropy") is not None else ""
        caption += f"  label acc {row['label_accuracy']:.2f}" if row.get("label_accuracy") is not None else ""
        grids.append((caption, Image.open(picture).convert("RGB")))
        saved.parent.mkdir(exist_ok=True)
        if picture != saved:
            shutil.copy(picture, saved)
    if not grids:
        return None
    caption_height, gap, per_row = 30, 8, 4
    cell_width = max(grid.width for _, grid in grids) + gap
    cell_height = caption_height + max(grid.height for _, grid in grids) + gap
    rows_needed = math.ceil(len(grids) / per_row)
    canvas = Image.new("RGB", (cell_width * min(per_row, len(grids)) - gap, cell_height * rows_needed - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (caption, grid) in enumerate(grids):
        x, y = cell_width * (index % per_row), cell_height * (index // per_row)
        draw.multiline_text((x + 2, y + 2), caption, fill="black", spacing=2)
        canvas.paste(grid, (x, y + caption_height))
    canvas.save(path)
    return path


def write_outputs(rows: list[dict[str, Any]], args: argparse.Namespace, recipe_facts: dict[str, dict[str, Any]]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipes.md").write_text(markdown(rows, args, recipe_facts))
    with open(args.out / "recipes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    record = {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "budget": {"generator_steps": args.budget, "counts": "generator updates (budget.generator_steps)"},
        "seeds": args.seeds, "eval": {"extractor": "classifier", "split": "test", "n_samples": args.eval_samples,
                                      "checkpoint": "last.ckpt"},
        "threads": args.threads, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "smoke": args.smoke,
        "recipes": {recipe: {"label": RECIPES[recipe][0], "overrides": RECIPES[recipe][1], "composed": recipe_facts[recipe]}
                    for recipe in args.recipes},
        "summary": summarize(rows, args.recipes),
        "runs": rows,
    }
    (args.out / "recipes.json").write_text(json.dumps(record, indent=2, default=str))
    strip(rows, args, args.out / "recipes_seed0.png")


def table_row(runner: Runner, recipe: str, seed: int, work: Path, args: argparse.Namespace,
              recipe_facts: dict[str, dict[str, Any]], earlier: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's row: kept from an earlier call with the same overrides (its --work folder, or the table in
    --out), or trained and judged now (an unfinished or different earlier run is set aside first)."""
    run_dir = work / recipe / f"seed_{seed}"
    row, found_in = finished_row(run_dir, runner.train_overrides(recipe, seed), earlier)
    if row is not None:
        print(f"{recipe:22s} seed {seed}: kept from {found_in} (same overrides)", flush=True)
    else:
        set_aside(run_dir)
        row = run_one(runner, recipe, seed, run_dir, args)
    averages = (recipe_facts[recipe]["ema"] or {}).get("decay") is not None
    if averages and row["status"] == "completed" and row.get("fid_raw_weights") is None and Path(row["run_dir"]).is_dir():
        add_raw_weights_fid(runner, row, args)
    if Path(row["run_dir"]) == run_dir:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ROW_FILE).write_text(json.dumps(row, default=str))
    if row["status"] == "completed":
        steady = row["steady_seconds_per_generator_step"]
        print(f"{recipe:22s} seed {seed}: {row['generator_steps']} generator updates in"
              f" {row['train_minutes']:.2f} min (training alone: "
              + (f"{steady:.3f} s each" if steady is not None else "too few updates to time") + "),"
              f" FID {row['fid']:.2f}, coverage entropy {row['coverage_entropy']:.3f}", flush=True)
    else:
        print(f"{recipe:22s} seed {seed}: FAILED: {row['error']}", flush=True)
    return row


def run_table(args: argparse.Namespace, groups: list[tuple[list[str], list[str]]]) -> int:
    """Train and judge every (recipe, seed) and write the outputs after each run. `groups`: lists of recipes
    with the overrides that only they share (after --set), e.g. the narrower conv nets of the gallery's GANs,
    which the MLP and VAE families have no keys for."""
    scratch = None
    if args.work is None:
        scratch = tempfile.TemporaryDirectory(prefix="gan_recipes_")
        work = Path(scratch.name)
    else:
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
    args.out = args.out.resolve()
    try:
        runners = {}
        args.shared = [(recipes, shared) for recipes, shared in groups if recipes and shared]  # for the notes
        for recipes, shared in groups:
            runner = Runner(argparse.Namespace(**{**vars(args), "common": [*args.common, *shared]}), work)
            runners.update({recipe: runner for recipe in recipes})
        recipe_facts = {recipe: facts(runner.composed(recipe)) for recipe, runner in runners.items()}
        n_runs = len(args.recipes) * len(args.seeds)
        print(f"budget: {args.budget:,} generator updates per run (budget.generator_steps; a critic step is not one),"
              f" batch {args.batch_size}, {n_runs} runs, {args.jobs} at a time, OMP_NUM_THREADS={args.threads}, work folder {work}")
        earlier = earlier_rows(args.out)
        # seed by seed: a table stopped early still compares every recipe
        order = [(seed, recipe) for seed in args.seeds for recipe in args.recipes]
        to_train = [(seed, recipe) for seed, recipe in order if finished_row(
            work / recipe / f"seed_{seed}", runners[recipe].train_overrides(recipe, seed), earlier)[0] is None]
        if to_train:
            # untimed: trains and caches the domain classifier (paths.cache_dir) that val/fid and eval use, so
            # that the first timed run does not pay for it (a table whose runs all finished before trains nothing)
            seed, first = to_train[0]
            warm_up = runners[first]("train", *runners[first].train_overrides(first, seed, budget=1),
                                     f"hydra.run.dir={work / 'warm_up' / time.strftime('%Y%m%d_%H%M%S')}")
            if warm_up.returncode != 0:
                raise SystemExit(f"the warm-up run failed:\n{warm_up.stderr[-2000:]}")
        done: dict[tuple[int, str], dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=args.jobs) as pool, cancelled_on_failure(pool):
            futures = {pool.submit(table_row, runners[recipe], recipe, seed, work, args, recipe_facts, earlier): (seed, recipe)
                       for seed, recipe in order}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                rows = [done[key] for key in order if key in done]
                write_outputs(rows, args, recipe_facts)  # a long table keeps what it has if stopped
        print(f"table: {args.out / 'recipes.md'}; every run: recipes.csv, recipes.json; grids: recipes_seed0.png")
        print((args.out / "recipes.md").read_text())
        return 1 if any(row["status"] != "completed" for row in rows) else 0
    finally:
        if scratch is not None:
            scratch.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_table(args, [(args.recipes, [])])


if __name__ == "__main__":
    sys.exit(main())
