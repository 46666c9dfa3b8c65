"""`genlab <command> --help`, read straight from the config files.

Hydra's own app help composes the whole config once per group option (over a second with
genlab's groups); this lists the same groups and options by reading the config folder, and
takes its header and footer from the command's own config (hydra.help in configs/<name>.yaml).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

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
        f"The whole composed config: genlab {command} --cfg job [overrides]",
        footer,
    ])
