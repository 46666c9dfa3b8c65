"""`genlab <command> --help [group]`, read straight from the config files.

Hydra's own app help composes the whole config once per group option (over a second with
genlab's groups); this lists the same groups and options by reading the config folder, and
takes its header and footer from the command's own config (hydra.help in configs/<name>.yaml).
`genlab train --help data` shows one group: each option's keys and default values, as overrides.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Iterator

import yaml


def config_root() -> Path:
    return Path(str(files("genlab.configs")))


def config_groups(root: Path) -> dict[str, list[str]]:
    """Every folder that holds YAML files is a group; its files are the options."""
    groups = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options:
            groups[folder.relative_to(root).as_posix()] = options
    return groups


def used_groups(root: Path, config_name: str, groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """The groups a primary config draws on: those in its defaults list, and the groups nested in them."""
    primary = yaml.safe_load((root / f"{config_name}.yaml").read_text()) or {}
    top = {next(iter(entry)) for entry in primary.get("defaults", []) if isinstance(entry, dict)}
    return {name: options for name, options in groups.items() if name.split("/")[0] in top}


def app_help(command: str, config_name: str) -> str:
    root = config_root()
    text = (yaml.safe_load((root / f"{config_name}.yaml").read_text()) or {}).get("hydra", {}).get("help", {})
    header, footer = text.get("header", f"genlab {command}").rstrip(), text.get("footer", "").rstrip()
    groups = used_groups(root, config_name, config_groups(root))
    width = max(map(len, groups), default=0)
    lines = [f"{name + ':':<{width + 1}} {', '.join(options)}" for name, options in groups.items()]
    own_keys = (root / f"{config_name}.yaml").read_text().split("\nhydra:")[0].rstrip().split("\n")
    return "\n".join([
        header, "",
        "== Config groups (pick one option each: group=option) ==", *lines, "",
        f"== configs/{config_name}.yaml (any key: key=value; a group's keys: group.key=value) ==",
        *own_keys,
        f"One group's options, each with its keys and defaults: genlab {command} --help <group>",
        f"The whole composed config: genlab {command} --cfg job [overrides]",
        footer,
    ])


class UnknownGroup(ValueError):
    """`--help <group>` named a group the command does not use; the message lists the valid ones."""


def package(text: str, group: str) -> str:
    """Where an option's keys land: its `# @package` header, else the group's path (model/net -> model.net)."""
    for line in text.splitlines():
        if line.startswith("# @package "):
            name = line.removeprefix("# @package ").strip()
            return "" if name == "_global_" else group.replace("/", ".") if name == "_group_" else name
        if line.strip() and not line.startswith("#"):
            break
    return group.replace("/", ".")


def description(text: str) -> list[str]:
    """The comment lines that open an option's file (after its @package header): what the option is."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.removeprefix("#").strip())
    return lines


def show(value: Any) -> str:
    """A default value as it is written on the command line (null, true, '', [1, 28, 28], {})."""
    if value == "":
        return "''"
    if value is None or isinstance(value, (bool, list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    return str(value)


def flat_keys(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, default) for every leaf below a YAML mapping; empty mappings are leaves."""
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from flat_keys(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def picks(defaults: list[Any], group: str) -> list[str]:
    """An option's own defaults list as full names: `model/net=dcgan`, `optimizer=adam`, `debug/default` (a file it builds on)."""
    choices = []
    for entry in defaults:
        if entry == "_self_":
            continue
        if isinstance(entry, str):
            choices.append(entry[1:] if entry.startswith("/") else f"{group}/{entry}")
            continue
        (key, value), = entry.items()
        name = key.removeprefix("override ").removeprefix("optional ").split("@")[0]
        name = name[1:] if name.startswith("/") else f"{group}/{name}"
        choices.append(f"{name}={show(value)}")
    return choices


def option_help(root: Path, group: str, option: str) -> list[str]:
    """One option of a group: what its file says it is, what it picks, and each key with its default."""
    text = (root / group / f"{option}.yaml").read_text()
    content = yaml.safe_load(text) or {}
    lines = [f"== {group}={option} (configs/{group}/{option}.yaml) =="]
    lines += [f"  # {line}" for line in description(text) if line]
    chosen = picks(content.pop("defaults", []), group)
    if chosen:
        lines.append(f"  defaults: {', '.join(chosen)}")
    if content:
        lines += [f"  {key}={show(value)}" for key, value in flat_keys(content, package(text, group))]
    return lines


def default_option(root: Path, config_name: str, group: str) -> str | None:
    """The option the command's primary config picks for a group (None for nested groups, which the parent picks)."""
    primary = yaml.safe_load((root / f"{config_name}.yaml").read_text()) or {}
    for entry in primary.get("defaults", []):
        if isinstance(entry, dict) and group in entry:
            return "none" if entry[group] is None else show(entry[group])
    return None


def group_help(command: str, config_name: str, group: str) -> str:
    """`genlab <command> --help <group>`: every option of the group with its keys and default values."""
    root = config_root()
    groups = used_groups(root, config_name, config_groups(root))
    if group not in groups:
        raise UnknownGroup(f"genlab {command}: no config group {group!r}; choose one of: {', '.join(groups)}")
    default = default_option(root, config_name, group)
    lines = [
        f"genlab {command} --help {group}: pick one option with {group}=<option>"
        + (f" (default: {default})" if default is not None else "") + "; override any key below with key=value",
    ]
    for option in groups[group]:
        lines += ["", *option_help(root, group, option)]
    return "\n".join(lines)
