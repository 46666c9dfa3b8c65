"""Every option of every config group composes, resolves and builds its objects, read the way `genlab train`
reads them: through Hydra's compose. Groups set only their own keys; variants extend their parents."""

from __future__ import annotations

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from genlab.builder import build_module
from genlab.commands.help import config_root


def group_options() -> dict[str, list[str]]:
    """Every config group genlab ships and its options, as Hydra's config loader lists them."""
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def walk(parent: str) -> dict[str, list[str]]:
            found = {}
            for name in loader.list_groups(parent):
                group = f"{parent}/{name}" if parent else name
                options = loader.get_group_options(group)
                if options:
                    found[group] = options
                found.update(walk(group))
            return found

        return walk("")


GROUPS = group_options()
# the recipes compose in tests/test_recipes.py, each against the overrides its table measured
OPTIONS = [(group, option) for group, options in sorted(GROUPS.items()) if not group.startswith(("hydra", "recipe"))
           for option in options]
MODELS = GROUPS["model"]


def composed(*overrides: str, hydra: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def test_the_groups_the_cli_promises_exist():
    for group in ("data", "model", "model/net", "optimizer", "trainer", "logger", "callbacks", "paths", "hydra",
                  "experiment", "debug", "hparams_search"):
        assert group in GROUPS


# a sweep over every option of every group (93 composes): the full suite's, not the edit loop's
@pytest.mark.slow
@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_resolves(compose_train, group, option):
    from hydra.core.hydra_config import HydraConfig

    from omegaconf.errors import InterpolationToMissingValueError

    # data=folder has no default folder: the user names theirs
    needed = ["data.root=/home/me/pictures"] if (group, option) == ("data", "folder") else []
    cfg = compose_train(f"{group}={option}", *needed, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # as inside a job: ${hydra:...} reads the job's Hydra config
    try:
        job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
        if (group, option) == ("hparams_search", "optuna_base"):  # what every preset shares, not a search itself
            with pytest.raises(InterpolationToMissingValueError, match="hydra.sweeper.study_name"):
                OmegaConf.to_container(job, resolve=True)
            return
        container = OmegaConf.to_container(job, resolve=True)
    finally:
        HydraConfig.instance().cfg = None
    assert container["model"]["_target_"] and container["data"]["_target_"]


LAUNCHERS = [("hydra/launcher", option) for option in GROUPS["hydra/launcher"]]


@pytest.mark.parametrize(("group", "option"), LAUNCHERS, ids=[f"{g}={o}" for g, o in LAUNCHERS])
def test_every_launcher_names_a_launcher_class(group, option):
    cfg = composed(f"{group}={option}", hydra=True)
    target = cfg.hydra.launcher._target_
    package = target.split(".")[1]  # hydra_plugins.<package>...
    try:
        launcher = get_class(target)
    except ImportError:  # an optional extra (genlab[cluster]) that this environment lacks
        pytest.importorskip(f"hydra_plugins.{package}")
        raise
    from hydra.plugins.launcher import Launcher

    assert issubclass(launcher, Launcher)


SEARCH_PARTS = [(group, option) for group in ("hydra/sweeper/pruner", "hydra/sweeper/sampler") for option in GROUPS[group]]


@pytest.mark.parametrize(("group", "option"), SEARCH_PARTS, ids=[f"{g}={o}" for g, o in SEARCH_PARTS])
def test_every_pruner_and_sampler_of_the_search_builds(group, option):
    import optuna

    from genlab.search.builders import build_pruner, build_sampler

    cfg = composed("hparams_search=vae_optuna", f"{group}={option}", hydra=True)
    sweeper = cfg.hydra.sweeper
    assert get_class(sweeper._target_).__name__ == "GenlabOptunaSweeper"
    if group.endswith("pruner"):
        assert isinstance(build_pruner(sweeper.pruner), optuna.pruners.BasePruner)
    else:
        assert isinstance(build_sampler(sweeper.sampler), optuna.samplers.BaseSampler)


def test_hydra_default_names_sweep_jobs_by_their_overrides_in_one_flat_folder():
    from genlab.commands.app import register_resolvers
    from genlab.commands.hydra_callbacks import ReportCommand, RunFolderCheck

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        for app, group_override in (("train", ["model/net=mlp"]), ("eval", []), ("sample", [])):
            cfg = compose(app, overrides=[*group_override, "seed=1", "hydra.job.num=3"], return_hydra_config=True)
            expected = "3_model.net=mlp,seed=1" if group_override else "3_seed=1"
            assert cfg.hydra.sweep.subdir == expected  # path_safe: no nested folder per "/"
            assert get_class(cfg.hydra.callbacks.run_folder_check._target_) is RunFolderCheck
            assert get_class(cfg.hydra.callbacks.report_command._target_) is ReportCommand
    assert "ckpt_path" in cfg.hydra.job.config.override_dirname.exclude_keys


def option_chain(group: str, option: str) -> list[dict]:
    """An option's YAML file and the files of the same group it extends (a bare name in its defaults list),
    parents first: what the parametrize lists below read at collection, where composing each of the 28 models
    and 11 nets through Hydra cost every xdist worker about 7 s. test_a_model_option_sets_its_own_keys... checks
    what this reads against the composed config."""
    text = yaml.safe_load((config_root() / group / f"{option}.yaml").read_text()) or {}
    parents = [entry for entry in text.get("defaults", []) if isinstance(entry, str) and entry != "_self_"]
    return [node for parent in parents for node in option_chain(group, parent)] + [text]


def net_choice(chain: list[dict]) -> str:
    """The model/net option a model's chain picks (`net: x`, or a parent's overridden by `override net: x`)."""
    choices = [value for node in chain for entry in node.get("defaults", [])
               if isinstance(entry, dict) for key, value in entry.items() if key in ("net", "override net")]
    return choices[-1]


def net_roles(net: str) -> set[str]:
    """The roles a net option's networks fill (generator + discriminator, encoder + decoder, denoiser)."""
    return {key for node in option_chain("model/net", net) for key in node if key != "defaults"}


NET_ROLES = {net: net_roles(net) for net in GROUPS["model/net"]}
MODEL_CHAINS = {model: option_chain("model", model) for model in MODELS}
MODEL_NETS = {model: net_choice(chain) for model, chain in MODEL_CHAINS.items()}
# the image-to-image families (their config takes the task) and their nets, which they size from the task
TRANSLATION = {model for model, chain in MODEL_CHAINS.items() if any("task" in node for node in chain)}
TRANSLATION_NETS = {MODEL_NETS[model] for model in TRANSLATION}
# every model on its own nets, and every net under the first model (alphabetically) whose nets play its roles:
# each objective and each network built once per data shape (a net fits every model of its roles)
PAIRS = sorted({(m, n) for m, n in MODEL_NETS.items()} | {
    (next(m for m in MODELS if m not in TRANSLATION and NET_ROLES[MODEL_NETS[m]] == NET_ROLES[n]), n)
    for n in GROUPS["model/net"] if n not in TRANSLATION_NETS})


# every model and net built for both data shapes (66 builds): the full suite's, not the edit loop's
@pytest.mark.slow
@pytest.mark.parametrize(("model", "net"), PAIRS, ids=[f"{m}-{n}" for m, n in PAIRS])
@pytest.mark.parametrize("data", ["mnist", "cifar10"])
def test_every_model_builds_for_every_net_and_data_shape(compose_train, model, net, data):
    if model in TRANSLATION:  # from a task's input: inpainting (CycleGAN's: the unpaired styles)
        cfg = compose_train(f"model={model}", f"model/net={net}", f"data={data}",
                            f"task={'restyle' if model == 'cyclegan' else 'inpaint'}", "model.sampler.steps=2"
                            if model.startswith("palette") else "seed=1")
        module = build_module(cfg)
        task = module.family.task
        source = task.fixed_pair(torch.rand(2, *cfg.data.image_shape) * 2 - 1, seed=0).source
        images = module.sample(noise=source, generator=torch.Generator().manual_seed(0), ema=False)
        assert images.shape == (2, *task.target_shape) and images.min() >= -1 and images.max() <= 1
        return
    cfg = compose_train(f"model={model}", f"model/net={net}", f"data={data}")
    module = build_module(cfg)
    # the raw weights: an EMA's standing statistics (tests/test_ema.py) would run the generator 16 batches more
    images = module.sample(2, generator=torch.Generator().manual_seed(0), ema=False)
    assert images.shape == (2, *cfg.data.image_shape)
    assert images.min() >= -1 and images.max() <= 1


def without(cfg, *keys: str) -> dict:
    container = OmegaConf.to_container(cfg, resolve=False)
    for key in keys:
        container.pop(key)
    return container


@pytest.mark.parametrize("model", MODELS)
def test_a_model_option_sets_its_own_keys_and_picks_its_papers_optimizer_option(model):
    # everything outside `model` is what the default model with the same optimizer option composes:
    # a model file reaches no other group's keys
    cfg = composed(f"model={model}", hydra=True)
    optimizer = cfg.hydra.runtime.choices.optimizer
    assert without(cfg, "model", "hydra") == without(composed(f"optimizer={optimizer}"), "model")
    # what the parametrize lists read from the YAML files is what Hydra composes
    assert cfg.hydra.runtime.choices["model/net"] == MODEL_NETS[model]
    assert set(cfg.model.net) == NET_ROLES[MODEL_NETS[model]]
    assert ("task" in cfg.model) == (model in TRANSLATION)


def test_an_explicit_optimizer_gets_its_own_settings_and_the_papers_stays_the_default():
    wgan = composed("model=wgan")
    assert wgan.optimizer.generator._target_ == "torch.optim.RMSprop" and wgan.optimizer.lr == 5e-5
    adam = composed("model=wgan", "optimizer=adam").optimizer
    assert adam == composed("optimizer=adam").optimizer  # configs/optimizer/adam.yaml's settings, not WGAN's rate
    assert (adam.generator._target_, adam.lr, list(adam.betas)) == ("torch.optim.Adam", 2e-4, [0.5, 0.999])
    gp = composed("model=wgan_gp")
    assert gp.optimizer.lr == 1e-4 and list(gp.optimizer.betas) == [0.0, 0.9]
    assert gp.model.net.discriminator.norm == "layer"
    assert composed("model=wgan", "optimizer=adam", "optimizer.lr=3e-4").optimizer.lr == 3e-4  # the command line wins
    # the denoising families' optimizer clips the gradients, as Ho et al. did; a batch size is the data's
    ddpm = composed("model=ddpm", "data=cifar10")
    assert ddpm.optimizer.clip_grad_norm == 1.0 and ddpm.data.batch_size == 128 and ddpm.trainer.get("gradient_clip_val") is None


VARIANTS = [  # (variant, parent, the model keys where they differ)
    ("dcgan", "gan", {"net"}),
    ("lsgan", "dcgan", {"loss"}),
    ("sngan", "dcgan", {"latent_dim", "loss", "net"}),
    ("wgan", "dcgan", {"loss", "n_critic", "regularizers"}),
    ("cvae", "vae", {"num_classes"}),
    ("cddpm", "ddpm", {"num_classes", "sampler"}),
    ("cflow", "flow", {"num_classes", "sampler"}),
]


@pytest.mark.parametrize(("variant", "parent", "differences"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_a_variant_is_its_parent_with_its_own_keys_changed(variant, parent, differences):
    mine, theirs = (OmegaConf.to_container(composed(f"model={m}").model) for m in (variant, parent))
    assert {key for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key)} == differences


def test_experiments_pick_their_groups(compose_train):
    cfg = compose_train("experiment=dcgan_cifar10")
    assert cfg.data.image_shape == [3, 32, 32]
    assert cfg.model.net.generator._target_ == "genlab.nets.dcgan.Generator"


def test_the_ddpm_cifar10_preset_keeps_the_papers_objective_and_warm_up(compose_train):
    # Ho et al. 2020, appendix B: eps-prediction, linear betas, Adam 2e-4 warmed up over 5,000 steps, batch 128, clipping at 1
    cfg = compose_train("experiment=ddpm_cifar10")
    assert (cfg.model.prediction, cfg.model.schedule, cfg.optimizer.lr, cfg.data.batch_size) == ("epsilon", "linear", 2e-4, 128)
    assert (cfg.optimizer.scheduler.total_iters, cfg.optimizer.scheduler.interval) == (5000, "step")
    assert cfg.optimizer.clip_grad_norm == 1.0
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


def test_the_objective_and_the_architecture_are_chosen_apart(compose_train):
    cfg = compose_train("model=wgan_gp", "model/net=mlp")
    assert cfg.model.regularizers.gradient_penalty.weight == 10 and cfg.model.net.generator._target_ == "genlab.nets.mlp.Generator"
    cfg = compose_train("model=gan", "model/net=dcgan")
    assert cfg.model.loss == "nonsaturating" and cfg.model.net.generator._target_ == "genlab.nets.dcgan.Generator"


def test_linear_decay_scheduler_reaches_zero_at_the_last_epoch(compose_train):
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
