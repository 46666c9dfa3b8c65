"""A run folder from someone else cannot run code: `genlab eval`, `genlab sample` and a resume refuse, in one
line naming the key and the callable, a config or an override that names code genlab's own configs do not
(genlab/run/trust.py), before anything is built, and leave the folder as it was.

Each crafted folder holds a real (small) checkpoint and a config composed as `genlab train` composes it, with
one payload that would create a marker file if it ran; `trust_run=true` shows that the payloads are live.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from genlab.errors import ConfigError
from genlab.run.trust import check_config, check_overrides, shipped
from tests.conftest import run_genlab

SMALL = ("data=mnist", "model.latent_dim=8", "model.net.generator.base_channels=4",
         "model.net.discriminator.base_channels=4")
TRUST = "add trust_run=true"


def composed(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_module("genlab.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides))


class TouchesMarker:
    """Unpickled, it runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def touch(marker: Path) -> dict[str, Any]:
    return {"_target_": "os.system", "_args_": [f"touch {marker}"]}


def exec_touch(marker: Path) -> dict[str, Any]:
    return {"_target_": "builtins.exec", "_args_": [f"import pathlib; pathlib.Path({str(marker)!r}).touch()"]}


def foreign_model(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.model = touch(marker)


def pickle_beside_the_config(cfg: DictConfig, marker: Path, run: Path) -> None:
    (run / "weights.pt").write_bytes(pickle.dumps(TouchesMarker(marker)))
    cfg.model.net.generator.base_channels = {"_target_": "torch.load", "f": str(run / "weights.pt"), "weights_only": False}


def inside_a_list(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.model.net.generator.image_shape = [1, 28, exec_touch(marker)]


def in_the_data(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.data.source = touch(marker)


def made_by_a_resolver(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.model.net.discriminator.base_channels = f"${{oc.create:{{_target_: os.system, _args_: ['touch {marker}']}}}}"


def written_inside_a_select(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.model.net.discriminator.norm = f"${{oc.select:nowhere,{{_target_: os.system, _args_: ['touch {marker}']}}}}"


def compiler_in_the_folder(run: Path, marker: Path) -> dict[str, Any]:
    """torch.compile's options naming, as inductor's C++ compiler, a script beside the config."""
    script = run / "cxx.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexec g++ \"$@\"\n")
    script.chmod(0o755)
    return {"options": {"cpp.cxx": [None, str(script)]}}


def inductor_compiler(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.speed.compile, cfg.speed.compile_options = True, compiler_in_the_folder(run, marker)


def inductor_compiler_by_interpolation(cfg: DictConfig, marker: Path, run: Path) -> None:
    cfg.notes = compiler_in_the_folder(run, marker)
    cfg.speed.compile, cfg.speed.compile_options = True, "${oc.select:notes}"


def cifar_pickles_in_the_folder(cfg: DictConfig, marker: Path, run: Path) -> None:
    """Only genlab's own targets, but data.root in the run folder, whose CIFAR-10 batches are pickles that run code."""
    cfg.data = composed("data=cifar10").data
    cfg.data.root, cfg.data.image_shape = str(run / "data"), [1, 28, 28]  # SMALL's networks still fit
    (run / "data" / "cifar-10-batches-py").mkdir(parents=True)
    for name in ["test_batch", *(f"data_batch_{i}" for i in range(1, 6))]:
        (run / "data" / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(TouchesMarker(marker)))


# (name, what the config gets, the key and the callable or resolver that the error must name)
CONFIG_CASES: list[tuple[str, Callable[[DictConfig, Path, Path], None], str, str]] = [
    ("foreign-model-target", foreign_model, "model._target_=", "os.system"),
    ("torch-load-of-a-pickle-beside-it", pickle_beside_the_config, "model.net.generator.base_channels._target_=",
     "torch.load"),
    ("target-inside-a-list", inside_a_list, "model.net.generator.image_shape[2]._target_=", "builtins.exec"),
    ("target-in-the-data", in_the_data, "data.source._target_=", "os.system"),
    ("oc-create-resolver", made_by_a_resolver, "model.net.discriminator.base_channels=", "oc.create"),
    ("mapping-inside-oc-select", written_inside_a_select, "model.net.discriminator.norm=", "a mapping written inside it"),
    ("inductor-compiler", inductor_compiler, "speed.compile_options.options=", "cpp.cxx"),
    ("inductor-compiler-by-interpolation", inductor_compiler_by_interpolation, "speed.compile_options.options=", "cpp.cxx"),
]
# (name, the run's .hydra/overrides.yaml beyond SMALL (str.format: {root}, {marker}), what the error must name)
OVERRIDE_CASES = [
    ("override-sets-a-target", ["model.net.generator.base_channels={{_target_:os.system,_args_:['touch {marker}']}}"],
     ("model.net.generator.base_channels._target_=", "os.system")),
    ("override-adds-a-target-key", ["+model.net.generator._target_=builtins.exec"],
     ("model.net.generator._target_=", "builtins.exec")),
    ("searchpath-to-a-foreign-model", ["hydra.searchpath=[file://{root}/foreign_configs]", "model=evil"],
     ("model=evil", "outside genlab's own configs (its model options: acgan,")),
    ("group-option-outside-the-configs", ["model=../../../../../../../../../../..{root}/foreign_configs/model/evil"],
     ("model=", "outside genlab's own configs")),
    ("group-genlab-does-not-ship",
     ["+foreign/model@model.net.extra=../../../../../../../../../../..{root}/foreign_configs/model/evil"],
     ("+foreign/model@model.net.extra=", "outside genlab's own configs")),
    ("hydra-group", ["hydra=default"], ("hydra=default", "changes Hydra's own settings")),
    ("override-sets-compile-options", ["speed.compile=true", "speed.compile_options={{options:{{cpp.cxx:[null,g++]}}}}"],
     ("the config composed from", "speed.compile_options.options=", "cpp.cxx")),
]


def save_run(run: Path, cfg: DictConfig, overrides: list[str], weights: bytes) -> Path:
    """A run folder as genlab train leaves it: .hydra/config.yaml, .hydra/overrides.yaml, checkpoints/last.ckpt."""
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run / ".hydra" / "overrides.yaml")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(weights)
    return run / "checkpoints" / "last.ckpt"


def crafted_run(root: Path, name: str, tamper: Callable[[DictConfig, Path, Path], None] | None = None,
                overrides: tuple[str, ...] = ()) -> Path:
    """A folder trained as SMALL, whose config `tamper` changes or whose overrides.yaml adds `overrides`."""
    from genlab.builder import build_module

    cfg = composed(*SMALL)
    path = root / "weights.ckpt"
    if not path.is_file():
        torch.save({"state_dict": build_module(cfg).state_dict(), "epoch": 0, "global_step": 0}, path)
    run = root / name
    run.mkdir()
    if tamper is not None:
        with open_dict(cfg):
            tamper(cfg, root / "marker", run)
    places = {"root": root, "marker": root / "marker"}
    return save_run(run, cfg, [*SMALL, *(o.format(**places) for o in overrides)], path.read_bytes())


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The crafted run folders' parent; foreign_configs/model/evil.yaml is a family genlab does not ship."""
    root = tmp_path_factory.mktemp("trust")
    evil = root / "foreign_configs" / "model" / "evil.yaml"
    evil.parent.mkdir(parents=True)
    evil.write_text(f"_target_: os.system\n_args_: ['touch {root / 'marker'}']\n")
    return root


@pytest.fixture
def clean_env(monkeypatch) -> None:
    """Outputs land in the command's folder (no GENLAB_* settings)."""
    for name in [name for name in os.environ if name.startswith("GENLAB_")]:
        monkeypatch.delenv(name)


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file and folder below `folders`, with a hash of each file's bytes."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for folder in folders for p in sorted(folder.rglob("*"))}


def assert_refused(root: Path, cwd: Path, args: tuple[str, ...], *names: str) -> None:
    """The command exits non-zero with one `genlab: error:` line naming `names`, no traceback, nothing run or left."""
    before = snapshot(root, cwd)
    result = run_genlab(*args, cwd=cwd)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("genlab: error:")]
    assert len(errors) == 1, result.stderr
    assert all(name in errors[0] for name in names), errors[0]
    assert not (root / "marker").exists(), "the payload ran"
    assert snapshot(root, cwd) == before, "a refused command left something behind or changed a file"


def command(name: str, checkpoint: Path) -> tuple[str, ...]:
    """`genlab <name>` of `checkpoint`, on MNIST that is nowhere: past the checks, it would stop at the data at the latest."""
    options = {"eval": ("extractor=classifier", "n_samples=8"), "sample": ("n=4",), "train": ()}[name]
    return (name, f"ckpt_path={checkpoint}", f"paths.data_dir={checkpoint.parent / 'no_data'}", *options)


# every case under eval in the edit loop; sample and resume read the folder alike, in the whole suite
@pytest.mark.parametrize("name", ["eval", pytest.param("sample", marks=pytest.mark.slow),
                                  pytest.param("train", marks=pytest.mark.slow)])
@pytest.mark.parametrize(("case", "tamper", "key", "target"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_run_config_naming_code_genlab_does_not_ship_is_refused_by_key_before_it_runs(
        root, tmp_path, clean_env, name, case, tamper, key, target):
    folder = root / case
    checkpoint = folder / "checkpoints" / "last.ckpt" if folder.is_dir() else crafted_run(root, case, tamper)
    assert_refused(root, tmp_path, command(name, checkpoint), key, target, str(folder / ".hydra" / "config.yaml"), TRUST)


@pytest.mark.parametrize(("case", "overrides", "names"), OVERRIDE_CASES, ids=[c[0] for c in OVERRIDE_CASES])
def test_a_replayed_override_naming_foreign_code_or_configs_is_refused_before_hydra_composes_it(
        root, tmp_path, clean_env, case, overrides, names):
    checkpoint = crafted_run(root, case, overrides=tuple(overrides))
    assert_refused(root, tmp_path, command("train", checkpoint), *names, str(root / case / ".hydra" / "overrides.yaml"),
                   TRUST)


def test_a_target_the_resuming_command_names_itself_is_vouched_for_in_the_folder_it_resumes(tmp_path):
    # a search that continues its own interrupted trial names the trial's callbacks again: the user's own line
    from genlab.errors import ConfigError
    from genlab.run.trust import check_resumed_run, targets_named

    folder = tmp_path / "trial_1"
    (folder / ".hydra").mkdir(parents=True)
    override = "+callbacks.mine={_target_:my_package.MyCallback}"
    OmegaConf.save(OmegaConf.create([override]), folder / ".hydra" / "overrides.yaml")
    with pytest.raises(ConfigError, match="my_package.MyCallback"):
        check_resumed_run(folder, [override])
    command_line = OmegaConf.create({"callbacks": {"mine": {"_target_": "my_package.MyCallback"}},
                                     "hydra": {"launcher": {"_target_": "hydra.Launcher"}}})
    vouched = targets_named(command_line)
    assert vouched == {"my_package.MyCallback"}  # Hydra's own node vouches for nothing
    check_resumed_run(folder, [override], vouched)


def test_a_pickle_that_data_root_points_at_is_read_arrays_only(root, tmp_path, clean_env):
    checkpoint = crafted_run(root, "cifar-pickles-in-the-folder", cifar_pickles_in_the_folder)
    assert_refused(root, tmp_path, command("eval", checkpoint), "test_batch: not a CIFAR python batch",
                   "is not allowed in a CIFAR batch")


def test_trust_run_true_skips_the_checks_so_the_payloads_above_are_live(tmp_path, clean_env):
    checkpoint = crafted_run(tmp_path, "trusted", pickle_beside_the_config)
    run_genlab("sample", f"ckpt_path={checkpoint}", "n=4", "trust_run=true", cwd=tmp_path)
    assert (tmp_path / "marker").exists()


def test_trust_run_must_be_true_or_false(root, tmp_path, clean_env):
    checkpoint = crafted_run(root, "clean-for-a-bad-trust-value")
    assert_refused(root, tmp_path, (*command("sample", checkpoint), "trust_run=yes"), "trust_run='yes' is not valid")


@pytest.mark.slow  # composes every option of four groups
@pytest.mark.parametrize("group", ["model", "recipe", "experiment", "hparams_search"])
def test_every_shipped_option_composes_into_a_config_the_check_accepts(group):
    for option in sorted(shipped().options[group]):
        check_config(composed(f"{group}={option}"), f"{group}={option}", Path("."))


def test_the_shipped_overrides_of_a_run_pass_and_a_legacy_model_target_is_allowed():
    check_overrides(["model=wgan_gp", "model/net=mlp", "model/augment=null", "+model/augment=ada", "optimizer.lr=1e-4",
                     "tags=[a,b]", "~callbacks.sample_grid", "model.loss=hinge"], Path("overrides.yaml"), Path("."))
    check_config(OmegaConf.create({"model": {"_target_": "genlab.modules.gan.AdversarialModule"}}), "config.yaml", Path("."))


def test_the_shipped_configs_use_no_resolver_that_turns_text_into_config():
    assert shipped().resolvers.isdisjoint({"oc.create", "oc.decode"}) and {"oc.env", "hydra"} <= shipped().resolvers


def test_an_interpolation_whose_resolver_name_is_built_from_another_value_is_refused():
    with pytest.raises(ConfigError, match=r"data\.root=.*resolver whose name is built from another value"):
        check_config(OmegaConf.create({"x": "decode", "data": {"root": "${oc.${x}:'{a: 1}'}"}}), "config.yaml",
                     Path("."))


def test_a_class_genlab_defines_is_allowed_but_nothing_reached_through_its_modules():
    from genlab.run.trust import is_genlab_class, value_problem

    assert is_genlab_class("genlab.callbacks.timed_checkpoint.TimedCheckpoint")  # scripts add it on the command line
    for target in ("genlab.run.folder.shutil.rmtree",  # another module's function, reached through a genlab module
                   "genlab.run.folder.discard_refused_run",  # a genlab function: not a class
                   "genlab.nets.dcgan.nn.Module",  # torch's class, imported into a genlab module
                   "genlabx.evil.Thing", "os.system"):
        assert not is_genlab_class(target)
        assert value_problem("_target_", target) is not None
