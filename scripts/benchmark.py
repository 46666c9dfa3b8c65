"""How fast genlab trains and starts, as ratios measured in one run on one machine.

Throughput (images/s of steady-state training batches) of the same networks, optimizers,
losses and batch size on mnist_mini, trained three ways:

  genlab      `genlab train`'s own path: the composed config, genlab.builder.build, Trainer.fit
              with its default logger and callbacks (progress bar and validation off)
  plain       a hand-written PyTorch loop over batches sliced from tensors on the device
  DataLoader  the same loop fed the usual way: a Dataset of PIL images with per-item
              transforms and a shuffling torch.utils.data.DataLoader

Each ratio compares two ways batch by batch, interleaved: inside a genlab run, a plain-loop
step (its own networks and optimizers) follows every training batch (InterleavedClock); the
plain and DataLoader loops alternate steps. A shared machine whose speed drifts by 15% within
seconds then moves both sides alike. Each repeat gives one ratio; the report shows their median
and range.

genlab/plain is what Lightning and genlab's logging and callbacks cost (the target is >= 0.95);
plain/DataLoader is what keeping the data set on the device gains.

Options: the genlab path again with each option's overrides (speed.compile=true,
speed.channels_last=true, trainer.precision=bf16-mixed, and on a GPU trainer.precision=16-mixed
and trainer.benchmark=true), against the genlab path without it: (genlab+option/plain) /
(genlab/plain) of the same repeat, the plain steps serving as the yardstick. Beside it, the time
the warm-up batches took in the first repeat (torch.compile compiles there). `--options tricks`
measures the training tricks the same way (TRICK_OPTIONS: EMA, DiffAugment, ADA, R1 every step
and lazily every 16, R1 + R2): what each costs per training batch of the same model. The EMA's
standing batch norm statistics cost nothing here: they are measured when sampling, once per
change of the average (timed under "standing statistics" below).

Sampling: images/s of `module.sample` for every model, the best of the repeats, with its EMA swapped
in as `genlab eval` samples; for the many-step families (model=ddpm, flow, cddpm, cflow) per sampler
and step count in SAMPLERS, and for the few-step ones (meanflow, ict, ...) at 1, 2 and 4 steps, with the
network evaluations per image beside it. `--sampling-only` measures nothing else.

Start-up: the wall time of `genlab --help`, `genlab train --help`, and from launching
`genlab train` to its first step.

The reusable pieces live in scripts/bench/: clock.py (the Trainer callbacks that time genlab's
batches and its first step), plain_loop.py (the hand-written reference loops and their batch
sources), measure.py (paired measurements and their ratios) and report.py (the table and the
JSON). This script composes the configurations, runs genlab against the plain loop and measures
start-up.

    python scripts/benchmark.py
    python scripts/benchmark.py --device cuda --batches 300 --json benchmark.json
    python scripts/benchmark.py --models vae --batches 200 --options none --no-startup
    python scripts/benchmark.py --models ddpm flow --options none --no-startup --sample-images 100
    python scripts/benchmark.py --models dcgan --options tricks --no-startup
    python scripts/benchmark.py --models ddpm meanflow ict dcgan --sampling-only --sample-images 200
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from bench.clock import MARK, InterleavedClock
from bench.measure import Pair, plain_against_loader
from bench.plain_loop import device_batches, loader_batches, plain_stepper
from bench.report import print_report, save_json
from genlab.builder import build, build_datamodule
from genlab.data.sources import LabeledImages

SCRIPTS = Path(__file__).resolve().parent
# speed option -> (the overrides that turn it on, the devices it applies to)
SPEED_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "channels_last": (("speed.channels_last=true",), ("cpu", "cuda")),
    "compile": (("speed.compile=true",), ("cpu", "cuda")),
    "bf16-mixed": (("trainer.precision=bf16-mixed",), ("cpu", "cuda")),
    "16-mixed": (("trainer.precision=16-mixed",), ("cuda",)),
    "cudnn.benchmark": (("trainer.benchmark=true",), ("cuda",)),
}

# training tricks (issue 13): what each costs per training batch, measured like a speed option. The
# plain loop stays the plain model's, so (genlab+trick/plain) / (genlab/plain) is the trick's cost.
R1 = "{_target_:genlab.regularizers.R1Penalty,gamma:0.1,interval:%d}"
R2 = "{_target_:genlab.regularizers.R2Penalty,gamma:0.1,interval:1}"
TRICK_OPTIONS: dict[str, tuple[str, ...]] = {
    "ema": ("model.ema.decay=0.999",),
    "diffaugment": ("model/augment=diffaugment",),
    "ada": ("model/augment=ada",),
    "r1": ("+model.regularizers.r1=" + R1 % 1,),
    "r1_lazy16": ("+model.regularizers.r1=" + R1 % 16,),
    "r1+r2": ("+model.regularizers.r1=" + R1 % 1, "+model.regularizers.r2=" + R2),
}
# every option a run can name: speed options where they apply, tricks everywhere
OPTIONS: dict[str, tuple[str, ...]] = {
    **{name: overrides for name, (overrides, _) in SPEED_OPTIONS.items()}, **TRICK_OPTIONS,
}

# the sampler settings timed for the many-step families: model -> (method, steps)
_DDPM_SAMPLERS = (("ddpm", 100), ("ddim", 20), ("ddim", 50), ("dpm++", 10), ("dpm++", 20))
_FLOW_SAMPLERS = (("euler", 20), ("euler", 50), ("heun", 10), ("heun", 25))
# the few-step families (docs/few_step.md): sampler={steps: N}, one network evaluation per step
_FEW_STEPS = (("steps", 1), ("steps", 2), ("steps", 4))
SAMPLERS: dict[str, tuple[tuple[str, int], ...]] = {
    "ddpm": _DDPM_SAMPLERS, "cddpm": _DDPM_SAMPLERS, "flow": _FLOW_SAMPLERS, "cflow": _FLOW_SAMPLERS,
    **{model: _FEW_STEPS for model in ("meanflow", "cmeanflow", "ict", "cict")},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--models", nargs="+", default=["dcgan", "wgan_gp", "vae"], help="configs/model options")
    parser.add_argument("--batches", type=int, default=50, help="timed steady-state batches per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches before them")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of measurements; ratios are their paired medians")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument(
        "--options", nargs="+", default=["all"], metavar="OPTION",
        help=f"options to measure: all (the speed options that apply to the device), tricks (every training trick:"
             f" {', '.join(TRICK_OPTIONS)}), none, or some of {', '.join(OPTIONS)}",
    )
    parser.add_argument("--sample-images", type=int, default=100,
                        help="images per timed sampling call (every model; the many-step ones per sampler)")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--sampling-only", action="store_true",
                        help="only the sampling speeds (no training throughput, options or start-up)")
    parser.add_argument("--runs", nargs="+", default=[], metavar="NAME=CKPT",
                        help="also time the sampling of trained runs' checkpoints (as genlab eval rebuilds them), under"
                             " NAME: a many-step family's samplers if NAME is one, else 1, 2 and 4 steps of its own")
    parser.add_argument("--json", type=Path, help="also save every measurement here")
    args = parser.parse_args()
    unknown = set(args.options) - {"all", "tricks", "none", *OPTIONS}
    if unknown:
        parser.error(f"unknown --options {', '.join(sorted(unknown))}; choose from all, tricks, none, {', '.join(OPTIONS)}")
    if min(args.batches, args.batch_size, args.repeats) < 1 or min(args.warmup, args.workers) < 0:
        parser.error("--batches, --batch-size and --repeats must be >= 1; --warmup and --workers >= 0")
    return args


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch sees no CUDA device; use --device cpu")
    return torch.device(name)


# --- the configuration, as `genlab train` composes it -----------------------------------------


def speed_options(requested: list[str], device: torch.device) -> list[str]:
    """The options to measure on this device; asking for a speed option that does not apply to it is an error."""
    if "none" in requested:
        return []
    chosen: list[str] = []
    for name in requested:
        if name == "all":
            chosen += [option for option, (_, devices) in SPEED_OPTIONS.items() if device.type in devices]
        elif name == "tricks":
            chosen += list(TRICK_OPTIONS)
        elif name in SPEED_OPTIONS and device.type not in SPEED_OPTIONS[name][1]:
            raise SystemExit(f"--options {name} applies to {' and '.join(SPEED_OPTIONS[name][1])} only, not {device.type}")
        else:
            chosen.append(name)
    return list(dict.fromkeys(chosen))


def compose_train(
    model: str, batch_size: int, device: torch.device, total_batches: int, run_dir: Path, extra: tuple[str, ...] = ()
) -> DictConfig:
    """configs/train.yaml for one model, composed like tests/conftest.py does, its paths inside run_dir.

    Validation is off (limit_val_batches=0), so no images are held out for it (val_size=0) and
    the sample-quality callback has no domain classifier to train. `total_batches` is the epoch
    limit, an upper bound: InterleavedClock stops the fit once its batches are timed. `extra`
    overrides come last (a speed option's).
    """
    overrides = [
        f"model={model}",
        "data=mnist_mini",
        f"data.batch_size={batch_size}",
        "data.val_size=0",
        f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
        "trainer.devices=1",
        f"trainer.max_epochs={total_batches}",
        "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "~callbacks.progress_bar",
        *extra,
    ]
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.root_dir = str(run_dir)
        cfg.paths.output_dir = str(run_dir / "run")
        cfg.paths.log_dir = str(run_dir / "outputs")
        cfg.paths.data_dir = str(run_dir / "data")
    return cfg


def load_training_images(cfg: DictConfig) -> LabeledImages:
    """The training split the genlab path trains on (uint8, on the CPU)."""
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    return datamodule.split("train")


# --- (a) genlab ---------------------------------------------------------------------------------


def genlab_against_plain(
    model: str, args: argparse.Namespace, device: torch.device, reference: Callable[[], None], extra: tuple[str, ...] = ()
) -> Pair:
    """`genlab train`'s code path against plain-loop `reference` steps interleaved with its batches."""
    with tempfile.TemporaryDirectory(prefix="genlab-bench-") as run_dir:
        # epochs: an upper bound; the clock stops the fit
        cfg = compose_train(model, args.batch_size, device, args.warmup + args.batches + 1, Path(run_dir), extra)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule, module, trainer = build(cfg)
        clock = InterleavedClock(args.warmup, args.batches, reference)
        trainer.callbacks.append(clock)
        datamodule.setup("fit")
        with contextlib.redirect_stdout(io.StringIO()):  # the model summary table, once per fit
            trainer.fit(module, datamodule=datamodule)
    if clock.timed < args.batches:
        raise RuntimeError(f"{model}: the genlab run stopped after {clock.timed} of {args.batches} timed batches")
    return Pair(clock.genlab_seconds, clock.reference_seconds, clock.timed, clock.warmup_seconds)


def measure_throughput(args: argparse.Namespace, device: torch.device, options: list[str]) -> dict[str, dict[str, list[Pair]]]:
    """For every model, `repeats` rounds of: genlab against plain, genlab with each speed option
    against plain, and plain against DataLoader."""
    runs = ["genlab", *(f"genlab+{name}" for name in options), "plain/DataLoader"]
    results: dict[str, dict[str, list[Pair]]] = {model: {run: [] for run in runs} for model in args.models}
    with tempfile.TemporaryDirectory(prefix="genlab-bench-") as scratch:  # the plain loop reads no paths
        configs = {model: compose_train(model, args.batch_size, device, 1, Path(scratch)) for model in args.models}
    cpu_data = load_training_images(configs[args.models[0]])
    on_device = cpu_data.to(device)
    for repeat, model in itertools.product(range(args.repeats), args.models):
        cfg = configs[model]
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        plain = plain_stepper(cfg, device_batches(on_device, args.batch_size), device)
        for run in runs:
            if run == "plain/DataLoader":
                loader = plain_stepper(cfg, loader_batches(cpu_data, args.batch_size, device, args.workers), device)
                pair = plain_against_loader(plain, loader, args, device)
            else:
                option = run.partition("+")[2]
                pair = genlab_against_plain(model, args, device, plain, OPTIONS[option] if option else ())
            results[model][run].append(pair)
            first, second = run.split("/") if "/" in run else (run, "plain")
            print(
                f"  repeat {repeat + 1}/{args.repeats} {model:<8} {first:>24} {pair.batches * args.batch_size / pair.first_seconds:8.1f}"
                f" img/s against {second} {pair.batches * args.batch_size / pair.second_seconds:8.1f}: {pair.speed_ratio():.3f}",
                file=sys.stderr,
            )
    return results


# --- sampling (many-step families) -------------------------------------------------------------


def measure_sampling(args: argparse.Namespace, device: torch.device) -> dict[str, list[dict[str, float | str]]]:
    """Images/s of `sample()` per sampler and step count (one-pass families: one call), best of `repeats` calls
    of `--sample-images` images (untrained networks, whose speed does not depend on the weights, and --runs)."""
    results: dict[str, list[dict[str, float | str]]] = {}
    for model, module, samplers in sampling_modules(args, device):
        first_call = {"steps": 1} if samplers[0][0] is not None else {}
        module.sample(2, generator=torch.Generator().manual_seed(0), **first_call)  # first-call set-up, untimed
        results[model] = []
        for method, steps in samplers:
            options = {"steps": steps} if method == "steps" else {"method": method, "steps": steps} if method else {}
            if method == "steps" and "method" in module.family.sampler_options():  # reflow, cd: their own method
                options["method"] = module.family.sampler_settings({})["method"]
            seconds = []
            for repeat in range(args.repeats):
                start = time.perf_counter()
                module.sample(args.sample_images, generator=torch.Generator().manual_seed(repeat), **options)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds.append(time.perf_counter() - start)
            settings = module.family.sampler_settings(options) if method else {"evaluations": 1}
            row = {"method": method or "one pass", "steps": steps, "evaluations": settings["evaluations"],
                   "images_per_second": args.sample_images / min(seconds),
                   "seconds_per_1000_images": 1000 * min(seconds) / args.sample_images}
            results[model].append(row)
            print(f"  sampling {model:<6} {row['method']:>8} {steps:>4} steps: {row['images_per_second']:8.1f} img/s", file=sys.stderr)
    return results


def sampling_modules(args: argparse.Namespace, device: torch.device):
    """(name, module, samplers) for each of --models (untrained: the speed does not depend on the weights) and
    --runs (trained checkpoints, rebuilt from their run folders as genlab eval does)."""
    from genlab.builder import build_module
    from genlab.run.load import load_model, load_run_config

    for model in args.models:
        with tempfile.TemporaryDirectory(prefix="genlab-bench-") as scratch:
            cfg = compose_train(model, args.batch_size, device, 1, Path(scratch))
        # one-pass families (GANs, VAEs): one network evaluation per image, no sampler to choose
        yield model, build_module(cfg).to(device), SAMPLERS.get(model, ((None, 1),))
    for entry in args.runs:
        name, _, ckpt = entry.partition("=")
        if not ckpt:
            raise SystemExit(f"--runs {entry}: give NAME=CKPT, e.g. creflow=outputs/.../checkpoints/last.ckpt")
        module = load_model(ckpt, load_run_config(ckpt), device)
        samplers = SAMPLERS.get(name, _FEW_STEPS if module.family.sampler_options() else ((None, 1),))
        yield name, module, samplers


# --- the EMA's standing statistics (paid when sampling, not per training batch) ------------------


def finished(device: torch.device) -> float:
    """time.perf_counter() once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure_standing_statistics(args: argparse.Namespace, device: torch.device) -> dict[str, dict[str, float]]:
    """Seconds that measuring the EMA's standing batch norm statistics adds to a `sample()` call, per model
    whose image network has batch norm (model.ema.decay=0.999 and the EMA's default settings): the first
    call after an update of the average measures them, the next call with the same average reuses them.
    Best of `repeats`; `genlab` calls it once per sample grid or val/fid, not per training batch."""
    from genlab.builder import build_module

    results: dict[str, dict[str, float]] = {}
    for model in (m for m in args.models if m not in SAMPLERS):
        with tempfile.TemporaryDirectory(prefix="genlab-bench-") as scratch:
            cfg = compose_train(model, args.batch_size, device, 1, Path(scratch), TRICK_OPTIONS["ema"])
        module = build_module(cfg).to(device)
        network = module.family.image_network()
        if module.ema is None or not module.ema.standing_statistics or not any(
                isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) for layer in network.modules()):
            continue
        measured, reused = [], []
        for repeat in range(args.repeats + 1):  # the first round warms up, untimed
            module.update_ema()
            start = finished(device)
            module.sample(args.batch_size, generator=torch.Generator().manual_seed(repeat))
            middle = finished(device)
            module.sample(args.batch_size, generator=torch.Generator().manual_seed(repeat))
            end = finished(device)
            if repeat:
                measured.append(middle - start)
                reused.append(end - middle)
        results[model] = {"batches": module.ema.standing_statistics, "batch_size": module.ema.standing_batch_size,
                          "seconds": min(measured) - min(reused)}
        print(f"  standing statistics {model:<8}: {results[model]['seconds'] * 1000:.1f} ms", file=sys.stderr)
    return results


# --- start-up --------------------------------------------------------------------------------------


def genlab_executable() -> str:
    found = shutil.which("genlab", path=str(Path(sys.executable).parent)) or shutil.which("genlab")
    if found is None:
        raise SystemExit("no `genlab` command found: pip install -e . in this environment")
    return found


def run_command(command: list[str], **options: object) -> str:
    """Run a command and return its stdout; a failure ends the benchmark with the command's own error."""
    result = subprocess.run(command, capture_output=True, text=True, **options)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def best_wall_time(command: list[str], repeats: int) -> float:
    """The fastest of `repeats` runs of a command, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_command(command)
        times.append(time.perf_counter() - start)
    return min(times)


def first_step_times(device: torch.device) -> tuple[float, float]:
    """Seconds from launching `genlab train` to the start and to the end of its first training batch.

    FirstStepClock, injected by a Hydra override, prints the wall-clock times; the run is one
    batch of dcgan on mnist_mini without validation, in a scratch folder.
    """
    with tempfile.TemporaryDirectory(prefix="genlab-bench-") as run_dir:
        command = [
            genlab_executable(), "train", "data=mnist_mini", "data.val_size=0",
            f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
            "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0",
            "trainer.enable_progress_bar=false", "~callbacks.progress_bar", f"hydra.run.dir={run_dir}",
            "+callbacks.first_step._target_=bench.clock.FirstStepClock",
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")]))}
        launched = time.time()
        stdout = run_command(command, env=env, cwd=run_dir)
    stamps = dict(line.split()[1:] for line in stdout.splitlines() if line.startswith(MARK))
    return float(stamps["first_batch_start"]) - launched, float(stamps["first_batch_end"]) - launched


def measure_startup(device: torch.device, repeats: int) -> dict[str, float]:
    genlab = genlab_executable()
    first_steps = [first_step_times(device) for _ in range(repeats)]
    return {
        "genlab --help": best_wall_time([genlab, "--help"], repeats),
        "genlab train --help": best_wall_time([genlab, "train", "--help"], repeats),
        "genlab train: launch to first batch start": min(start for start, _ in first_steps),
        "genlab train: launch to first batch end": min(end for _, end in first_steps),
    }


def main() -> int:
    args = parse_args()
    device = resolve_device(args.device)
    # Lightning's notes (accelerators, small epochs, unmonitored checkpoints) would bury the table
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    options = [] if args.sampling_only else speed_options(args.options, device)
    results = {} if args.sampling_only else measure_throughput(args, device, options)
    sampling = measure_sampling(args, device)
    standing = measure_standing_statistics(args, device) if "ema" in options else {}
    startup = {} if args.no_startup or args.sampling_only else measure_startup(device, args.repeats)
    print_report(results, startup, args, device, sampling, standing)
    if args.json:
        save_json(args.json, results, startup, args, device, sampling, standing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
