"""Walking a composed config against its command's declared schema: every key's value against its rule,
every key the schema does not declare against what may take it.

A schema is a dataclass whose fields are the keys of one config node: `key(rule)` for a value,
`node(Schema)` for a nested node. What a node does with keys it does not declare is its `extra`:
- "closed": none may be added (`+budget.foo=1` is refused);
- "target": the node is built by `_target_` (a Trainer, a family, an optimizer): a key must be one of
  that callable's arguments, and nested nodes with a `_target_` of their own are checked alike;
- "targets": a mapping of named nodes, each null or built by its `_target_` (callbacks, loggers);
- "open": a mapping whose keys a class checks where it is built (a sampler's options).

Why dataclasses, and not Hydra's structured configs as the YAML files' schema: a group's keys depend on
the option chosen (a GAN's `n_critic`, a VAE's `kl_weight`: the `_target_`'s arguments), ranges ("a
positive integer", "in [0, 1)") are not types, and Hydra reports a schema error as a paragraph at
compose time; walked here, after Hydra composed and before anything starts, each refusal is one line.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import field, fields
from functools import cache
from typing import Any, ClassVar, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from genlab.errors import ConfigError, first_line, missing_value
from genlab.schema.rules import Rule

# Hydra's own keys of a node it instantiates
INSTANTIATE_KEYS = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


class Schema:
    """Base of the declared nodes: what they do with keys they do not declare (see the module's docstring)."""

    extra: ClassVar[str] = "closed"


def key(rule: Rule) -> Any:
    """A declared key holding a value that `rule` accepts (absent keys are not required: options differ)."""
    return field(default=None, metadata={"rule": rule})


def node(schema: type[Schema], nullable: bool = False) -> Any:
    """A declared key holding a nested node of `schema` (or null, when `nullable`)."""
    return field(default=None, metadata={"node": schema, "nullable": nullable})


class Unresolved:
    """A value Hydra computes only once the job runs (`${hydra:runtime.output_dir}`): checked where it is used."""


def value_of(parent: DictConfig, name: str, key_name: str) -> Any:
    """The resolved plain value of `parent[name]`, or Unresolved."""
    try:
        value = parent[name]
        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
        return value
    except MissingMandatoryValue:
        raise missing_value(key_name) from None
    except OmegaConfBaseException as error:
        message = first_line(error)
        if "hydra" in message.lower() or "HydraConfig" in message:
            return Unresolved
        raise ConfigError(f"{key_name} does not resolve: {message}") from None


def interpolation_of(parent: DictConfig, name: str) -> str | None:
    child = parent._get_node(name)
    return str(child._value()) if child is not None and child._is_interpolation() else None


def shown(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value).replace('"', "")
    return "null" if value is None else str(value)


def refusal(key_name: str, value: Any, rule: Rule, source: str | None) -> ConfigError:
    """One line: the key, the value, what it must be (and the key it follows, when its value is another's)."""
    followed = re.fullmatch(r"\$\{([\w.]+)\}", source or "")
    origin = f" (it follows {followed.group(1)}: set that)" if followed else f" (it comes from {source})" if source else ""
    return ConfigError(f"{key_name}={shown(value)} is not valid: it must be {rule.expected}{origin}")


def check(config: DictConfig, schema: type[Schema], prefix: str = "", where: str = "", ignore: tuple[str, ...] = ()) -> None:
    """Refuse, with one ConfigError, the first key of `config` that `schema` does not allow (`ignore`: keys not its)."""
    declared = {f.name: f for f in fields(schema)}
    for name in [str(name) for name in config.keys() if name not in ignore]:
        key_name = f"{prefix}{name}"
        spec = declared.get(name)
        if spec is None:
            check_undeclared(config, name, key_name, schema, where or prefix.rstrip("."))
        elif "node" in spec.metadata:
            check_node(config, name, key_name, spec.metadata["node"], spec.metadata["nullable"])
        else:
            value = value_of(config, name, key_name)
            rule: Rule = spec.metadata["rule"]
            if value is not Unresolved and not rule(value):
                raise refusal(key_name, value, rule, interpolation_of(config, name))


def check_node(config: DictConfig, name: str, key_name: str, schema: type[Schema], nullable: bool) -> None:
    """A declared nested node: a mapping checked against `schema`, or null where that is allowed."""
    raw = config._get_node(name)
    if isinstance(raw, DictConfig) and not raw._is_none() and not raw._is_interpolation():
        check(config[name], schema, f"{key_name}.")
        return
    value = value_of(config, name, key_name)
    if value is Unresolved or (value is None and nullable):
        return
    if isinstance(value, dict):  # an interpolated node (`classifier: ${classifier}`)
        check(OmegaConf.create(value), schema, f"{key_name}.")
        return
    what = "null or a mapping" if nullable else "a mapping"
    raise ConfigError(f"{key_name}={value!r} is not valid: it must be {what} of its keys")


def check_undeclared(config: DictConfig, name: str, key_name: str, schema: type[Schema], where: str) -> None:
    """A key that `schema` does not declare: refused, unless the node is built by a callable that takes it."""
    if schema.extra == "open":
        return
    if schema.extra == "target":
        target = config.get("_target_")
        if name not in INSTANTIATE_KEYS:
            check_argument(target, name, key_name)
        check_targets_below(config.get(name), key_name)
        return
    if schema.extra == "targets":
        entry = config.get(name)
        if entry is not None and not (isinstance(entry, DictConfig) and "_target_" in entry):
            raise ConfigError(f"{key_name} is not valid: each entry of {where} is null (off) or a node with a _target_")
        check_targets_below(entry, key_name)
        return
    known = ", ".join(f.name for f in fields(schema))
    place = f"genlab {where}'s config" if "." not in key_name else where
    raise ConfigError(f"{key_name} is not a key of {place}: drop it, or pick one of {known}")


def check_targets_below(value: Any, key_name: str) -> None:
    """Every node at or below `value` that has a `_target_` holds only arguments that callable takes."""
    for path, child in target_nodes(value, key_name):
        for name in child.keys():
            if str(name) not in INSTANTIATE_KEYS:
                check_argument(child.get("_target_"), str(name), f"{path}.{name}")


def target_nodes(value: Any, key_name: str) -> Iterator[tuple[str, DictConfig]]:
    if isinstance(value, DictConfig):
        if "_target_" in value:
            yield key_name, value
        for name in value.keys():
            child = value._get_node(name)
            if isinstance(child, (DictConfig, ListConfig)):
                yield from target_nodes(value.get(name), f"{key_name}.{name}")
    elif isinstance(value, ListConfig):
        for index, item in enumerate(value):
            yield from target_nodes(item, f"{key_name}[{index}]")


def arguments_of(target: str, key_name: str) -> frozenset[str] | None:
    """The keyword arguments `target` takes, or None when it takes any (**kwargs)."""
    found = signature_of(target)
    if isinstance(found, str):  # an unimportable name: Hydra would say so in a paragraph
        raise ConfigError(f"{key_name}._target_={target!r} cannot be imported ({found}): check its spelling")
    return found


@cache
def signature_of(target: str) -> frozenset[str] | None | str:
    """`target`'s keyword arguments (None: any), or why it cannot be imported; looked up once per command."""
    from hydra.utils import get_object

    try:
        callable_ = get_object(target)
    except Exception as error:
        return first_line(error)
    try:
        parameters = inspect.signature(callable_).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters
                     if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


def check_argument(target: Any, name: str, key_name: str) -> None:
    """Refuse `key_name` when the node's `_target_` takes no argument `name`."""
    if not isinstance(target, str):
        return
    parent = key_name.rsplit(".", 1)[0]
    accepted = arguments_of(target, parent)
    if accepted is not None and name not in accepted:
        listed = ", ".join(sorted(accepted - {"self", "params", "optimizer"}))
        raise ConfigError(f"{key_name} is not an argument of {target} ({parent}._target_): drop it, or pick one of {listed}")
