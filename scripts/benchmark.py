"""How fast genlab trains and starts, as ratios measured in one run on one machine.

Throughput (images/s of steady-state training batches) of the same networks, optimizers,
losses and batch size on mnist_mini, trained three ways:

  genlab      `genlab train`'s own path: the composed config, genlab.train.build, Trainer.fit
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

Speed options: the genlab path again with each option's overrides (speed.compile=true,
speed.channels_last=true, trainer.precision=bf16-mixed, and on a GPU trainer.precision=16-mixed
and trainer.benchmark=true), against the genlab path without it: (genlab+option/plain) /
(genlab/plain) of the same repeat, the plain steps serving as the yardstick. Beside it, the time
the warm-up batches took in the first repeat (torch.compile compiles there).

Start-up: the wall time of `genlab --help`, `genlab train --help`, and from launching
`genlab train` to its first step.

    python scripts/benchmark.py
    python scripts/benchmark.py --device cuda --batches 300 --json benchmark.json
    python scripts/benchmark.py --models vae --batches 200 --options none --no-startup
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from _bench_callbacks import MARK, InterleavedClock, synchronized_time
from genlab.data.datamodule import to_signed_unit
from genlab.data.sources import LabeledImages
from genlab.modules.base import GenerativeModule
from genlab.modules.vae import VAEModule
from genlab.objectives import (
    adversarial_loss,
    clip_weights_,
    gaussian_kl_divergence,
    gradient_penalty,
    reconstruction_loss,
    reparameterize,
)
from genlab.train import build, build_model

SCRIPTS = Path(__file__).resolve().parent
# speed option -> (the overrides that turn it on, the devices it applies to)
SPEED_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "channels_last": (("speed.channels_last=true",), ("cpu", "cuda")),
    "compile": (("speed.compile=true",), ("cpu", "cuda")),
    "bf16-mixed": (("trainer.precision=bf16-mixed",), ("cpu", "cuda")),
    "16-mixed": (("trainer.precision=16-mixed",), ("cuda",)),
    "cudnn.benchmark": (("trainer.benchmark=true",), ("cuda",)),
}
Batch = tuple[Tensor, Tensor]
Step = Callable[[Tensor, Tensor], None]


@dataclass
class Pair:
    """Two ways of training timed step by step, interleaved: seconds each took over `batches` steps."""

    first_seconds: float
    second_seconds: float
    batches: int
    warmup_seconds: float = 0.0  # genlab runs: genlab's own time for its warm-up batches

    def speed_ratio(self) -> float:
        """Images/s of the first way over images/s of the second."""
        return self.second_seconds / self.first_seconds


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
        help=f"speed options to measure: all (those that apply to the device), none, or some of {', '.join(SPEED_OPTIONS)}",
    )
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--json", type=Path, help="also save every measurement here")
    args = parser.parse_args()
    unknown = set(args.options) - {"all", "none", *SPEED_OPTIONS}
    if unknown:
        parser.error(f"unknown --options {', '.join(sorted(unknown))}; choose from all, none, {', '.join(SPEED_OPTIONS)}")
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
    """The speed options to measure on this device; asking for one that does not apply to it is an error."""
    if "none" in requested:
        return []
    if "all" in requested:
        return [name for name, (_, devices) in SPEED_OPTIONS.items() if device.type in devices]
    for name in requested:
        if device.type not in SPEED_OPTIONS[name][1]:
            raise SystemExit(f"--options {name} applies to {' and '.join(SPEED_OPTIONS[name][1])} only, not {device.type}")
    return requested


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
    datamodule = instantiate(cfg.data)
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


# --- (b) and (c): the plain loop ------------------------------------------------------------------


def build_module(cfg: DictConfig, device: torch.device) -> GenerativeModule:
    """The LightningModule exactly as genlab.train.build makes it; the plain loop uses its nets only."""
    return build_model(cfg).to(device).train()


def adversarial_step(module: GenerativeModule, cfg: DictConfig) -> Step:
    """genlab/modules/gan.py's training_step without Lightning: a critic step on every batch,
    a generator step on every n_critic-th, one fake batch shared by both; nothing logged."""
    generator, critic = module.generator, module.discriminator
    factories = instantiate(cfg.optimizer, _convert_="all")
    opt_g, opt_d = factories["generator"](generator.parameters()), factories["discriminator"](critic.parameters())
    objective = adversarial_loss(cfg.model.loss)
    n_critic, gp_weight, clip_value = cfg.model.n_critic, cfg.model.gp_weight, cfg.model.clip_value
    latent_dim, conditional = cfg.model.latent_dim, cfg.model.num_classes > 0
    critic_steps = itertools.count(1)

    def step(real: Tensor, labels: Tensor) -> None:
        labels = labels if conditional else None
        generator_turn = next(critic_steps) % n_critic == 0
        with torch.set_grad_enabled(generator_turn):
            fake = generator(torch.randn(real.shape[0], latent_dim, device=real.device), labels)
        d_loss = objective.discriminator(critic(real, labels), critic(fake.detach(), labels))
        if gp_weight > 0:
            d_loss = d_loss + gp_weight * gradient_penalty(partial(critic, labels=labels), real, fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        if clip_value is not None:
            clip_weights_(critic, clip_value)
        if generator_turn:
            critic.requires_grad_(False)  # as Lightning's toggle_optimizer: the generator's loss makes no critic gradients
            g_loss = objective.generator(critic(fake, labels))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            critic.requires_grad_(True)

    return step


def vae_step(module: GenerativeModule, cfg: DictConfig) -> Step:
    """genlab/modules/vae.py's training step without Lightning: minimise the negative ELBO; nothing logged."""
    encoder, decoder = module.encoder, module.decoder
    optimizer = instantiate(cfg.optimizer, _convert_="all")["generator"]([*encoder.parameters(), *decoder.parameters()])
    reconstruction = reconstruction_loss(cfg.model.likelihood)
    kl_weight, conditional = cfg.model.kl_weight, cfg.model.num_classes > 0

    def step(images: Tensor, labels: Tensor) -> None:
        labels = labels if conditional else None
        mu, logvar = encoder(images, labels)
        z = reparameterize(mu, logvar)
        nll = reconstruction(decoder(z, labels), (images + 1) / 2)
        loss = (nll + kl_weight * gaussian_kl_divergence(mu, logvar)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def device_batches(data: LabeledImages, batch_size: int) -> Iterator[Batch]:
    """Endless shuffled batches sliced from the uint8 data set on the device, scaled there, as genlab does."""
    while True:
        order = torch.randperm(len(data)).to(data.images.device)
        for start in range(0, len(data) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield to_signed_unit(data.images.index_select(0, index)), data.labels.index_select(0, index)


class PILImages(Dataset):
    """torchvision's dataset pattern (datasets.MNIST): uint8 arrays, one PIL image per item, per-item transforms to [-1, 1]."""

    def __init__(self, data: LabeledImages) -> None:
        channels = data.images.shape[1]
        images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C), PIL's layout
        self.images = images[..., 0] if channels == 1 else images
        self.labels = data.labels.tolist()
        half = [0.5] * channels
        self.transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(half, half)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def loader_batches(data: LabeledImages, batch_size: int, device: torch.device, workers: int) -> Iterator[Batch]:
    """Endless batches from a shuffling DataLoader, copied to the device."""
    cuda = device.type == "cuda"
    loader = DataLoader(
        PILImages(data), batch_size=batch_size, shuffle=True, drop_last=True,
        num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
    )
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=cuda), labels.to(device, non_blocking=cuda)


