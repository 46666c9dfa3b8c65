"""Every declared key of every command is checked: a value of the wrong type and one out of range are each
refused in one line that names the key, before the command starts (genlab/schema/)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterator

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from genlab.commands.app import register_resolvers
from genlab.errors import ConfigError
from genlab.schema import COMMANDS, check_command
from genlab.schema.rules import Rule
from genlab.schema.walk import Schema

# each command's config as the user meets it, and variants that hold the keys only some options have
VARIANTS = {
    "train": [[], ["optimizer=rmsprop"], ["optimizer=sgd", "optimizer/scheduler=cosine"], ["optimizer/scheduler=warmup"],
              ["model.ema.decay=0.999"], ["trainer=ddp_cpu"], ["model=ddpm"], ["model=pix2pix", "task=inpaint"],
              ["model=reflow", "model.teacher.ckpt_path=run/checkpoints/last.ckpt"]],
    "eval": [["ckpt_path=run/checkpoints/last.ckpt"]],
    "sample": [["ckpt_path=run/checkpoints/last.ckpt"]],
    "export": [["ckpt_path=run/checkpoints/last.ckpt", "out=exported"]],
}


def declared_keys(schema: type[Schema], prefix: str = "") -> Iterator[tuple[str, Rule]]:
    """(key, rule) of every value the schema declares, nested nodes walked."""
    for spec in fields(schema):
        if "node" in spec.metadata:
            yield from declared_keys(spec.metadata["node"], f"{prefix}{spec.name}.")
        else:
            yield f"{prefix}{spec.name}", spec.metadata["rule"]


def composed(command: str, overrides: list[str]) -> DictConfig:
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        cfg = compose(command, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def configs() -> dict[str, list[DictConfig]]:
    return {command: [composed(command, overrides) for overrides in variants] for command, variants in VARIANTS.items()}


def with_value(cfg: DictConfig, key: str, value: Any) -> DictConfig:
    changed = cfg.copy()
    with open_dict(changed):
        OmegaConf.update(changed, key, value, force_add=True, merge=False)
    return changed


def holding(configs: list[DictConfig], key: str) -> DictConfig:
    """The first variant whose node above `key` exists (a scheduler's keys need a scheduler)."""
    parent = key.rsplit(".", 1)[0] if "." in key else None
    for cfg in configs:
        if parent is None or OmegaConf.select(cfg, parent) is not None:
            return cfg
    raise AssertionError(f"no variant of the config holds {parent}")


CASES = [(command, key, rule) for command, (schema, _) in COMMANDS.items() for key, rule in declared_keys(schema)]


def test_every_shipped_config_passes_its_schema(configs):
    for command, variants in configs.items():
        for cfg in variants:
            if OmegaConf.select(cfg, "trainer.accelerator") in ("gpu", "cuda"):
                continue
            check_command(command, cfg)


@pytest.mark.parametrize(("command", "key", "rule"), CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_each_declared_key_refuses_a_wrong_type_and_an_out_of_range_value_in_one_line(configs, command, key, rule):
    if rule.expected == "anything":  # a value genlab computes (a run's folder) or Lightning's list checks (precision)
        return
    assert rule.refused, f"{key} declares no value it refuses"
    cfg = holding(configs[command], key)
    for value in rule.refused:
        assert not rule(value)
        with pytest.raises(ConfigError) as refused:
            check_command(command, with_value(cfg, key, value))
        message = str(refused.value)
        assert "\n" not in message
        # the key itself, or a key whose value follows it (data.root follows paths.data_dir), checked first
        assert message.startswith(f"{key}=") or f"(it follows {key}: set that)" in message, message
        if message.startswith(f"{key}="):
            assert f"it must be {rule.expected}" in message


def test_a_key_that_no_node_declares_or_takes_is_refused_by_name(configs):
    train = configs["train"][0]
    for key, names in [("foo", "genlab train's config"), ("budget.foo", "budget"),
                       ("model.foo", "genlab.families.gan.GAN"), ("trainer.foo", "pytorch_lightning.Trainer"),
                       ("callbacks.sample_grid.foo", "SampleGrid"), ("model.net.generator.foo", "generator"),
                       ("optimizer.generator.foo", "torch.optim.Adam")]:
        with pytest.raises(ConfigError, match=rf"^{key} is not .*{names}"):
            check_command("train", with_value(train, key, 1))
    with pytest.raises(ConfigError, match="^foo is not a key of genlab sample's config"):
        check_command("sample", with_value(configs["sample"][0], "foo", 1))
    # a family's own argument, and a Trainer argument genlab's files do not set, are welcome
    check_command("train", with_value(with_value(train, "model.n_critic", 2), "trainer.num_sanity_val_steps", 0))


@pytest.mark.parametrize(("overrides", "names"), [
    (["trainer.max_epochs=-1"], "never ends"),
    (["+trainer.gradient_clip_val=1.0"], "use optimizer.clip_grad_norm"),
    (["+trainer.accumulate_grad_batches=2"], "raise data.batch_size"),
    (["trainer.devices=3"], "trainer=ddp_cpu"),
    (["trainer.precision=nonsense"], "bf16-mixed"),
    (["optimizer/scheduler=cosine", "trainer.max_epochs=-1", "budget.images=64"], "it follows trainer.max_epochs"),
])
def test_keys_lightning_reads_are_checked_against_each_other_and_the_machine(overrides, names):
    with pytest.raises(ConfigError, match=names):
        check_command("train", composed("train", overrides))


def test_a_gpu_is_asked_for_only_where_there_is_one(monkeypatch):
    import genlab.schema.machine as machine

    monkeypatch.setattr(machine, "gpu_count", lambda: 0)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        check_command("train", composed("train", ["trainer=gpu"]))
    with pytest.raises(ConfigError, match="^device=cuda: this machine has no CUDA GPU"):
        check_command("sample", composed("sample", ["ckpt_path=x.ckpt", "device=cuda"]))
    monkeypatch.setattr(machine, "gpu_count", lambda: 1)
    check_command("train", composed("train", ["trainer=gpu"]))
    with pytest.raises(ConfigError, match="has 1 GPU"):
        check_command("train", composed("train", ["trainer=gpu", "trainer.devices=2"]))
