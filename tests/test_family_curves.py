"""scripts/family_curves.py (issue 14's FID-against-minutes plot) trains a denoising and a one-pass family side by
side through the genlab CLI, judges every timed checkpoint alike, and keeps finished runs when called again."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "family_curves.py"


@pytest.mark.slow
def test_family_curves_smoke_run_writes_every_families_points_table_and_plot(tmp_path):
    out = tmp_path / "families"
    command = [sys.executable, str(SCRIPT), "--families", "flow", "dcgan", "--minutes", "0.1", "--one-pass-minutes", "0.1",
               "--every", "0.05", "--one-pass-every", "0.05", "--eval-samples", "30", "--smoke", "--jobs", "2",
               "--threads", "1", "--out", str(out), "--work", str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    rows = list(csv.DictReader((out / "curves.csv").open()))
    families = {row["family"] for row in rows}
    assert families == {"flow", "dcgan"}
    for family in families:
        points = [row for row in rows if row["family"] == family]
        minutes = [float(row["minutes"]) for row in points]
        # each point at the minutes its checkpoint recorded: the first interval (0.05 min) plus part of a batch
        assert minutes == sorted(minutes) and 0.05 <= minutes[0] < 0.1
        assert all(math.isfinite(float(row["fid"])) for row in points)
        steps = [int(row["generator_steps"]) for row in points]
        assert steps == sorted(steps) and steps[0] > 0
    [flow] = {row["sampler"] for row in rows if row["family"] == "flow"}
    assert '"method": "heun"' in flow  # the family's default sampler, recorded per point
    assert {row["evaluations"] for row in rows if row["family"] == "dcgan"} == {"1"}

    table = (out / "table.md").read_text()
    assert "| flow |" in table and "| dcgan |" in table and "one pass" in table and "heun 10 steps" in table
    # the GAN trains with the gallery's recipe (lr 1e-3 + EMA on the quick start's narrow nets)
    assert "`recipe=dcgan_lr1e3_ema`" in table
    assert (out / "curves.png").stat().st_size > 0

    again = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert again.stdout.count("finished before") == 2
    assert list(csv.DictReader((out / "curves.csv").open())) == rows
