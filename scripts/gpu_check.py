"""A GPU check in one call: is genlab right and fast on this machine's CUDA GPU? Writes a dated section of
docs/benchmarks.md and stops at the first wrong result.

Stages, each within its share of `--budget-minutes` (8 by default; what a stage leaves unspent goes to the next):

  agreement   one training step of dcgan (+R1), wgan_gp (layer and batch norm), ddpm and flow, built alike from one
              seed, on the CPU and on CUDA in float32 with TF32 off: losses, penalties and gradient norms within
              TOLERANCE (every random draw is made on the CPU first, so both devices see the same numbers)
  short runs  a few batches of every family under bf16-mixed, 16-mixed and channels-last, and the known GPU defect
              classes: ADA's augmentations on the device, R1 and WGAN-GP's penalty on a batch-norm critic under each
              precision. Each must log finite losses, keep float32 weights and every tensor on the device, and
              sample images of the right shape, finite and in [-1, 1]
  throughput  genlab against the plain loop per family, and each speed option's ratio (scripts/benchmark.py)
  sampling    images/s per sampler and step count (scripts/benchmark.py), each sampler's images checked
  ddp         `genlab train trainer=ddp trainer.devices=1` against the same run on one device: the same losses
  cifar       `genlab train` of dcgan and ddpm on data=cifar10 (the real files if they are in the data folder,
              else synthetic ones of the real shape and format): images/s, finite losses
  fid         `genlab eval extractor=inception n_samples=10000` of the CIFAR dcgan run: the time, a finite FID
  compile     speed.compile: the warm-up, the speed against eager, and no graph compiled after the warm-up
              (torch._dynamo's counters, read after every batch: a recompilation per step shows there)

Without CUDA (or with --cpu) every stage that can runs at toy sizes, and the others are named as skipped, with why:
that is how tests/test_gpu_check.py runs it. The section is rewritten after every finding, so a run cut short
still leaves its figures; a failed check exits 1 with the stage, the model and the numbers in one line.

    scripts/gpu_check.sh                       # or: make gpu-check
    scripts/gpu_check.sh --budget-minutes 6 --out /tmp/gpu.md
    scripts/gpu_check.sh --cpu --out /tmp/cpu.md --stages short_runs sampling
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import itertools
import json
import logging
import math
import os
import pickle
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from bench.measure import Pair, extra_step_milliseconds, repeat_ratios, spread
from bench.plain_loop import device_batches, optimizers_of, plain_stepper
from benchmark import (OPTIONS, SAMPLERS, TRICK_OPTIONS, compose_train, genlab_against_plain, genlab_executable,
                       load_training_images, measure_sampling, measure_throughput)
from genlab.builder import build_datamodule, build_family, build_module, build_trainer
from genlab.data.datamodule import to_signed_unit
from genlab.families.gan import GAN
from gpu_check_report import CheckFailed, Report, Stage, Table

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@dataclass(frozen=True)
class Tolerance:
    """|a - b| <= atol + rtol |a|, a the CPU's (or the single device's) value."""

    rtol: float
    atol: float

    def allows(self, reference: float, value: float) -> bool:
        return abs(reference - value) <= self.atol + self.rtol * abs(reference)

    def __str__(self) -> str:
        return f"|a - b| <= {self.atol:g} + {self.rtol:g} |a|"


# float32 on both sides, TF32 off: the kernels differ in summation order only (about 1e-6 relative)
TOLERANCE = Tolerance(rtol=1e-3, atol=1e-5)
# a stage given less than this is skipped: starting it would only leave a half-measured row
MIN_STAGE_SECONDS = 5.0
# a stage's note when it left items out to keep to its budget
OUT_OF_TIME = "the rest: out of the stage's time"
# how long past its budget a stage may run before it is interrupted (a row in progress is let finish)
GRACE_SECONDS = 20.0


@dataclass(frozen=True)
class Sizes:
    """How much each stage does: a GPU's share of 8 minutes, or the CPU mode's toy sizes."""

    batch_size: int  # the in-process runs' (mnist_mini, 1x28x28)
    short_batches: int  # batches of each short run (at least n_critic + 1: a generator step)
    throughput_models: tuple[str, ...]
    throughput_options: tuple[str, ...]
    warmup: int
    batches: int
    repeats: int
    compile_models: tuple[str, ...]
    compile_warmup: int  # batches before no new graph may appear: 2 n_critic + 2 covers WGAN-GP's generator turns
    sampling_models: tuple[str, ...]
    sample_images: int
    ddp_batches: int
    cifar_batches: int
    cifar_per_file: int  # synthetic CIFAR-10: images in each of its six files (the real: 10,000)
    fid_samples: int
    fid_overrides: tuple[str, ...]  # genlab eval's extractor (and, in CPU mode, a small domain classifier)
    tiny: bool  # the networks at a few channels


GPU = Sizes(
    batch_size=64, short_batches=10, throughput_models=("dcgan", "wgan_gp", "vae", "ddpm", "flow"),
    throughput_options=("bf16-mixed", "16-mixed", "channels_last"), warmup=5, batches=40, repeats=2,
    compile_models=("dcgan", "ddpm", "wgan_gp"), compile_warmup=12,
    sampling_models=("dcgan", "vae", "ddpm", "flow", "meanflow", "ict"), sample_images=500,
    ddp_batches=10, cifar_batches=300, cifar_per_file=10_000, fid_samples=10_000,
    fid_overrides=("extractor=inception",), tiny=False,
)
CPU = Sizes(
    batch_size=8, short_batches=2, throughput_models=("dcgan",), throughput_options=(), warmup=1, batches=2,
    repeats=1, compile_models=("dcgan",), compile_warmup=3, sampling_models=("dcgan", "ddpm"), sample_images=1,
    ddp_batches=2, cifar_batches=2, cifar_per_file=40, fid_samples=32,
    fid_overrides=("extractor=classifier", "classifier.epochs=1", "classifier.base_channels=8",
                   "classifier.feature_dim=32"),
    tiny=True,
)

# CPU mode: the networks at a few channels, the sampler at a few steps
TINY = {
    "gan": ("model.latent_dim=8", "model.net.generator.base_channels=8", "model.net.discriminator.base_channels=8"),
    "vae": ("model.net.encoder.base_channels=8", "model.net.decoder.base_channels=8"),
    "denoising": ("model.net.denoiser.width=8", "model.sampler.steps=2"),
}
KIND = {"dcgan": "gan", "wgan_gp": "gan", "vae": "vae", "ddpm": "denoising", "flow": "denoising"}

# a variant: a model option and the overrides that make it; beside the plain families, the known GPU defect classes
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{model: (model, ()) for model in KIND},
    # ADA's augmentations run on the device; p starts at 0.5 so that they run from the first batch
    "dcgan+ada": ("dcgan", (*TRICK_OPTIONS["ada"], "model.augment.probability=0.5")),
    # R1 differentiates a batch-norm critic twice
    "dcgan+r1": ("dcgan", TRICK_OPTIONS["r1"]),
    # WGAN-GP's penalty on a batch-norm critic (the paper's has layer norm)
    "wgan_gp+bn": ("wgan_gp", ("model.net.discriminator.norm=batch",)),
}
PRECISIONS = {"32-true": (), "bf16-mixed": OPTIONS["bf16-mixed"], "16-mixed": OPTIONS["16-mixed"],
              "channels_last": OPTIONS["channels_last"]}
# (variant, option) of the short runs, the defect classes first
SHORT_RUNS = (
    ("dcgan+ada", "32-true"), ("dcgan+ada", "16-mixed"), ("dcgan+r1", "32-true"), ("dcgan+r1", "bf16-mixed"),
    ("dcgan+r1", "16-mixed"), ("wgan_gp+bn", "32-true"), ("wgan_gp+bn", "bf16-mixed"), ("wgan_gp+bn", "16-mixed"),
    *((variant, option) for option in ("bf16-mixed", "16-mixed") for variant in ("dcgan", "wgan_gp", "vae", "ddpm", "flow")),
    *((variant, "channels_last") for variant in ("dcgan", "vae", "ddpm")),
)
AGREEMENT_VARIANTS = ("dcgan+r1", "wgan_gp", "wgan_gp+bn", "ddpm", "flow")


class StageSkipped(Exception):
    """A stage that has nothing to work on (the FID stage without the cifar stage's run), with why."""


class StageTimeout(BaseException):
    """A stage ran past its budget and grace. A BaseException, so that no `except Exception` on the way swallows it."""


@dataclass
class Check:
    """What every stage reads: the device, this mode's sizes, the report, a scratch folder, the stage's deadline."""

    device: torch.device
    sizes: Sizes
    report: Report
    scratch: Path
    data_dir: Path
    deadline: float = 0.0  # the running stage's, on time.monotonic()
    runs: dict[str, Path] = field(default_factory=dict)  # `genlab train` run folders by name
    cifar_root: Path | None = None  # where the cifar stage read CIFAR-10 from: genlab eval reads its test split there

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def tiny(self, model: str) -> tuple[str, ...]:
        return TINY[KIND[model]] if self.sizes.tiny and model in KIND else ()


def while_time_left(check: Check, items: Sequence[T], seconds: float) -> Iterator[T]:
    """The items in turn, while the stage has `seconds` left to start the next one."""
    for item in items:
        if check.left() < seconds:
            return
        yield item


def how_many(done: int, total: int, what: str) -> str:
    return f"{done} of {total} {what}" + (f" ({OUT_OF_TIME})" if done < total else "")


def say(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- what a right result is ------------------------------------------------------------------------


def require_finite(stage: str, subject: str, values: Mapping[str, float]) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise CheckFailed(stage, subject, f"{name} = {value} is not finite")


def require_images(stage: str, subject: str, images: Tensor, n: int, shape: Sequence[int], device: torch.device) -> None:
    """n images of `shape`, on `device`, finite, in [-1, 1] (a thousandth of slack for rounding)."""
    expected = (n, *shape)
    if tuple(images.shape) != expected:
        raise CheckFailed(stage, subject, f"samples of shape {tuple(images.shape)}, expected {expected}")
    if images.device.type != device.type:
        raise CheckFailed(stage, subject, f"samples on {images.device}, expected {device.type}")
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise CheckFailed(stage, subject, f"{bad} of {images.numel()} sample values are not finite")
    low, high = float(images.min()), float(images.max())
    if low < -1.001 or high > 1.001:
        raise CheckFailed(stage, subject, f"samples range over [{low:.4g}, {high:.4g}], outside [-1, 1]")


def require_on_device(stage: str, subject: str, module: nn.Module, device: torch.device) -> None:
    """Every parameter and buffer where the run trained: a tensor left behind is a silent copy per step, or a crash."""
    for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
        if tensor.device.type != device.type:
            raise CheckFailed(stage, subject, f"{name} is on {tensor.device}, the run on {device.type}")


def require_float32_weights(stage: str, subject: str, module: nn.Module) -> None:
    """Mixed precision computes in 16 bits and keeps the weights in 32."""
    for name, parameter in module.named_parameters():
        if parameter.dtype != torch.float32:
            raise CheckFailed(stage, subject, f"weight {name} is {parameter.dtype}, expected torch.float32")


def require_agreement(stage: str, subject: str, reference: Mapping[str, float], other: Mapping[str, float],
                      tolerance: Tolerance, names: tuple[str, str]) -> tuple[str, float]:
    """Each term of `other` within `tolerance` of `reference`'s; returns the term that differs most, and by how much."""
    require_finite(stage, f"{subject} on {names[0]}", reference)
    require_finite(stage, f"{subject} on {names[1]}", other)
    if set(reference) != set(other):
        raise CheckFailed(stage, subject, f"{names[0]} computed {sorted(reference)}, {names[1]} {sorted(other)}")
    for term, value in reference.items():
        if not tolerance.allows(value, other[term]):
            raise CheckFailed(stage, subject, f"{term} is {value:.6g} on {names[0]} and {other[term]:.6g} on {names[1]}"
                                              f" (difference {abs(value - other[term]):.3g}; tolerance {tolerance})")
    return max(((term, abs(value - other[term])) for term, value in reference.items()), key=lambda item: item[1])


# --- in-process runs ---------------------------------------------------------------------------------


def composed(check: Check, variant: str, extra: tuple[str, ...] = (), total_batches: int = 1) -> DictConfig:
    """configs/train.yaml for a variant on mnist_mini, as scripts/benchmark.py composes it (validation off)."""
    model, overrides = VARIANTS[variant]
    return compose_train(model, check.sizes.batch_size, check.device, total_batches, check.scratch / "compose",
                         (*overrides, *check.tiny(model), *extra))


class LossRecorder(pl.Callback):
    """The losses a run logs, after every batch (trainer.log_every_n_steps=1)."""

    def __init__(self) -> None:
        self.losses: dict[str, float] = {}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.losses.update({name: float(value) for name, value in trainer.callback_metrics.items()
                            if name.startswith("train/") and name.endswith("loss")})


def short_fit(check: Check, variant: str, option: str, batches: int) -> tuple[nn.Module, dict[str, float]]:
    """`batches` batches of genlab's own loop under an option: the module and its last logged losses."""
    cfg = composed(check, variant, (*PRECISIONS[option], f"trainer.limit_train_batches={batches}",
                                    "trainer.log_every_n_steps=1", "+trainer.enable_model_summary=false",
                                    "+trainer.enable_checkpointing=false", "~logger"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, module, recorder = build_datamodule(cfg), build_module(cfg), LossRecorder()
    trainer = build_trainer(cfg, callbacks=[recorder])
    datamodule.setup("fit")
    trainer.fit(module, datamodule=datamodule)
    return module, recorder.losses


def losses_text(losses: Mapping[str, float]) -> str:
    return ", ".join(f"{name.removeprefix('train/')} {value:.4g}" for name, value in sorted(losses.items()))


# --- stage: CPU against CUDA -------------------------------------------------------------------------


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off for cuBLAS and cuDNN (the legacy switches only: torch refuses a mix of its two APIs)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def step_with_norm(optimizer: torch.optim.Optimizer, loss: Tensor, parameters: list[nn.Parameter], clip: float | None) -> float:
    """Backward, clip as genlab does (optimizer.clip_grad_norm), step; the gradient's norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, clip or math.inf)
    optimizer.step()
    return float(norm)


def adversarial_terms(gan: GAN, optimizers: list[torch.optim.Optimizer], clip: float | None, real: Tensor,
                      labels: Tensor | None) -> dict[str, float]:
    """A critic step then a generator step on noise drawn on the CPU: the critic's loss, each penalty at fixed
    interpolates (real and fake given alike, so WGAN-GP's own random mix is that point), both gradients' norms, and
    both losses after the steps."""
    opt_g, opt_d = optimizers
    noise = gan.sample_noise(len(real), torch.Generator().manual_seed(0))
    eps = torch.rand(len(real), 1, 1, 1, generator=torch.Generator().manual_seed(1)).to(real.device)
    fake = gan.generator(noise, labels)
    mix = eps * real + (1 - eps) * fake.detach()
    d_loss, _ = gan.critic_loss(real, fake, labels, regularize=False)
    terms = {"d_loss": d_loss}
    for name, regularizer in gan.regularizers.items():
        term = regularizer.critic_term(gan, mix, mix, labels, 1)
        if term is not None:
            terms[name] = term.loss
    d_norm = step_with_norm(opt_d, sum(terms.values()), list(gan.parameters_of("discriminator")), clip)
    gan.after_critic_step()
    gan.discriminator.requires_grad_(False)
    g_loss, _ = gan.generator_loss(real, fake, labels)
    g_norm = step_with_norm(opt_g, g_loss, list(gan.parameters_of("generator")), clip)
    gan.discriminator.requires_grad_(True)
    with torch.no_grad():
        fake_after = gan.generator(noise, labels)
        d_after, _ = gan.critic_loss(real, fake_after, labels, regularize=False)
        g_after, _ = gan.generator_loss(real, fake_after, labels)
    return {**{name: float(value.detach()) for name, value in terms.items()}, "g_loss": float(g_loss.detach()), "d_grad_norm": d_norm,
            "g_grad_norm": g_norm, "d_loss_after": float(d_after), "g_loss_after": float(g_after)}


def denoising_terms(family: nn.Module, optimizer: torch.optim.Optimizer, clip: float | None, images: Tensor,
                    labels: Tensor | None) -> dict[str, float]:
    """The denoising loss with its noise and times drawn from a seeded CPU generator, the gradient's norm, one
    step, and the same loss after it."""
    def loss() -> Tensor:
        return family.objective(images, labels, torch.Generator().manual_seed(0))

    before = loss()
    norm = step_with_norm(optimizer, before, list(family.parameters_of("generator")), clip)
    with torch.no_grad():
        after = loss()
    return {"loss": float(before.detach()), "grad_norm": norm, "loss_after": float(after)}


def step_terms(family: nn.Module, cfg: DictConfig, images: Tensor, labels: Tensor, device: torch.device) -> dict[str, float]:
    """One training step of a copy of `family` on `device` (the same weights, batch and draws everywhere)."""
    family = copy.deepcopy(family).to(device).train()
    optimizers, clip = optimizers_of(family, cfg)
    images, labels = images.to(device), family.labels_of(labels.to(device))
    if isinstance(family, GAN):
        return adversarial_terms(family, optimizers, clip, images, labels)
    return denoising_terms(family, optimizers[0], clip, images, labels)


def agreement_row(check: Check, variant: str, reference_device: torch.device) -> dict[str, object]:
    """One variant's step on `reference_device` and on the check's device, compared term by term."""
    cfg = composed(check, variant)
    data = load_training_images(cfg)
    images, labels = to_signed_unit(data.images[:16]), data.labels[:16]
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    family = build_family(cfg)
    with full_float32():
        reference = step_terms(family, cfg, images, labels, reference_device)
        other = step_terms(family, cfg, images, labels, check.device)
    term, difference = require_agreement("agreement", variant, reference, other, TOLERANCE,
                                         (reference_device.type, check.device.type))
    main = "d_loss" if "d_loss" in reference else "loss"
    return {"model": variant, "terms": ", ".join(reference), main: f"{reference[main]:.6g}",
            "largest difference": f"{term}: {difference:.2g} ({difference / max(abs(reference[term]), 1e-12):.1e} relative)"}


def stage_agreement(check: Check) -> str:
    done = 0
    for variant in while_time_left(check, AGREEMENT_VARIANTS, 2):
        check.report.add_row("agreement", agreement_row(check, variant, torch.device("cpu")))
        done += 1
    return how_many(done, len(AGREEMENT_VARIANTS), "models") + f"; tolerance {TOLERANCE}"


# --- stage: short runs under each option ---------------------------------------------------------------


def short_run_row(check: Check, variant: str, option: str) -> dict[str, object]:
    subject = f"{variant} under {option}"
    cfg = composed(check, variant)
    wanted = max(check.sizes.short_batches, int(cfg.model.get("n_critic", 1)) + 1)  # a generator step at least
    started = time.perf_counter()
    module, losses = short_fit(check, variant, option, wanted)
    seconds = time.perf_counter() - started
    batches = module.progress.batches
    if batches != wanted:
        raise CheckFailed("short runs", subject, f"trained {batches} of {wanted} batches")
    expected = {"train/d_loss", "train/g_loss"} if isinstance(module.family, GAN) else {"train/loss"}
    if not expected <= set(losses):
        raise CheckFailed("short runs", subject, f"logged {sorted(losses)}, expected {sorted(expected)}")
    require_finite("short runs", subject, losses)
    require_on_device("short runs", subject, module, check.device)
    require_float32_weights("short runs", subject, module)
    images = module.sample(8, generator=torch.Generator().manual_seed(0))
    require_images("short runs", subject, images, 8, tuple(cfg.data.image_shape), check.device)
    augment = getattr(module.family, "augment", None)
    notes = f"ADA p {augment.p:.3f}" if augment is not None else ""
    return {"model": variant, "option": option, "batches": batches, "losses at the end": losses_text(losses),
            "samples": "x".join(map(str, images.shape)), "seconds": f"{seconds:.1f}", "note": notes}


def stage_short_runs(check: Check) -> str:
    runs = [(v, o) for v, o in SHORT_RUNS if check.cuda or o != "16-mixed"]
    done = 0
    for variant, option in while_time_left(check, runs, 3):
        say(f"  short run: {variant} under {option}")
        check.report.add_row("short_runs", short_run_row(check, variant, option))
        done += 1
    note = how_many(done, len(runs), "runs")
    if not check.cuda:
        note += "; 16-mixed skipped: it needs CUDA (Lightning maps it to bf16-mixed on a CPU)"
    return note


# --- stage: throughput against the plain loop ---------------------------------------------------------


def bench_args(check: Check, models: Sequence[str], **changes: object) -> argparse.Namespace:
    """The arguments scripts/benchmark.py's functions read, at this mode's sizes."""
    s = check.sizes
    settings = dict(models=list(models), batch_size=s.batch_size, warmup=s.warmup, batches=s.batches,
                    repeats=s.repeats, workers=0, sample_images=s.sample_images, runs=[])
    return argparse.Namespace(**{**settings, **changes})


def throughput_row(model: str, runs: dict[str, list[Pair]], args: argparse.Namespace, options: Sequence[str]) -> dict[str, object]:
    ratios = repeat_ratios(runs)
    require_finite("throughput", model, {f"{name} (repeat {i + 1})": value for name, values in ratios.items()
                                         for i, value in enumerate(values)})
    images = args.batches * args.batch_size
    row: dict[str, object] = {
        "model": model,
        "genlab images/s": f"{max(images / p.first_seconds for p in runs['genlab']):,.0f}",
        "plain images/s": f"{max(images / p.second_seconds for p in runs['genlab']):,.0f}",
        "genlab / plain": spread(ratios["genlab/plain"]),
        "genlab's extra ms per step": spread(extra_step_milliseconds(runs["genlab"]), 1),
        "plain / DataLoader": spread(ratios["plain/DataLoader"]),
    }
    row.update({option: spread(ratios[option]) for option in options})
    return row


def stage_throughput(check: Check) -> str:
    options = list(check.sizes.throughput_options)
    check.report.tables["throughput"].columns += options
    done = 0
    for model in while_time_left(check, check.sizes.throughput_models, 10):
        args = bench_args(check, [model])
        runs = measure_throughput(args, check.device, options)[model]
        check.report.add_row("throughput", throughput_row(model, runs, args, options))
        done += 1
    note = how_many(done, len(check.sizes.throughput_models), "models")
    return note + ("" if check.cuda else "; CPU mode: no speed options (their results are the short runs')")


# --- stage: sampling ----------------------------------------------------------------------------------


def sampler_options(method: str | None, steps: int) -> dict[str, object]:
    """The sample() options of a SAMPLERS entry, as scripts/benchmark.py's measure_sampling calls them."""
    return {"steps": steps} if method == "steps" else {"method": method, "steps": steps} if method else {}


def check_samplers(check: Check, model: str) -> None:
    """Each timed sampler's images: 4 of the data's shape, on the device, finite, in [-1, 1]."""
    cfg = compose_train(model, check.sizes.batch_size, check.device, 1, check.scratch / "compose")
    module = build_module(cfg).to(check.device)
    for method, steps in SAMPLERS.get(model, ((None, 1),)):
        images = module.sample(4, generator=torch.Generator().manual_seed(0), **sampler_options(method, steps))
        require_images("sampling", f"{model} {method or 'one pass'} {steps} steps", images, 4,
                       tuple(cfg.data.image_shape), check.device)


def stage_sampling(check: Check) -> str:
    done = 0
    for model in while_time_left(check, check.sizes.sampling_models, 3):
        check_samplers(check, model)
        for row in measure_sampling(bench_args(check, [model]), check.device)[model]:
            check.report.add_row("sampling", {
                "model": model, "sampler": row["method"], "steps": row["steps"], "NFE": row["evaluations"],
                "images/s": f"{row['images_per_second']:,.1f}", "s per 1,000 images": f"{row['seconds_per_1000_images']:.2f}",
            })
        done += 1
    return how_many(done, len(check.sizes.sampling_models), "models") + f", {check.sizes.sample_images} images a call"


# --- the command line's road: genlab train and genlab eval in processes of their own -------------------


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_genlab(check: Check, stage: str, name: str, arguments: Sequence[str]) -> Path:
    """`genlab <arguments>` as a user runs it, its output in <scratch>/<name>.log; returns its run folder. scripts/ is
    on its path, for the callbacks a run may be given from here (Reseeded)."""
    folder, log = check.scratch / name, check.scratch / f"{name}.log"
    command = [genlab_executable(), *arguments, f"hydra.run.dir={folder}", f"paths.cache_dir={check.scratch / 'cache'}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "scripts"), os.environ.get("PYTHONPATH")]))}
    if check.cuda:
        torch.cuda.empty_cache()  # the child process has the GPU to itself, less what this one keeps
    say(f"  {shlex.join(['genlab', *arguments])}")
    with open(log, "w") as out:
        try:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                    timeout=max(check.left() + GRACE_SECONDS, 1))
        except subprocess.TimeoutExpired:
            raise StageTimeout() from None
    if result.returncode != 0:
        raise CheckFailed(stage, name, f"genlab {arguments[0]} exited with {result.returncode}: {last_line(log)}"
                                       f" (whole log: {log})")
    check.runs[name] = folder
    return folder


def trainer_overrides(check: Check, ddp: bool) -> tuple[str, ...]:
    if ddp:
        return ("trainer=ddp" if check.cuda else "trainer=ddp_cpu", "trainer.devices=1")
    return ("trainer=gpu" if check.cuda else "trainer=cpu",)


def logged_column(run: Path, name: str) -> list[float]:
    """A metric's values in a run's CSV log (logger=csv), in the order logged."""
    with open(run / "csv" / "metrics.csv") as handle:
        return [float(row[name]) for row in csv.DictReader(handle) if row.get(name)]


def short_cli_run(check: Check, stage: str, name: str, model: str, batches: int, extra: Sequence[str]) -> Path:
    """`genlab train` of `batches` batches, validation off, a CSV log."""
    return run_genlab(check, stage, name, [
        "train", f"model={model}", "data.val_size=0", "trainer.limit_val_batches=0", "trainer.max_epochs=1",
        f"trainer.limit_train_batches={batches}", "trainer.enable_progress_bar=false", "~callbacks.progress_bar",
        "logger=csv", *check.tiny(model), *extra,
    ])


class Reseeded(pl.Callback):
    """Seeds torch's generators again with the run's seed as the fit sets up. Lightning's DDP does so there (its
    `reset_seed` as the processes start) and a one-device fit does not: given to both runs, it makes them draw the same
    noise, so that what differs in their losses is the strategy's doing."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from lightning_fabric.utilities.seed import reset_seed

        reset_seed()


def ddp_row(name: str, single: Path, ddp: Path) -> dict[str, object]:
    """One logged loss of the two runs, step by step within TOLERANCE."""
    alone, parallel = logged_column(single, name), logged_column(ddp, name)
    if len(alone) != len(parallel) or not alone:
        raise CheckFailed("ddp", "dcgan", f"{name}: {len(alone)} values logged on one device, {len(parallel)} under DDP")
    for step, (a, b) in enumerate(zip(alone, parallel)):
        require_agreement("ddp", f"dcgan at logged step {step + 1}", {name: a}, {name: b}, TOLERANCE,
                          ("one device", "DDP"))
    return {"metric": name, "steps": len(alone), "one device, last": f"{alone[-1]:.6g}",
            "DDP on 1 device, last": f"{parallel[-1]:.6g}",
            "largest difference": f"{max(abs(a - b) for a, b in zip(alone, parallel)):.2g}"}


def stage_ddp(check: Check) -> str:
    extra = ("trainer.log_every_n_steps=1", "+callbacks.reseed._target_=gpu_check.Reseeded")
    single = short_cli_run(check, "ddp", "ddp_single", "dcgan", check.sizes.ddp_batches,
                           (*trainer_overrides(check, False), *extra))
    ddp = short_cli_run(check, "ddp", "ddp_one_device", "dcgan", check.sizes.ddp_batches,
                        (*trainer_overrides(check, True), *extra))
    for name in ("train/d_loss", "train/g_loss"):
        check.report.add_row("ddp", ddp_row(name, single, ddp))
    return f"dcgan, {check.sizes.ddp_batches} batches; {' '.join(trainer_overrides(check, True))}; tolerance {TOLERANCE}"


# --- stage: CIFAR-10-shaped training -----------------------------------------------------------------

CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR_MODELS = ("dcgan", "ddpm")


def write_synthetic_cifar10(root: Path, per_file: int) -> None:
    """CIFAR-10's python version with random pixels and labels: pickled dicts of b'data' (N x 3072 uint8,
    channel-major) and labels, as the real files (and tests/conftest.py's make_cifar10)."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_FILES:
        batch = {"batch_label": name, "data": rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, size=per_file).tolist(), "filenames": []}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def cifar10_root(check: Check) -> tuple[Path, str]:
    """The data folder with the real CIFAR-10, or a scratch one with synthetic files of its shape; and which."""
    if all((check.data_dir / "cifar-10-batches-py" / name).is_file() for name in CIFAR_FILES):
        return check.data_dir, f"real CIFAR-10 ({check.data_dir})"
    root = check.scratch / "cifar10"
    write_synthetic_cifar10(root, check.sizes.cifar_per_file)
    return root, f"synthetic: random pixels in CIFAR-10's shape and file format, {check.sizes.cifar_per_file:,} images a file"


def cifar_row(check: Check, model: str, root: Path, batch_size: int) -> dict[str, object]:
    """A short `genlab train data=cifar10` of `model`: completed, finite losses, a checkpoint; its images/s."""
    run = short_cli_run(check, "cifar", f"cifar_{model}", model, check.sizes.cifar_batches, (
        *trainer_overrides(check, False), "data=cifar10", f"paths.data_dir={root}", f"data.batch_size={batch_size}",
        f"trainer.log_every_n_steps={min(10, check.sizes.cifar_batches)}"))  # a loss logged however short the run
    summary = json.loads((run / "summary.json").read_text())
    if summary["status"] != "completed":
        raise CheckFailed("cifar", model, f"the run ended {summary['status']}: {summary.get('error')}")
    losses = {name: value for name, value in summary["metrics"].items() if name.endswith("loss")}
    if not losses:
        raise CheckFailed("cifar", model, f"no loss in summary.json's metrics: {sorted(summary['metrics'])}")
    require_finite("cifar", model, losses)
    if not (run / "checkpoints" / "last.ckpt").is_file():
        raise CheckFailed("cifar", model, f"no checkpoints/last.ckpt in {run}")
    return {"model": model, "batches": check.sizes.cifar_batches, "batch size": batch_size,
            "images/s": f"{summary['images_seen'] / summary['seconds']:,.0f}", "fit seconds": summary["seconds"],
            "losses at the end": losses_text(losses)}


def stage_cifar(check: Check) -> str:
    root, data = cifar10_root(check)
    check.cifar_root = root
    batch_size = 128 if check.cuda else check.sizes.batch_size  # the CIFAR experiments' batch
    done = 0
    for model in while_time_left(check, CIFAR_MODELS, 5):
        check.report.add_row("cifar", cifar_row(check, model, root, batch_size))
        done += 1
    return how_many(done, len(CIFAR_MODELS), "models") + f"; data: {data}"


# --- stage: FID ------------------------------------------------------------------------------------------


def stage_fid(check: Check) -> str:
    checkpoint = check.runs.get("cifar_dcgan", Path("missing")) / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise StageSkipped("it judges the cifar stage's dcgan run, and there is none")
    started = time.perf_counter()
    folder = run_genlab(check, "fid", "fid_dcgan", [
        "eval", f"ckpt_path={checkpoint}", f"n_samples={check.sizes.fid_samples}", "progress=false",
        f"device={check.device.type}", f"paths.data_dir={check.cifar_root}", *check.sizes.fid_overrides,
    ])
    seconds = time.perf_counter() - started
    results = json.loads((folder / "metrics.json").read_text())
    metrics, protocol = results["metrics"], results["protocol"]
    require_finite("fid", "dcgan", {name: metrics[name] for name in ("fid", "kid", "precision", "recall")})
    check.report.add_row("fid", {
        "model": "dcgan (the cifar stage's run)", "extractor": protocol["extractor"],
        "generated vs real": f"{protocol['n_generated']:,} vs {protocol['n_real']:,}", "FID": f"{metrics['fid']:.4g}",
        "KID": f"{metrics['kid']:.3g}", "sampling s per 1,000": protocol["sampling_seconds_per_1000"],
        "genlab eval seconds": f"{seconds:.0f}",
    })
    return "" if check.cuda else "CPU mode: the domain classifier's features, not Inception's (about 5 images/s on a CPU)"


# --- stage: compile ----------------------------------------------------------------------------------


def compiled_so_far() -> tuple[int, int]:
    """(graphs compiled, frames converted) by torch._dynamo in this process so far."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"], counters["frames"]["total"]


def graph_breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


class Counted:
    """The plain-loop step genlab's batches are timed against, noting dynamo's counts after each genlab batch."""

    def __init__(self, step: Callable[[], None]) -> None:
        self.step, self.seen = step, []

    def __call__(self) -> None:
        self.step()
        self.seen.append(compiled_so_far())


def require_no_new_graphs(model: str, seen: Sequence[tuple[int, int]], warmup: int) -> tuple[tuple[int, int], ...]:
    """Dynamo's (graphs, frames) after the warm-up batches and at the end, which must be equal: a graph compiled
    later means that some step recompiles (a guard that fails every few steps), and compiling would never pay."""
    warm, end = seen[warmup - 1], seen[-1]
    if end != warm:
        raise CheckFailed("compile", model, f"{end[0] - warm[0]} graphs ({end[1] - warm[1]} frames) compiled after the"
                                            f" {warmup} warm-up batches, in {len(seen) - warmup} more: a recompilation"
                                            " every few steps")
    return warm, end


def compile_row(check: Check, model: str) -> dict[str, object]:
    """genlab with speed.compile against genlab without it, each timed against the plain loop (as benchmark.py's
    options); after the warm-up batches, no batch may compile a new graph."""
    import torch._dynamo

    tiny = check.tiny(model)
    backend = () if check.cuda else ("speed.compile_options={backend:eager}",)
    args = bench_args(check, [model], warmup=check.sizes.compile_warmup, repeats=1)
    cfg = compose_train(model, args.batch_size, check.device, 1, check.scratch / "compose", tiny)
    plain = plain_stepper(cfg, device_batches(load_training_images(cfg).to(check.device), args.batch_size), check.device)
    eager = genlab_against_plain(model, args, check.device, plain, tiny)
    torch._dynamo.reset()  # each model compiles afresh, within dynamo's limit of recompilations per function
    counted, breaks, start = Counted(plain), graph_breaks(), compiled_so_far()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        compiled = genlab_against_plain(model, args, check.device, counted, (*tiny, *OPTIONS["compile"], *backend))
    # mnist_mini's epoch (70 batches of 64) is longer than the run: no epoch's end (sample grid, eval mode) in it
    warm, end = require_no_new_graphs(model, counted.seen, args.warmup)
    ratio = compiled.speed_ratio() / eager.speed_ratio()
    require_finite("compile", model, {"compiled / eager": ratio})
    return {"model": model, "backend": "inductor" if check.cuda else "eager (CPU mode: dynamo's tracing only)",
            "compiled / eager": f"{ratio:.2f}", "warm-up seconds": f"{compiled.warmup_seconds:.1f}",
            "graphs after the warm-up": warm[0] - start[0], "graphs at the end": end[0] - start[0],
            "graph breaks": graph_breaks() - breaks, "batches timed": compiled.batches}


def stage_compile(check: Check) -> str:
    done = 0
    for model in while_time_left(check, check.sizes.compile_models, 15):
        say(f"  compile: {model}")
        check.report.add_row("compile", compile_row(check, model))
        done += 1
    return how_many(done, len(check.sizes.compile_models), "models") + f"; {check.sizes.compile_warmup} warm-up batches"


# --- the stages, the report, the run -------------------------------------------------------------------


@dataclass(frozen=True)
class StageSpec:
    name: str
    title: str
    share: float  # of the budget, against the shares of the stages still to run
    run: Callable[[Check], str]
    needs_cuda: str = ""  # why it cannot run without CUDA


STAGES = (
    StageSpec("agreement", "CPU against CUDA, one training step", 0.06, stage_agreement,
              "it compares a training step on the CPU with the same step on CUDA"),
    StageSpec("short_runs", "bf16-mixed, 16-mixed, channels-last; ADA, R1 and GP on batch norm", 0.16, stage_short_runs),
    StageSpec("throughput", "genlab against the plain loop", 0.18, stage_throughput),
    StageSpec("sampling", "sampling speed per sampler", 0.07, stage_sampling),
    StageSpec("ddp", "trainer=ddp trainer.devices=1 against one device", 0.08, stage_ddp),
    StageSpec("cifar", "CIFAR-10-shaped training of dcgan and ddpm", 0.14, stage_cifar),
    StageSpec("fid", "FID of the CIFAR dcgan run", 0.13, stage_fid),
    StageSpec("compile", "speed.compile: warm-up, speed, recompilation", 0.15, stage_compile),
)


def tables(check_cuda: bool, fid_samples: int) -> dict[str, Table]:
    """The section's tables, empty until their stages add rows."""
    device = "CUDA" if check_cuda else "this device"
    return {
        "agreement": Table("CPU against CUDA: one training step", f"Float32 with TF32 off, the same weights, batch and"
                           f" random draws on both; every term within {TOLERANCE}.",
                           ["model", "terms", "d_loss", "loss", "largest difference"]),
        "short_runs": Table("Short runs under each option", f"genlab's own loop on mnist_mini for a few batches on"
                            f" {device}: finite losses, float32 weights, every tensor on the device, 8 samples of the"
                            " right shape in [-1, 1].",
                            ["model", "option", "batches", "losses at the end", "samples", "seconds", "note"]),
        "throughput": Table("genlab against the plain loop", "scripts/benchmark.py's interleaved ratios on mnist_mini:"
                            " the median of the repeats (their range); an option's column is genlab with it / without.",
                            ["model", "genlab images/s", "plain images/s", "genlab / plain",
                             "genlab's extra ms per step", "plain / DataLoader"]),
        "sampling": Table("Sampling speed per sampler", "Untrained networks (the speed does not depend on the weights),"
                          " the best of the calls; NFE: network evaluations per image.",
                          ["model", "sampler", "steps", "NFE", "images/s", "s per 1,000 images"]),
        "ddp": Table("trainer=ddp trainer.devices=1 against one device", f"dcgan, the same seed, re-seeded as the fit"
                     f" sets up (as Lightning's DDP does) so that both draw the same noise; every logged step within"
                     f" {TOLERANCE}.",
                     ["metric", "steps", "one device, last", "DDP on 1 device, last", "largest difference"]),
        "cifar": Table("CIFAR-10-shaped training", "`genlab train data=cifar10`, validation off; images/s over the"
                       " fit's wall time (its first batches, the epoch's checkpoint and sample grid included).",
                       ["model", "batches", "batch size", "images/s", "fit seconds", "losses at the end"]),
        "fid": Table(f"FID of {fid_samples:,} samples", "`genlab eval` of the CIFAR dcgan run's last.ckpt against the"
                     " test split.",
                     ["model", "extractor", "generated vs real", "FID", "KID", "sampling s per 1,000",
                      "genlab eval seconds"]),
        "compile": Table("speed.compile", "genlab with it / without it, each against the plain loop; graphs counted"
                         " by torch._dynamo after every batch: none may appear after the warm-up.",
                         ["model", "backend", "compiled / eager", "warm-up seconds", "graphs after the warm-up",
                          "graphs at the end", "graph breaks", "batches timed"]),
    }


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def facts(device: torch.device, budget_minutes: float) -> list[str]:
    """The machine and software the figures belong to."""
    import pytorch_lightning

    lines = []
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor};"
                     f" CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    else:
        lines.append("CPU mode: no CUDA device, so every stage that needs one is skipped and the rest run at toy sizes")
    lines.append(f"torch {torch.__version__}, Lightning {pytorch_lightning.__version__}, Python {platform.python_version()},"
                 f" CPU threads: {torch.get_num_threads()}; genlab {git_commit()}")
    lines.append(f"budget: {budget_minutes:g} minutes, shared among the stages; a stage over its share is stopped")
    return lines


def run_stage(check: Check, spec: StageSpec, budget: float, grace: float | None = None) -> bool:
    """Run one stage within `budget` seconds (interrupted `grace` seconds later) and record it; False when a check
    failed (the run stops there)."""
    check.deadline = time.monotonic() + budget
    started = time.monotonic()
    say(f"{spec.title}: up to {budget:.0f} s")
    try:
        with hard_stop(budget + (GRACE_SECONDS if grace is None else grace)):
            note = spec.run(check)
    except StageSkipped as skipped:
        check.report.set_stage(spec.name, "skipped", time.monotonic() - started, str(skipped))
        return True
    except StageTimeout:
        check.report.set_stage(spec.name, f"stopped at its budget of {budget:.0f} s", time.monotonic() - started,
                               "the rows above are what it measured")
        return True
    except CheckFailed as failed:
        fail(check, spec, time.monotonic() - started, str(failed))
        return False
    except Exception as error:  # a crash is a wrong result too: its traceback goes to stderr, one line to the report
        traceback.print_exc()
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(check, spec, time.monotonic() - started, f"{spec.name}: crashed: {type(error).__name__}: {first}")
        return False
    check.report.set_stage(spec.name, "passed", time.monotonic() - started, note)
    return True


def fail(check: Check, spec: StageSpec, seconds: float, message: str) -> None:
    check.report.outcome = f"FAILED at {spec.title}: {message}"
    check.report.set_stage(spec.name, "FAILED", seconds, message)


@contextlib.contextmanager
def hard_stop(seconds: float) -> Iterator[None]:
    """Raise StageTimeout in this (the main) thread after `seconds`."""
    def interrupt(signum: int, frame: object) -> None:
        raise StageTimeout()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_all(check: Check, stages: Sequence[StageSpec], deadline: float) -> bool:
    """Every stage in order, each with its share of the time left; False at the first failed check."""
    runnable = [spec for spec in stages if check.cuda or not spec.needs_cuda]
    for spec in stages:
        if spec not in runnable:
            check.report.set_stage(spec.name, "skipped", 0, f"needs CUDA: {spec.needs_cuda}")
            continue
        waiting = runnable[runnable.index(spec):]
        left = deadline - time.monotonic()
        budget = left * spec.share / sum(s.share for s in waiting)
        if budget < MIN_STAGE_SECONDS:
            check.report.set_stage(spec.name, "skipped", 0, "the check's budget was spent")
            continue
        # a stage may overrun into the later ones' time, and the last a few seconds past the whole budget
        if not run_stage(check, spec, budget, min(GRACE_SECONDS, left - budget + 5)):
            return False
    return True


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="CPU mode (the default without CUDA): toy sizes, CUDA stages skipped")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="the markdown file to write into")
    parser.add_argument("--budget-minutes", type=float, default=8.0, help="the whole check's time, shared among the stages")
    parser.add_argument("--stages", nargs="+", choices=[spec.name for spec in STAGES], help="only these stages")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("GENLAB_DATA_DIR", ROOT / "data")),
                        help="where a real CIFAR-10 may be (<dir>/cifar-10-batches-py); else synthetic files are made")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (runs, logs) after a passing check")
    args = parser.parse_args(argv)
    if args.budget_minutes <= 0:
        parser.error("--budget-minutes must be positive")
    return args


