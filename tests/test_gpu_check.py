"""scripts/gpu_check.sh: its CPU mode end to end, and the checks that stop it at the first wrong result."""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def gpu_check(monkeypatch):
    """scripts/gpu_check.py as a module (it imports its helpers from scripts/, as scripts/benchmark.py does)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import gpu_check

    return gpu_check


def cpu_check(gpu_check, tmp_path: Path, stages=None):
    """A CPU-mode Check of `stages` (the script's own by default), its section in tmp_path/benchmarks.md."""
    from gpu_check_report import Report, Stage

    report = Report(tmp_path / "benchmarks.md", "2026-12-07", "CPU mode, no CUDA device", "scripts/gpu_check.sh --cpu",
                    [], {spec.name: Stage(spec.name, spec.title) for spec in stages or gpu_check.STAGES},
                    gpu_check.tables(False, 32))
    return gpu_check.Check(torch.device("cpu"), gpu_check.CPU, report, tmp_path / "scratch", tmp_path / "data")


def test_a_nan_loss_fails_naming_the_stage_the_run_and_the_value(gpu_check):
    from gpu_check_report import CheckFailed

    with pytest.raises(CheckFailed, match=r"^short runs, dcgan under 16-mixed: train/g_loss = nan is not finite$") as failed:
        gpu_check.require_finite("short runs", "dcgan under 16-mixed", {"train/d_loss": 0.7, "train/g_loss": math.nan})
    assert failed.value.stage == "short runs"


def test_samples_of_a_wrong_shape_fail_naming_both_shapes(gpu_check):
    from gpu_check_report import CheckFailed

    with pytest.raises(CheckFailed, match=r"^sampling, ddpm: samples of shape \(8, 1, 28, 27\), expected \(8, 1, 28, 28\)$"):
        gpu_check.require_images("sampling", "ddpm", torch.zeros(8, 1, 28, 27), 8, (1, 28, 28), torch.device("cpu"))


def test_a_sample_that_is_not_finite_or_leaves_the_pixel_range_fails(gpu_check):
    from gpu_check_report import CheckFailed

    images = torch.zeros(1, 1, 28, 28)
    images[0, 0, 3, 5] = math.inf
    with pytest.raises(CheckFailed, match=r"1 of 784 sample values are not finite$"):
        gpu_check.require_images("sampling", "ddpm", images, 1, (1, 28, 28), torch.device("cpu"))
    with pytest.raises(CheckFailed, match=r"samples range over \[0, 1.5\], outside \[-1, 1\]$"):
        gpu_check.require_images("sampling", "ddpm", images.nan_to_num(posinf=1.5), 1, (1, 28, 28), torch.device("cpu"))


def test_devices_that_disagree_beyond_the_tolerance_fail_with_both_numbers(gpu_check):
    from gpu_check_report import CheckFailed

    tolerance = gpu_check.Tolerance(rtol=1e-3, atol=1e-5)
    term, difference = gpu_check.require_agreement("agreement", "ddpm", {"loss": 1.0, "grad_norm": 2.0},
                                                   {"loss": 1.0005, "grad_norm": 2.0}, tolerance, ("cpu", "cuda"))
    assert term == "loss" and difference == pytest.approx(5e-4)
    with pytest.raises(CheckFailed, match=r"^agreement, ddpm: loss is 1 on cpu and 1.002 on cuda \(difference 0.002;"
                                          r" tolerance \|a - b\| <= 1e-05 \+ 0.001 \|a\|\)$"):
        gpu_check.require_agreement("agreement", "ddpm", {"loss": 1.0}, {"loss": 1.002}, tolerance, ("cpu", "cuda"))


def test_a_training_step_makes_every_random_draw_alike_so_one_device_agrees_with_itself(gpu_check, tmp_path):
    """The agreement stage's step on the CPU twice: any draw left to a device's own generator would show here."""
    check = cpu_check(gpu_check, tmp_path)
    for variant in ("dcgan+r1", "wgan_gp+bn", "ddpm"):
        row = gpu_check.agreement_row(check, variant, torch.device("cpu"))
        terms = row["terms"].split(", ")
        assert ("r1" in terms) == (variant == "dcgan+r1") and ("gradient_penalty" in terms) == (variant == "wgan_gp+bn")
        # WGAN-GP's penalty still draws its mix on the device: at real = fake that moves it by rounding only
        relative = float(row["largest difference"].split("(")[1].split(" ")[0])
        assert relative == 0 if variant != "wgan_gp+bn" else relative < 1e-6


def test_a_failed_check_stops_the_run_and_the_section_says_where(gpu_check, tmp_path):
    from gpu_check_report import CheckFailed

    ran = []

    def fails(_):
        raise CheckFailed("short runs", "wgan_gp+bn under 16-mixed", "train/d_loss = inf is not finite")

    stages = [gpu_check.StageSpec("sampling", "first", 1.0, lambda _: ran.append("first") or "fine"),
              gpu_check.StageSpec("short_runs", "second", 1.0, fails),
              gpu_check.StageSpec("ddp", "third", 1.0, lambda _: ran.append("third") or "")]
    check = cpu_check(gpu_check, tmp_path, stages)
    assert gpu_check.run_all(check, stages, time.monotonic() + 60) is False
    assert ran == ["first"]
    section = check.report.path.read_text()
    assert "**FAILED at second: short runs, wgan_gp+bn under 16-mixed: train/d_loss = inf is not finite**" in section
    assert "| second | FAILED |" in section and "| third | not run |" in section


def test_a_stage_that_needs_cuda_is_named_as_skipped_with_why(gpu_check, tmp_path):
    stages = [gpu_check.StageSpec("agreement", "CPU against CUDA", 1.0, lambda _: "ran", "it compares two devices")]
    check = cpu_check(gpu_check, tmp_path, stages)
    assert gpu_check.run_all(check, stages, time.monotonic() + 60)
    assert "| CPU against CUDA | skipped |  | needs CUDA: it compares two devices |" in check.report.path.read_text()


def test_a_stage_over_its_budget_is_stopped_and_keeps_its_rows(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "GRACE_SECONDS", 0.1)

    def slow(check):
        check.report.add_row("sampling", {"model": "ddpm", "sampler": "dpm++"})
        time.sleep(10)

    spec = gpu_check.StageSpec("sampling", "sampling speed", 1.0, slow)
    check = cpu_check(gpu_check, tmp_path, [spec])
    started = time.monotonic()
    assert gpu_check.run_stage(check, spec, 0.2)
    assert time.monotonic() - started < 5
    section = check.report.path.read_text()
    assert "| sampling speed | stopped at its budget of 0 s |" in section and "| ddpm | dpm++ |" in section


def test_the_wrapper_runs_the_script_with_its_arguments_and_the_launch_time(tmp_path):
    """scripts/gpu_check.sh execs $PYTHON scripts/gpu_check.py with the arguments it was given, naming itself as the
    launcher and the second it started (the check's budget counts from there)."""
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$GPU_CHECK_LAUNCHER" "$GPU_CHECK_STARTED" "$@"\n')
    stub.chmod(0o755)
    before = time.time()
    result = subprocess.run([str(SCRIPTS / "gpu_check.sh"), "--out", "a b.md", "--budget-minutes", "6"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHON": str(stub)})
    assert result.returncode == 0, result.stderr
    launcher, started, *argv = result.stdout.splitlines()
    assert launcher == "scripts/gpu_check.sh" and before - 1 <= float(started) <= time.time() + 1
    assert argv == [str(SCRIPTS / "gpu_check.py"), "--out", "a b.md", "--budget-minutes", "6"]


def in_process_genlab(command, stdout=None, cwd=None, **options):
    """subprocess.run for scripts/gpu_check.py's `genlab` commands: run in this process (conftest.run_genlab, the
    same code from genlab/cli.py on, without seconds of imports each), its output into the log as the process's
    would be. DDP re-executes its command line for its ranks, so `trainer=ddp...` and everything else runs as a
    process of its own."""
    from benchmark import genlab_executable

    from tests.conftest import run_genlab

    if command[0] != genlab_executable() or any(str(arg).startswith("trainer=ddp") for arg in command):
        return subprocess.run(command, stdout=stdout, cwd=cwd, **options)
    finished = run_genlab(*command[1:], cwd=cwd)
    stdout.write(finished.stdout + finished.stderr)
    stdout.flush()
    return subprocess.CompletedProcess(command, finished.returncode)


@pytest.mark.slow
def test_the_cpu_mode_writes_a_dated_section_with_every_stage_and_names_the_skipped_ones(gpu_check, tmp_path,
                                                                                        monkeypatch, capsys):
    """The whole check as scripts/gpu_check.sh starts it, without CUDA: every stage that can run at toy sizes (one
    torch thread). In this process, and its non-DDP `genlab` commands too (the DDP run as a process of its own)."""
    import logging
    import types

    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nWhat came before.\n\n## 2026-12-04, CPU\n\nAn older section.\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GPU_CHECK_LAUNCHER", "scripts/gpu_check.sh")  # as the wrapper sets it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(gpu_check, "subprocess", types.SimpleNamespace(
        run=in_process_genlab, STDOUT=subprocess.STDOUT, TimeoutExpired=subprocess.TimeoutExpired))
    loggers = {name: logging.getLogger(name).level for name in ("pytorch_lightning", "lightning.pytorch",
                                                                "lightning.fabric", "lightning_fabric")}
    try:
        code = gpu_check.main(["--out", str(out), "--budget-minutes", "6"])
    finally:
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
    printed = capsys.readouterr()
    assert code == 0, (printed.out + printed.err)[-4000:]
    assert "NO CUDA DEVICE" in printed.err
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nWhat came before.\n\n## 2026-12-04, CPU\n\nAn older section.\n\n## GPU check, ")
    section = text[text.index("## GPU check, "):]
    assert section.splitlines()[0].endswith("(CPU mode, no CUDA device)") and "**passed in " in section
    assert f"scripts/gpu_check.sh --out {out} --budget-minutes 6\n" in section
    assert "| CPU against CUDA, one training step | skipped |  | needs CUDA:" in section
    assert "16-mixed skipped: it needs CUDA" in section
    for title in ("Short runs under each option", "genlab against the plain loop", "Sampling speed per sampler",
                  "trainer=ddp trainer.devices=1 against one device", "CIFAR-10-shaped training", "FID of 32 samples",
                  "speed.compile"):
        assert f"\n### {title}\n" in section, title
    assert "### CPU against CUDA" not in section  # a skipped stage leaves no empty table
    for row in ("| dcgan+ada | 32-true |", "| dcgan+r1 | bf16-mixed |", "| wgan_gp+bn | bf16-mixed |",
                "| ddpm | channels_last |", "| dcgan | one pass |", "| ddpm | dpm++ | 20 |", "| train/d_loss |",
                "| dcgan | 2 | 8 |", "| ddpm | 2 | 8 |", "| dcgan | eager (CPU mode"):
        assert row in section, row
    assert "synthetic: random pixels in CIFAR-10's shape" in section


def test_a_rerun_on_the_same_day_and_device_replaces_its_own_section_only(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from gpu_check_report import write_section

    path = tmp_path / "benchmarks.md"
    path.write_text("# B\n\n## GPU check, 2026-12-07 (NVIDIA H100)\n\nold\n\n### a table\n\nrows\n\n"
                    "## GPU check, 2026-12-07 (NVIDIA A100)\n\nanother GPU\n")
    write_section(path, "## GPU check, 2026-12-07 (NVIDIA H100)", "## GPU check, 2026-12-07 (NVIDIA H100)\n\nnew\n")
    assert path.read_text() == ("# B\n\n## GPU check, 2026-12-07 (NVIDIA H100)\n\nnew\n\n"
                                "## GPU check, 2026-12-07 (NVIDIA A100)\n\nanother GPU\n")
    write_section(path, "## GPU check, 2026-12-08 (NVIDIA H100)", "## GPU check, 2026-12-08 (NVIDIA H100)\n\nnext day\n")
    assert path.read_text().endswith("another GPU\n\n## GPU check, 2026-12-08 (NVIDIA H100)\n\nnext day\n")


def test_a_graph_compiled_after_the_warm_up_fails_as_a_recompilation(gpu_check):
    from gpu_check_report import CheckFailed

    steady = [(2, 2), (3, 3), (3, 3), (3, 3)]
    assert gpu_check.require_no_new_graphs("dcgan", steady, 2) == ((3, 3), (3, 3))
    with pytest.raises(CheckFailed, match=r"^compile, wgan_gp: 1 graphs \(2 frames\) compiled after the 2 warm-up batches,"
                                          r" in 2 more: a recompilation every few steps$"):
        gpu_check.require_no_new_graphs("wgan_gp", [(2, 2), (3, 3), (3, 3), (4, 5)], 2)


def test_the_check_exits_1_at_a_wrong_result_and_names_it_in_the_section(gpu_check, tmp_path, monkeypatch, capsys):
    from gpu_check_report import CheckFailed

    def nan(_):
        raise CheckFailed("cifar", "ddpm", "train/loss = nan is not finite")

    monkeypatch.setattr(gpu_check, "STAGES", (gpu_check.StageSpec("cifar", "CIFAR-10-shaped training", 1.0, nan),))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the runs a failed check keeps
    assert gpu_check.main(["--cpu", "--out", str(tmp_path / "benchmarks.md")]) == 1
    assert "FAILED at CIFAR-10-shaped training: cifar, ddpm: train/loss = nan is not finite" in capsys.readouterr().err
    section = (tmp_path / "benchmarks.md").read_text()
    assert section.startswith("## GPU check, ") and "| CIFAR-10-shaped training | FAILED |" in section
