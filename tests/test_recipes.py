"""Every recipe the results tables measured is a YAML file (configs/recipe/), and composes to exactly the config
the table's row was trained with: the tables in docs/ stay true of `genlab train recipe=<name>`."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

# composes every row of every results table, both ways
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TABLES = ["docs/recipes/recipes.json", "docs/recipes_5000/recipes.json", "docs/gallery/recipes.json",
          "docs/gallery/candidates_1000/recipes.json"]
# the conv nets every table trained its conv recipes on (--set, or the gallery's CONV_NETS)
TABLES_NETS = ["model.latent_dim=64", "model.net.generator.base_channels=16", "model.net.discriminator.base_channels=32"]
OWN_NETS = ("model=gan", "model=vae", "model=cvae")


def measured() -> list[tuple[str, str, tuple[str, ...]]]:
    """(table, recipe, the overrides its runs were trained with) for every row of every table."""
    rows = []
    for table in TABLES:
        record = json.loads((REPO / table).read_text())
        for name, recipe in record["recipes"].items():
            overrides = recipe["overrides"]
            nets = [] if overrides[0] in OWN_NETS else TABLES_NETS
            rows.append((table, name, (*overrides, *nets)))
    return rows


ROWS = measured()


@functools.lru_cache(maxsize=None)
def composed(*overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    return {group: OmegaConf.to_container(cfg[group]) for group in ("model", "optimizer", "data", "trainer")}


@pytest.mark.parametrize(("table", "recipe", "overrides"), ROWS, ids=[f"{t.split('/')[1]}:{r}" for t, r, _ in ROWS])
def test_a_recipe_file_composes_to_the_config_its_table_measured(table, recipe, overrides):
    assert composed(f"recipe={recipe}") == composed(*overrides)


def test_the_quick_start_trains_the_tables_best_recipe_per_minute():
    quickstart = composed("experiment=quickstart")
    recipe = composed("recipe=dcgan_lr1e3_ema")
    assert quickstart["model"] == recipe["model"] and quickstart["optimizer"] == recipe["optimizer"]
    assert quickstart["trainer"]["max_epochs"] == 16
