"""scripts/gan_recipes.py (issue 13's table) runs end to end through the genlab CLI and writes its table,
CSV and JSON with finite numbers; in --smoke mode, one recipe, one seed, a few generator updates."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gan_recipes.py"


@pytest.mark.slow
def test_gan_recipes_smoke_run_writes_the_table_csv_and_json(tmp_path):
    out = tmp_path / "recipes"
    command = [sys.executable, str(SCRIPT), "--budget", "2", "--seeds", "0", "--recipes", "dcgan",
               "--eval-samples", "100", "--smoke", "--out", str(out), "--work", str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "generator updates" in result.stdout

    record = json.loads((out / "recipes.json").read_text())
    assert record["budget"]["generator_steps"] == 2
    [run] = record["runs"]
    assert (run["recipe"], run["seed"], run["status"], run["generator_steps"]) == ("dcgan", 0, "completed", 2)
    assert math.isfinite(run["fid"]) and run["fid"] >= 0
    assert math.isfinite(run["coverage_entropy"]) and -1e-6 <= run["coverage_entropy"] <= math.log(10) + 1e-6
    assert run["train_minutes"] > 0 and run["eval_protocol"]["n_generated"] == 100
    assert record["recipes"]["dcgan"]["overrides"] == ["model=dcgan"]

    [row] = list(csv.DictReader((out / "recipes.csv").open()))
    assert row["recipe"] == "dcgan" and float(row["fid"]) == pytest.approx(run["fid"])
    assert math.isfinite(float(row["coverage_entropy"]))

    table = (out / "recipes.md").read_text()
    [line] = [line for line in table.splitlines() if line.startswith("| dcgan |")]
    fid_cell, coverage_cell = line.split(" | ")[2:4]
    assert math.isfinite(float(fid_cell)) and float(fid_cell) == pytest.approx(run["fid"], abs=0.05)
    assert math.isfinite(float(coverage_cell))
    assert (out / "recipes_seed0.png").is_file() and (out / "grids" / "dcgan.png").is_file()

    # the same command again keeps the finished run instead of training it twice
    again = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "kept from" in again.stdout
    [kept] = json.loads((out / "recipes.json").read_text())["runs"]
    assert kept["fid"] == run["fid"] and kept["train_minutes"] == run["train_minutes"]

    # without the work folder the table's own recipes.json keeps the row, and its saved grid stays in the picture
    shutil.rmtree(tmp_path / "work")
    again = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "kept from the table's recipes.json" in again.stdout
    [kept] = json.loads((out / "recipes.json").read_text())["runs"]
    assert kept["fid"] == run["fid"] and (out / "recipes_seed0.png").is_file()


def test_model_gallery_gives_the_conv_gans_the_narrow_nets_and_the_mlp_gan_and_vaes_their_own(monkeypatch, compose_train):
    """Every gallery recipe composes with the overrides model_gallery.py gives it: the conv GANs share CONV_NETS,
    which the MLP gan and the VAEs have no keys for (composing them with it would fail)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from gan_recipes import RECIPES
    from model_gallery import CONV_NETS, GALLERY, own_nets

    assert {recipe for recipe in GALLERY.values() if own_nets(recipe)} == {"gan_lr1e3_ema", "vae", "cvae"}
    for recipe in GALLERY.values():
        cfg = compose_train(*RECIPES[recipe][1], *([] if own_nets(recipe) else CONV_NETS))
        if not own_nets(recipe):
            assert cfg.model.latent_dim == 64 and cfg.model.net.generator.base_channels == 16


def test_every_recipe_composes_and_sets_what_its_label_says(monkeypatch, compose_train):
    """A recipe is a list of overrides: each must compose, and each `key=value` in it must land in the config
    (a typo'd key, or a value a later override undoes, would train a different recipe under the same label)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from gan_recipes import RECIPES

    for recipe, (_label, overrides) in RECIPES.items():
        cfg = compose_train(*overrides, return_hydra_config=True)
        choices = cfg.hydra.runtime.choices
        for override in OverridesParser.create().parse_overrides(overrides):
            key, value = override.key_or_group, override.value()
            if key in choices:  # a config group: the option it picked
                assert choices[key] == value, (recipe, override.input_line)
            else:
                assert OmegaConf.select(cfg, key) == value, (recipe, override.input_line)


def test_the_discriminator_gap_compares_the_epoch_the_last_validation_judged(monkeypatch):
    """train/d_real over the epoch that ended at the last validation, beside that validation's val/d_real; batches
    trained after it (a budget that stops mid-epoch) are not part of the comparison."""
    from types import SimpleNamespace as Event

    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from gan_recipes import discriminator_gap

    events = {
        "train/d_real": [Event(step=s, value=v) for s, v in [(10, 0.5), (20, 0.6), (30, 0.8), (40, 0.9), (50, 0.1)]],
        "val/d_real": [Event(step=20, value=0.55), Event(step=40, value=0.3)],
    }
    assert discriminator_gap(events) == pytest.approx({"d_real_train": 0.85, "d_real_held_out": 0.3})
    assert discriminator_gap({"train/d_real": events["train/d_real"]}) == {"d_real_train": None, "d_real_held_out": None}
