"""A regular (non-editable) wheel install carries the configs and finds them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import genlab, genlab.configs
from importlib.resources import files
from hydra import compose, initialize_config_module
print(genlab.__file__)
print(files("genlab.configs") / "train.yaml")
with initialize_config_module("genlab.configs", version_base="1.3"):
    cfg = compose("train", overrides=["model/net=mlp", "data=cifar10"])
print(cfg.model.net.generator._target_, list(cfg.data.image_shape))
"""


@pytest.mark.timeout(600)
def test_installed_wheel_finds_its_configs(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = wheels.glob("genlab-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    # run from an empty folder with only the installed copy on the path (not the checkout)
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + PROBE.replace("\n", "\n")],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    genlab_file, train_yaml, composed = result.stdout.strip().splitlines()
    assert genlab_file.startswith(str(target)) and train_yaml.startswith(str(target))
    assert composed == "genlab.nets.mlp.Generator [3, 32, 32]"
