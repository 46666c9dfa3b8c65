"""scripts/benchmark.py runs end to end and reports every figure docs/benchmarks.md quotes."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

# each test runs scripts/benchmark.py end to end, genlab runs inside
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


def run_benchmark(monkeypatch, capsys, *args: str) -> SimpleNamespace:
    """scripts/benchmark.py <args> in this process (the interpreter's start is no figure it reports; the start-up
    times it measures are of `genlab` processes of their own): its exit code and what it printed."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the script imports its helpers as the package bench
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    import benchmark

    level = logging.getLogger("pytorch_lightning").level
    try:
        code = benchmark.main()
    finally:
        logging.getLogger("pytorch_lightning").setLevel(level)
    printed = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=printed.out, stderr=printed.err)


def test_benchmark_reports_every_ratio_and_the_start_up_times(tmp_path, monkeypatch, capsys):
    out = tmp_path / "benchmark.json"
    monkeypatch.chdir(tmp_path)
    result = run_benchmark(monkeypatch, capsys, "--device", "cpu", "--models", "vae", "--batches", "2", "--warmup", "1",
                           "--repeats", "1", "--options", "channels_last", "bf16-mixed", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    ratios = report["ratios"]["vae"]
    assert set(ratios) == {"genlab/plain", "plain/DataLoader", "channels_last", "bf16-mixed"}
    assert all(math.isfinite(r) and r > 0 for r in ratios.values())
    assert math.isfinite(report["genlab_extra_ms_per_step"]["vae"])
    # each run timed its batches in pairs: genlab (or the DataLoader loop) beside the plain loop
    for pairs in report["runs"]["vae"].values():
        assert [pair["batches"] for pair in pairs] == [2] and all(pair["first_seconds"] > 0 < pair["second_seconds"] for pair in pairs)
    assert set(report["startup_seconds"]) == {
        "genlab --help", "genlab train --help",
        "genlab train: launch to first batch start", "genlab train: launch to first batch end",
    }
    assert 0 < report["startup_seconds"]["genlab train: launch to first batch start"] < \
        report["startup_seconds"]["genlab train: launch to first batch end"]
    assert "genlab/plain" in result.stdout and "channels_last" in result.stdout


def test_an_option_that_does_not_apply_to_the_device_is_refused_by_name(monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the script imports its helpers as the package bench
    from benchmark import speed_options

    with pytest.raises(SystemExit, match=r"^--options cudnn.benchmark applies to cuda only, not cpu$"):
        speed_options(["cudnn.benchmark"], torch.device("cpu"))
    assert speed_options(["all"], torch.device("cpu")) == ["channels_last", "compile", "bf16-mixed"]


def test_benchmark_measures_what_each_training_trick_costs_and_the_standing_statistics(tmp_path, monkeypatch, capsys):
    out = tmp_path / "benchmark.json"
    monkeypatch.chdir(tmp_path)
    result = run_benchmark(monkeypatch, capsys, "--device", "cpu", "--models", "dcgan", "--batches", "1", "--warmup",
                           "1", "--repeats", "1", "--batch-size", "16", "--options", "ema", "r1_lazy16", "--no-startup",
                           "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["ratios"]["dcgan"]) == {"genlab/plain", "plain/DataLoader", "ema", "r1_lazy16"}
    assert all(math.isfinite(r) and r > 0 for r in report["ratios"]["dcgan"].values())
    # the EMA's standing statistics: 16 batches of the batch size, measured when sampling
    standing = report["standing_statistics_seconds"]["dcgan"]
    assert standing["batches"] == 16 and standing["batch_size"] == 16
    assert "standing statistics of the EMA" in result.stdout
    # a one-pass family samples in one network evaluation per image, with no sampler to name
    [row] = report["sampling"]["dcgan"]
    assert row["method"] == "one pass" and row["evaluations"] == 1 and row["images_per_second"] > 0
