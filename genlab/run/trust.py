"""A run folder is data, not code: what genlab reads from one is checked before anything is built from it.

`genlab eval` and `genlab sample` instantiate a run's <run>/.hydra/config.yaml, and `genlab train
ckpt_path=<run>/checkpoints/last.ckpt` composes its <run>/.hydra/overrides.yaml; a `_target_` in either
names a Python callable that Hydra imports and calls. A folder from someone else could name `os.system`,
or `torch.load` of a pickle shipped beside it. So, unless the command says `trust_run=true`:

- every `_target_`, at any depth (in mappings and in lists), must be one that genlab's own shipped
  configs (the YAML files of the `genlab.configs` package) contain, a class genlab defines (named where it
  is defined), a legacy target that genlab/run/legacy.py upgrades (LEGACY_TARGETS), or one that the resuming
  command's own line names;
- a replayed override may not touch Hydra's own settings (`hydra.searchpath` would load config from
  elsewhere), and a config group it picks must be one of genlab's shipped options (`model=../../x`
  would load any YAML file);
- `speed.compile_options` may not set torch.compile's `options` (inductor's `cpp.cxx` names a program to run);
- interpolations may use only the resolvers genlab's shipped configs use themselves (`hydra`,
  `oc.env`, `oc.select`, `now` and genlab's path helpers), never with a mapping written inside them,
  and never with a resolver name built from another value. Interpolations do run code when a value is
  read: `${oc.create:{_target_: os.system, ...}}` or `${oc.select:missing,{_target_: ...}}` turn text
  into a node with a `_target_` that this check, reading the file as written, cannot see, and Hydra
  instantiates it; other libraries may register resolvers of their own. The allowed ones only read:
  the running command's own Hydra settings, an environment variable, another key (which is checked
  too), the clock, or a path.

Checkpoints are loaded tensors-only (genlab/run/checkpoints.py) and CIFAR batches arrays-only
(genlab/data/formats.py), since data.root may point into the folder. The limit: genlab's own classes
still do what the values given to them say, e.g. read data from where the config points, and a resumed
run writes its outputs where its overrides put them.

`trust_run=true` skips the checks, for a folder the user trusts: a family of their own, defined in their
own package (like tests/edm.py with tests/configs/model/edm.yaml), is a target genlab does not ship, and
evaluating, sampling or resuming its runs needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from genlab.errors import ConfigError, first_line, require
from genlab.run.legacy import LEGACY_TARGETS

TRUST_KEY = "trust_run"
TARGET_KEY = "_target_"


@dataclass(frozen=True)
class Shipped:
    """What genlab's own configs contain: the callables they name, the resolvers they use, their group options."""

    targets: frozenset[str]
    resolvers: frozenset[str]
    options: Mapping[str, frozenset[str]]  # config group ("model/net") -> its options ("unet", ...)


@cache
def shipped() -> Shipped:
    """Read once from the installed `genlab.configs` package, so that a new YAML file is allowed by being shipped."""
    import yaml

    targets: set[str] = set()
    resolvers: set[str] = set()
    options: dict[str, set[str]] = {}
    for group, entry in yaml_files(files("genlab.configs")):
        content = yaml.safe_load(entry.read_text(encoding="utf-8"))
        if group:
            options.setdefault(group, set()).add(entry.name.removesuffix(".yaml"))
        for _, key, value in entries(content):
            if key == TARGET_KEY and isinstance(value, str):
                targets.add(value)
            if isinstance(value, str):
                resolvers.update(name for name, _ in interpolation_parts(value) if name)
    return Shipped(frozenset(targets | LEGACY_TARGETS.keys()), frozenset(resolvers),
                   {group: frozenset(names) for group, names in options.items()})


def yaml_files(folder: Traversable, group: str = "") -> Iterator[tuple[str, Traversable]]:
    """Every YAML file below `folder`, with the config group it belongs to ("" for the top level)."""
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from yaml_files(entry, f"{group}/{entry.name}".lstrip("/"))
        elif entry.name.endswith(".yaml"):
            yield group, entry