def plain_stepper(cfg: DictConfig, batches: Iterator[Batch], device: torch.device) -> Callable[[], None]:
    """One plain-loop training step on the next batch of `batches` per call, with networks of its own."""
    module = build_module(cfg, device)
    step = vae_step(module, cfg) if isinstance(module, VAEModule) else adversarial_step(module, cfg)
    return lambda: step(*next(batches))


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds one step took, its queued device work included."""
    start = synchronized_time(device)
    step()
    return synchronized_time(device) - start


def plain_against_loader(plain: Callable[[], None], loader: Callable[[], None], args: argparse.Namespace, device: torch.device) -> Pair:
    """The plain loop fed from the device against the same loop fed by a DataLoader, steps alternating."""
    for _ in range(args.warmup):
        plain()
        loader()
    seconds = [0.0, 0.0]
    for _ in range(args.batches):
        seconds[0] += timed(plain, device)
        seconds[1] += timed(loader, device)
    return Pair(*seconds, args.batches)


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
                pair = genlab_against_plain(model, args, device, plain, SPEED_OPTIONS[option][0] if option else ())
            results[model][run].append(pair)
            first, second = run.split("/") if "/" in run else (run, "plain")
            print(
                f"  repeat {repeat + 1}/{args.repeats} {model:<8} {first:>24} {pair.batches * args.batch_size / pair.first_seconds:8.1f}"
                f" img/s against {second} {pair.batches * args.batch_size / pair.second_seconds:8.1f}: {pair.speed_ratio():.3f}",
                file=sys.stderr,
            )
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
            "+callbacks.first_step._target_=_bench_callbacks.FirstStepClock",
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


# --- report -------------------------------------------------------------------------------------------


def repeat_ratios(runs: dict[str, list[Pair]]) -> dict[str, list[float]]:
    """Each reported ratio, once per repeat; a speed option's against genlab without it, both
    measured by their plain-loop yardstick."""
    ratios = {
        "genlab/plain": [pair.speed_ratio() for pair in runs["genlab"]],
        "plain/DataLoader": [pair.speed_ratio() for pair in runs["plain/DataLoader"]],
    }
    for run in runs:
        if run.startswith("genlab+"):
            ratios[run.partition("+")[2]] = [
                with_option.speed_ratio() / without.speed_ratio() for with_option, without in zip(runs[run], runs["genlab"])
            ]
    return ratios


def extra_step_milliseconds(pairs: list[Pair]) -> list[float]:
    """How much longer a genlab step took than the plain one beside it, per repeat."""
    return [1000 * (pair.first_seconds - pair.second_seconds) / pair.batches for pair in pairs]


def spread(values: list[float], digits: int = 2) -> str:
    """The median, and the range when there are several values: `1.02 (0.97-1.06)`."""
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def print_report(
    results: dict[str, dict[str, list[Pair]]], startup: dict[str, float], args: argparse.Namespace, device: torch.device
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
    options = [run.partition("+")[2] for run in next(iter(results.values())) if run.startswith("genlab+")]
    if options:
        print(f"\nspeed options: genlab with the option / genlab without it; [its warm-up of {args.warmup} batches, first repeat]")
        header = f"{'model':<9}" + "".join(f"{name:>28}" for name in options) + f"{'without':>12}"
        print(header)
        print("-" * len(header))
        for model, runs in results.items():
            ratios = repeat_ratios(runs)
            cells = [f"{spread(ratios[name])} [{runs[f'genlab+{name}'][0].warmup_seconds:.1f} s]" for name in options]
            without = f"[{runs['genlab'][0].warmup_seconds:.1f} s]"
            print(f"{model:<9}" + "".join(f"{cell:>28}" for cell in cells) + f"{without:>12}")
    if startup:
        print(f"\nstart-up (best of {args.repeats})")
        for name, seconds in startup.items():
            print(f"  {name:<45}{seconds:7.2f} s")


def save_json(
    path: Path, results: dict[str, dict[str, list[Pair]]], startup: dict[str, float], args: argparse.Namespace,
    device: torch.device,
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
    }
    path.write_text(json.dumps(report, indent=2))


def main() -> int:
    args = parse_args()
    device = resolve_device(args.device)
    # Lightning's notes (accelerators, small epochs, unmonitored checkpoints) would bury the table
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    results = measure_throughput(args, device, speed_options(args.options, device))
    startup = {} if args.no_startup else measure_startup(device, args.repeats)
    print_report(results, startup, args, device)
    if args.json:
        save_json(args.json, results, startup, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
