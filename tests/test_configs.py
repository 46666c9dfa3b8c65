"""Every option of every config group composes, resolves and builds its objects."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
from hydra.utils import instantiate

from genlab.builder import build_module
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
    if group.split("/")[0] == "hydra":
        # hydra/default is composed by every test (test_hydra_default_* check what it sets); the search's
        # pruner and sampler groups exist under genlab's sweeper only (tests/test_search.py builds each)
        return
    cfg = compose_train(f"{group}={option}")
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["model"]["_target_"] and container["data"]["_target_"]


def net_roles(net: str) -> set[str]:
    return set(OmegaConf.load(CONFIG_ROOT / "model" / "net" / f"{net}.yaml"))


def default_net(model: str) -> str:
    (net,) = [d["/model/net"] for d in OmegaConf.load(CONFIG_ROOT / "model" / f"{model}.yaml").defaults if "/model/net" in d]
    return net


MODELS = sorted(p.stem for p in (CONFIG_ROOT / "model").glob("*.yaml"))
NETS = sorted(p.stem for p in (CONFIG_ROOT / "model" / "net").glob("*.yaml"))
# every net that plays the same roles (generator + discriminator, or encoder + decoder) fits a model
PAIRS = [(m, n) for m in MODELS for n in NETS if net_roles(n) == net_roles(default_net(m))]


@pytest.mark.parametrize(("model", "net"), PAIRS, ids=[f"{m}-{n}" for m, n in PAIRS])
@pytest.mark.parametrize("data", ["mnist", "cifar10"])
def test_every_model_builds_for_every_net_and_data_shape(compose_train, model, net, data):
    import torch

    cfg = compose_train(f"model={model}", f"model/net={net}", f"data={data}")
    module = build_module(cfg)
    images = module.sample(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, *cfg.data.image_shape)
    assert images.min() >= -1 and images.max() <= 1


def test_hydra_default_names_sweep_jobs_by_their_overrides_in_one_flat_folder(tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import get_class

    import genlab.commands.app  # noqa: F401  (registers the resolvers every command's config uses)
    from genlab.run.folder import RunFolderCheck

    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        for app, group_override in (("train", ["model/net=mlp"]), ("eval", []), ("sample", [])):
            cfg = compose(app, overrides=[*group_override, "seed=1", "hydra.job.num=3"], return_hydra_config=True)
            expected = "3_model.net=mlp,seed=1" if group_override else "3_seed=1"
            assert cfg.hydra.sweep.subdir == expected  # path_safe: no nested folder per "/"
            assert get_class(cfg.hydra.callbacks.run_folder_check._target_) is RunFolderCheck
    assert "ckpt_path" in cfg.hydra.job.config.override_dirname.exclude_keys


def test_experiments_pick_their_groups(compose_train):
    cfg = compose_train("experiment=dcgan_cifar10")
    assert cfg.data.image_shape == [3, 32, 32]
    assert cfg.model.net.generator._target_ == "genlab.nets.dcgan.Generator"


def test_the_ddpm_cifar10_preset_keeps_the_papers_objective_and_warm_up(compose_train):
    # Ho et al. 2020, appendix B: eps-prediction, linear betas, Adam 2e-4 warmed up over 5,000 steps, batch 128
    cfg = compose_train("experiment=ddpm_cifar10")
    assert (cfg.model.prediction, cfg.model.schedule, cfg.optimizer.lr, cfg.data.batch_size) == ("epsilon", "linear", 2e-4, 128)
    assert (cfg.optimizer.scheduler.total_iters, cfg.optimizer.scheduler.interval) == (5000, "step")
    assert cfg.model.net.denoiser.width == 128 and list(cfg.model.net.denoiser.channel_mults) == [1, 2, 2, 2]


def test_optimizer_lr_reaches_both_players(compose_train):
    cfg = compose_train("optimizer.lr=1e-3", "optimizer.discriminator.lr=4e-3")
    optimizer = instantiate(cfg.optimizer, _convert_="all")
    assert optimizer["generator"].keywords["lr"] == 1e-3
    assert optimizer["discriminator"].keywords["lr"] == 4e-3


def test_a_net_of_the_wrong_kind_is_refused_by_name(compose_train):
    from genlab.errors import ConfigError

    cfg = compose_train("model=vae", "model/net=dcgan")
    with pytest.raises(Exception) as raised:
        build_module(cfg)
    assert isinstance(raised.value.__cause__, ConfigError) or isinstance(raised.value, ConfigError)
    assert "model/net=conv_vae" in str(raised.value)


def test_each_model_picks_its_papers_optimizer(compose_train):
    wgan = compose_train("model=wgan")
    assert wgan.optimizer.generator._target_ == "torch.optim.RMSprop" and wgan.optimizer.lr == 5e-5
    gp = compose_train("model=wgan_gp")
    assert gp.optimizer.generator._target_ == "torch.optim.Adam"
    assert gp.optimizer.lr == 1e-4 and list(gp.optimizer.betas) == [0.0, 0.9]
    assert gp.model.net.discriminator.norm == "layer"
    # the command line still wins
    assert compose_train("model=wgan", "optimizer=adam", "optimizer.lr=3e-4").optimizer.lr == 3e-4


def test_the_objective_and_the_architecture_are_chosen_apart(compose_train):
    cfg = compose_train("model=wgan_gp", "model/net=mlp")
    assert cfg.model.regularizers.gradient_penalty.weight == 10 and cfg.model.net.generator._target_ == "genlab.nets.mlp.Generator"
    cfg = compose_train("model=gan", "model/net=dcgan")
    assert cfg.model.loss == "nonsaturating" and cfg.model.net.generator._target_ == "genlab.nets.dcgan.Generator"


def test_linear_decay_scheduler_reaches_zero_at_the_last_epoch(compose_train):
    import torch

    cfg = compose_train("optimizer/scheduler=linear_decay", "trainer.max_epochs=4")
    factories = instantiate(cfg.optimizer, _convert_="all")
    optimizer = factories["generator"]([torch.nn.Parameter(torch.zeros(1))])
    scheduler = factories["scheduler"](optimizer)
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([2e-4, 1.5e-4, 1e-4, 0.5e-4]) and optimizer.param_groups[0]["lr"] == 0