def choose_device(cpu: bool) -> torch.device:
    if cpu or not torch.cuda.is_available():
        if not cpu:
            print("gpu-check: NO CUDA DEVICE: running in CPU mode, toy sizes, the CUDA-only stages skipped", file=sys.stderr)
        return torch.device("cpu")
    return torch.device("cuda")


def quiet_lightning() -> None:
    """Lightning's notes (accelerators, small epochs, unmonitored checkpoints) would bury the progress lines."""
    warnings.filterwarnings("ignore", module=r"(pytorch_)?lightning")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def new_report(args: argparse.Namespace, device: torch.device, sizes: Sizes, argv: Sequence[str]) -> Report:
    """The section as the check starts: the command, the machine, the chosen stages not run yet, empty tables."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU mode, no CUDA device"
    launcher = os.environ.get("GPU_CHECK_LAUNCHER", f"python {Path(__file__).relative_to(ROOT)}")
    stages = {spec.name: Stage(spec.name, spec.title) for spec in STAGES if not args.stages or spec.name in args.stages}
    return Report(args.out, time.strftime("%Y-%m-%d", time.gmtime()), name, shlex.join([*shlex.split(launcher), *argv]),
                  facts(device, args.budget_minutes), stages, tables(device.type == "cuda", sizes.fid_samples))


def conclude(report: Report, passed: bool, minutes: float) -> None:
    """The section's first line: passed (and which stages ran short of time), or where it failed."""
    if passed:
        short = [s.name for s in report.stages.values()
                 if s.status.startswith("stopped") or OUT_OF_TIME in s.note or "budget was spent" in s.note]
        report.outcome = f"passed in {minutes:.1f} minutes" + (f"; cut short for time: {', '.join(short)}" if short else "")
        report.save()
        say(f"{report.outcome}: {report.path}")
    else:
        print(f"gpu-check: {report.outcome}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    # the budget counts from the wrapper's start: Python's and torch's imports are part of the 8 minutes
    since_launch = time.time() - float(os.environ.get("GPU_CHECK_STARTED", time.time()))
    started = time.monotonic() - (since_launch if 0 < since_launch < 300 else 0)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = choose_device(args.cpu)
    sizes = GPU if device.type == "cuda" else CPU
    quiet_lightning()
    report = new_report(args, device, sizes, argv)
    report.save()
    scratch = Path(tempfile.mkdtemp(prefix="genlab-gpu-check-"))
    say(f"{report.device}: writing {args.out}, runs and logs in {scratch}")
    check = Check(device, sizes, report, scratch, args.data_dir)
    try:
        passed = run_all(check, [spec for spec in STAGES if spec.name in report.stages], started + 60 * args.budget_minutes)
    except KeyboardInterrupt:
        report.outcome = "interrupted (Ctrl-C): the rows below are what it measured"
        report.save()
        raise
    conclude(report, passed, (time.monotonic() - started) / 60)
    if passed and not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    elif not passed:
        print(f"gpu-check: the runs and their logs are kept in {scratch}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
