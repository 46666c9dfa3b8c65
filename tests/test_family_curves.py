"""scripts/family_curves.py (issue 14's FID-against-minutes plot) trains a denoising and a one-pass family side by
side through the genlab CLI, judges every timed checkpoint alike, and keeps finished runs when called again."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "family_curves.py"


@pytest.mark.slow
def test_family_curves_smoke_run_writes_every_families_points_table_and_plot(tmp_path, monkeypatch, capsys):
    """The script's own code in this process (its genlab commands in processes of their own, two at once), so that
    its second call costs no interpreter start; the runs without their sample grids (no point judges them)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    monkeypatch.chdir(tmp_path)
    import family_curves

    out = tmp_path / "families"
    argv = ["--families", "flow", "dcgan", "--minutes", "0.05", "--one-pass-minutes", "0.05", "--every", "0.05",
            "--one-pass-every", "0.05", "--eval-samples", "30", "--smoke", "--jobs", "2", "--threads", "1",
            "--extra", "callbacks.sample_grid=null", "--out", str(out), "--work", str(tmp_path / "work")]
    assert family_curves.main(argv) == 0
    capsys.readouterr()

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
        assert not (tmp_path / "work" / family / "samples").exists()  # --extra reached genlab train
    [flow] = {row["sampler"] for row in rows if row["family"] == "flow"}
    assert '"method": "heun"' in flow  # the family's default sampler, recorded per point
    assert {row["evaluations"] for row in rows if row["family"] == "dcgan"} == {"1"}

    table = (out / "table.md").read_text()
    assert "| flow |" in table and "| dcgan |" in table and "one pass" in table and "heun 10 steps" in table
    # the GAN trains with the gallery's recipe (lr 1e-3 + EMA on the quick start's narrow nets)
    assert "`recipe=dcgan_lr1e3_ema`" in table
    assert (out / "curves.png").stat().st_size > 0

    assert family_curves.main(argv) == 0
    assert capsys.readouterr().out.count("finished before") == 2
    assert list(csv.DictReader((out / "curves.csv").open())) == rows