def entries(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(key path, key, value) of every entry of plain mappings and lists, at any depth, parents first."""
    if isinstance(node, Mapping):
        items = [(f"{path}.{key}" if path else str(key), key, value) for key, value in node.items()]
    elif isinstance(node, (list, tuple)):
        items = [(f"{path}[{index}]", index, value) for index, value in enumerate(node)]
    else:
        return
    for where, key, value in items:
        yield where, key, value
        yield from entries(value, where)


def interpolation_parts(text: str) -> list[tuple[str | None, str]]:
    """The resolvers an OmegaConf string calls, as (name, what is odd about the call): a name None is a
    resolver whose name is built from another value; a non-empty oddity, a mapping written inside it."""
    if "${" not in text:
        return []
    from omegaconf.errors import GrammarParseError
    from omegaconf.grammar_parser import parse

    try:
        tree = parse(text)
    except GrammarParseError:  # not an interpolation OmegaConf can run: it fails where the value is read
        return []
    return [part for node in tree_nodes(tree) for part in resolver_call(node)]


def tree_nodes(node: Any) -> Iterator[Any]:
    yield node
    for child in getattr(node, "children", None) or []:
        yield from tree_nodes(child)


def resolver_call(node: Any) -> list[tuple[str | None, str]]:
    """What tree_nodes' `node` calls: nothing, unless it is a `${name:...}` interpolation."""
    if type(node).__name__ == "InterpolationResolverContext":
        name = node.resolverName()
        dynamic = any(type(part).__name__ == "InterpolationContext" for part in tree_nodes(name))
        mapping = any(type(part).__name__ == "DictContainerContext" for part in tree_nodes(node))
        return [(None if dynamic else name.getText(), "a mapping written inside it" if mapping else "")]
    if type(node).__name__ == "DictContainerContext":  # `${a.b}` has none, but a resolver's argument may
        return [("", "a mapping written inside it")]
    return []


def trusted(trust: Any) -> bool:
    """`trust_run=true`: the command's user vouches for the run folder, and the checks are skipped."""
    require(isinstance(trust, bool), TRUST_KEY, trust, "true or false")
    return trust


def fix(folder: Path) -> str:
    return f"if you trust {folder}, add {TRUST_KEY}=true"


def shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def refusal(source: str, where: str, value: Any, why: str, folder: Path) -> ConfigError:
    """One line: the file, the key and its value, what is wrong, and the way out."""
    return ConfigError(f"{source}: {where}={shown(value)} {why}; {fix(folder)}")


@cache
def is_genlab_class(target: str) -> bool:
    """A class genlab itself defines, named where it is defined (`genlab.callbacks.timed_checkpoint.TimedCheckpoint`,
    which scripts add from the command line): only genlab's own modules are imported to tell, and a name that reaches
    elsewhere through one (`genlab.run.folder.shutil.rmtree`) or a function is no such class."""
    import inspect

    if not target.startswith("genlab."):
        return False
    from hydra.utils import get_object

    try:
        found = get_object(target)
    except Exception:
        return False
    return inspect.isclass(found) and f"{found.__module__}.{found.__qualname__}" == target and \
        found.__module__.startswith("genlab.")


def value_problem(key: Any, value: Any, vouched: frozenset[str] = frozenset()) -> str | None:
    """Why one entry of a run's config could run code that genlab's own configs do not (nor `vouched`), or None."""
    if key == TARGET_KEY and (not isinstance(value, str) or not (value in shipped().targets | vouched or is_genlab_class(value))):
        return "is not a class or function that genlab's own configs build, and a run folder may not name other code"
    if isinstance(value, str):
        for name, oddity in interpolation_parts(value):
            if name is None:
                return "calls a resolver whose name is built from another value, which genlab's own configs never do"
            if oddity:
                return f"has {oddity}, which genlab's own configs never do (it could build a {TARGET_KEY} unseen)"
            if name not in shipped().resolvers:
                return (f"uses the resolver {name}, which genlab's own configs do not use"
                        f" (it could run code, or build a {TARGET_KEY} unseen)")
    return None


def check_values(content: Any, source: str, folder: Path, prefix: str = "", vouched: frozenset[str] = frozenset()) -> None:
    """Refuse the first entry of `content` (plain mappings and lists) that value_problem finds fault with."""
    if prefix:  # an override's value: its key path is the override's key
        content = {prefix: content}
    for where, key, value in entries(content):
        problem = value_problem(str(key).rsplit(".", 1)[-1], value, vouched)
        if problem:
            raise refusal(source, where, value, problem, folder)


def check_config(cfg: DictConfig, source: str, folder: Path, vouched: frozenset[str] = frozenset()) -> None:
    """Refuse a config (a run's, or one composed from its overrides) that names code genlab does not ship
    (nor `vouched`: what this command's own line names), before anything in it is resolved or instantiated."""
    check_values(OmegaConf.to_container(cfg, resolve=False), source, folder, vouched=vouched)
    check_compile_options(cfg, source, folder)


def check_compile_options(cfg: DictConfig, source: str, folder: Path) -> None:
    """`speed.compile_options` may pick torch.compile's mode, backend (a registered name), dynamic, fullgraph,
    but not `options`: the backend's settings, where inductor's `cpp.cxx` names the compiler program it runs.
    Read resolved (only the resolvers allowed above are left), since an interpolation may hand it a mapping."""
    try:
        chosen = OmegaConf.select(cfg, "speed.compile_options")
        chosen = OmegaConf.to_container(chosen, resolve=True) if isinstance(chosen, DictConfig) else chosen
    except Exception as error:  # OmegaConf's own: what it would be when built cannot be told
        raise ConfigError(f"{source}: speed.compile_options cannot be resolved ({first_line(error)}); {fix(folder)}"
                          ) from None
    if isinstance(chosen, Mapping) and chosen.get("options"):
        raise refusal(source, "speed.compile_options.options", chosen["options"],
                      "sets torch.compile's backend settings, which name programs it runs (inductor's cpp.cxx)", folder)


def check_run_config(cfg: DictConfig, config_file: Path, trust: Any = False) -> None:
    """`genlab eval` and `genlab sample`: the run's .hydra/config.yaml, as read from `config_file`."""
    if not trusted(trust):
        check_config(cfg, str(config_file), config_file.parent.parent)


def targets_named(cfg: DictConfig) -> frozenset[str]:
    """Every `_target_` a config names: a resume's own command line vouches for those (a search that continues
    its own trial names its callbacks again), and a run folder may name them too."""
    content = OmegaConf.to_container(cfg, resolve=False)
    content.pop("hydra", None)  # Hydra's own launchers and callbacks are no part of a run
    return frozenset(value for _, key, value in entries(content) if key == TARGET_KEY and isinstance(value, str))


def check_resumed_run(folder: Path, replayed: Sequence[str], vouched: frozenset[str] = frozenset()) -> None:
    """`genlab train ckpt_path=<folder>/checkpoints/...`: the overrides a resume replays, and the run's
    config.yaml, which a resume reads too (to name what a misfit checkpoint differs in): a folder that
    names code genlab does not ship is refused as a whole, by every command."""
    config_file = folder / ".hydra" / "config.yaml"
    if config_file.is_file():
        check_config(read_config(config_file, folder), str(config_file), folder, vouched)
    check_overrides(replayed, folder / ".hydra" / "overrides.yaml", folder, vouched)


def read_config(config_file: Path, folder: Path) -> DictConfig:
    """A run's YAML file, or one line saying that it cannot be read."""
    try:
        cfg = OmegaConf.load(config_file)
    except Exception as error:  # YAML's own errors, several lines each
        raise ConfigError(f"{config_file} cannot be read as YAML ({first_line(error)}): the run folder {folder}"
                          " is damaged") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{config_file} holds a {type(cfg).__name__}, not a config: the run folder {folder} is damaged")
    return cfg


def is_hydra_key(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def check_overrides(overrides: Sequence[str], source: Path, folder: Path, vouched: frozenset[str] = frozenset()) -> None:
    """Refuse a replayed override (from `source`, the run's overrides.yaml) that names code genlab does not
    ship or loads config from outside genlab's own configs, before Hydra composes anything from it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for text in overrides:
        try:
            override = parser.parse_overrides([text])[0]
        except OverrideParseException as error:
            raise ConfigError(f"{source}: the override {text!r} cannot be read ({first_line(error)});"
                              f" {fix(folder)}") from None
        check_override(override, text, str(source), folder, vouched)


def check_override(override: Any, text: str, source: str, folder: Path, vouched: frozenset[str] = frozenset()) -> None:
    """One parsed override: Hydra's own keys, group options from elsewhere, then its value's targets and resolvers."""
    key = override.key_or_group
    if is_hydra_key(key):
        raise ConfigError(f"{source}: the override {text!r} changes Hydra's own settings (where configs are"
                          f" found, how jobs launch), which a resumed run never replays; {fix(folder)}")
    if loads_config_from_elsewhere(key, override.value()):
        options = shipped().options.get(key)
        listed = f" (its {key} options: {', '.join(sorted(options))})" if options else ""
        raise ConfigError(f"{source}: the override {text!r} loads config from outside genlab's own configs{listed};"
                          f" {fix(folder)}")
    if not override.is_delete():
        check_values(plain(override.value()), source, folder, prefix=key, vouched=vouched)


def loads_config_from_elsewhere(key: str, value: Any) -> bool:
    """A config group (`model`, `model/net`, any key with a slash) that genlab does not ship, or an option of one
    that it does not ship: Hydra would read it from another folder (`model=../../x` reads any YAML file)."""
    if "/" not in key and key not in shipped().options:
        return False  # a key, not a group
    choices = plain(value) if isinstance(plain(value), list) else [plain(value)]
    options = shipped().options.get(key, frozenset())
    return not all(choice is None or (isinstance(choice, str) and choice in options) for choice in choices)


def plain(value: Any) -> Any:
    """An override's parsed value as plain mappings and lists (a sweep's choices as a list)."""
    from hydra.core.override_parser.types import ChoiceSweep

    if isinstance(value, ChoiceSweep):
        return [plain(choice) for choice in value.list]
    return value
