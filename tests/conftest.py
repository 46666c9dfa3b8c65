"""Shared fixtures: configs composed the way `genlab train` composes them, and tiny data sets
written in each data set's real on-disk format so the real loaders run."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import pickle
import sys
import struct
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict


if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest process per core: each (and every process it starts) trains on one thread,
    # as two torch jobs with two threads each on two cores slow each other far more than twice
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """An IDX file as LeCun distributes MNIST: zero, zero, dtype 0x08 (uint8), n_dims, sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_mnist(root: Path, n_train: int = 96, n_test: int = 32, seed: int = 0, compress: bool = False) -> dict:
    """MNIST in torchvision's layout (<root>/MNIST/raw); returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte", labels, compress)
        arrays[prefix] = (images, labels)
    return arrays


def make_cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> dict:
    """CIFAR-10's python version: pickled dicts with b'data' (N x 3072, channel-major) and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels, "filenames": []}, handle)
        arrays[name] = (data, labels)
    return arrays


def logged(run_dir: Path, name: str) -> list[tuple[int, float]]:
    """(step, value) rows of one metric from a run's CSV logger."""
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [(int(row["step"]), float(row[name])) for row in csv.DictReader(handle) if row.get(name)]


@pytest.fixture
def fake_data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_mnist(root)
    make_cifar10(root)
    return root


# a small mnist_mini domain classifier (93% on the test digits) for the tests that judge conditional samples by it
SMALL_MNIST_JUDGE = {"epochs": 2, "batch_size": 128, "lr": 1e-3, "base_channels": 16, "feature_dim": 32, "seed": 0}


@pytest.fixture(scope="session")
def small_mnist_judge(tmp_path_factory):
    """SMALL_MNIST_JUDGE's feature extractor, trained once a session (about 7 s): its cache folder is shared by every
    pytest-xdist worker, and a lock lets one worker train it while another waits to read it. The cache is keyed by
    the data and the settings, so each test gets the classifier it would have trained itself."""
    import fcntl

    from genlab.data.sources import MNISTMini
    from genlab.metrics.domain_classifier import load_or_train

    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared_judge_cache"
    cache.mkdir(exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        extractor, _ = load_or_train(cache, "mnist_mini", MNISTMini().load, 10, SMALL_MNIST_JUDGE)
    return extractor


ComposeFn = Callable[..., DictConfig]


@pytest.fixture
def compose_train(tmp_path: Path) -> ComposeFn:
    """Compose configs/train.yaml with overrides, its paths pointed into tmp_path (with Hydra's own node,
    `hydra.runtime.choices` included, when return_hydra_config)."""

    def _compose(*overrides: str, config_name: str = "train", return_hydra_config: bool = False) -> DictConfig:
        from genlab.commands.app import register_resolvers

        register_resolvers()  # as every genlab command does first (data=folder's class count, run folder names)
        GlobalHydra.instance().clear()
        with initialize_config_module("genlab.configs", version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
        with open_dict(cfg):
            cfg.paths.root_dir = str(tmp_path)
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.log_dir = str(tmp_path / "outputs")
            if not any(o.startswith("paths.data_dir=") for o in overrides):
                cfg.paths.data_dir = str(tmp_path / "data")
        return cfg

    return _compose


# Short CPU training of a small DCGAN-net model: 2 epochs of 4 batches, no progress bar.
_SHORT = (
    "trainer=cpu",
    "debug=limit",
    "trainer.enable_progress_bar=false",
    "data.batch_size=16",
    "data.val_size=16",
    "model.latent_dim=8",
    "model.net.generator.base_channels=8",
    "model.net.discriminator.base_channels=8",
)
FAST = (*_SHORT, "~callbacks.progress_bar")
# the same without callbacks and loggers, for tests that look at the model only
BARE = (*_SHORT, "callbacks=none", "~logger")


@dataclass
class Finished:
    """How a `genlab` command ended, as a shell sees it: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_genlab(*args: str, cwd: Path) -> Finished:
    """`genlab <args>` run in this process, from folder `cwd`, as the shell would run it: its exit code, its
    stdout, and its stderr with every warning it raised written there as Python shows warnings by default.

    In-process because a fresh interpreter costs each call seconds of importing torch and Lightning, and
    the command's own code (genlab/cli.py onwards) is the same. Where the process itself is the point
    (DDP re-executes the command line for its other ranks; a signal stops the process; a reader closes
    the pipe), use run_genlab_process.
    """
    assert "--cfg" in args or not any(arg.startswith(("trainer=ddp", "trainer.strategy")) for arg in args), \
        "DDP starts processes of its own from the command line: use run_genlab_process"
    from hydra.core.global_hydra import GlobalHydra

    from genlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    here, argv = os.getcwd(), list(sys.argv)
    os.chdir(cwd)
    GlobalHydra.instance().clear()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("default")  # Python's own defaults, as in a fresh process
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=category)
            try:
                code = main(["genlab", *args])
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # a bug: the traceback a user would see
                traceback.print_exc(file=err)
                code = 1
        for warning in caught:
            err.write(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno))
    finally:
        os.chdir(here)
        sys.argv[:] = argv
        GlobalHydra.instance().clear()
    return Finished(code, out.getvalue(), err.getvalue())


def run_genlab_process(*args: str, cwd: Path, timeout: int = 600) -> Finished:
    """`genlab <args>` as a process of its own, from folder `cwd` (one thread per process)."""
    import subprocess

    executable = str(Path(sys.executable).parent / "genlab")
    result = subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    return Finished(result.returncode, result.stdout, result.stderr)
