"""Every option of every config group composes, resolves and builds its objects."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

CONFIG_ROOT = Path(str(files("genlab.configs")))
# groups whose options are whole presets, composed as `group=option`
GROUPS = sorted(
    str(folder.relative_to(CONFIG_ROOT))
    for folder in CONFIG_ROOT.rglob("*")
    if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.yaml"))
)
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONFIG_ROOT / group).glob("*.yaml"))]


def test_the_groups_the_cli_promises_exist():
    for group in ("data", "model", "optimizer", "trainer", "logger", "callbacks", "paths", "hydra", "experiment", "debug"):
        assert group in GROUPS


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_resolves(compose_train, group, option):
    if group == "hydra":
        cfg = compose_train()  # hydra/default is the one `genlab train` always uses
        assert cfg.task_name
        return
    cfg = compose_train(f"{group}={option}")
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["model"]["_target_"] and container["data"]["_target_"]


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONFIG_ROOT / "model").glob("*.yaml")))
@pytest.mark.parametrize("net", sorted(p.stem for p in (CONFIG_ROOT / "model" / "net").glob("*.yaml")))
@pytest.mark.parametrize("data", ["mnist", "cifar10"])
def test_every_model_builds_for_every_net_and_data_shape(compose_train, model, net, data):
    import torch

    cfg = compose_train(f"model={model}", f"model/net={net}", f"data={data}")
    module = instantiate(cfg.model, optimizer=instantiate(cfg.optimizer, _convert_="all"), _convert_="partial")
    z = module.sample_latent(2)
    labels = torch.tensor([0, 1]) if module.conditional else None
    assert module.generate(z, labels).shape == (2, *cfg.data.image_shape)


def test_experiments_pick_their_groups(compose_train):
    cfg = compose_train("experiment=dcgan_cifar10")
    assert cfg.data.image_shape == [3, 32, 32]
    assert cfg.model.net.generator._target_ == "genlab.nets.dcgan.Generator"


def test_optimizer_lr_reaches_both_players(compose_train):
    cfg = compose_train("optimizer.lr=1e-3", "optimizer.discriminator.lr=4e-3")
    optimizer = instantiate(cfg.optimizer, _convert_="all")
    assert optimizer["generator"].keywords["lr"] == 1e-3
    assert optimizer["discriminator"].keywords["lr"] == 4e-3
