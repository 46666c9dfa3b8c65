"""`genlab <command> --help [group]`, composed the way the command composes its config: by Hydra.

`genlab train --help` lists the groups the command's config uses and their options (Hydra's own app
help composes the whole config once per group option: seconds with genlab's groups), with the header
and footer of the command's own config (hydra.help in configs/<name>.yaml) and its own keys.
`genlab train --help model` shows each option of one group as Hydra composes it: what its file says it
is, the options it picks in other groups (model=wgan: optimizer=rmsprop), and every key it sets, with
its default value, as an override (a variant shows its parent's keys too). No torch is imported.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Iterator

# the groups of the Hydra app itself, not of the command
HYDRA_GROUPS = ("hydra/",)


def config_root() -> Path:
    return Path(str(files("genlab.configs")))


class Composer:
    """Hydra's config loader and compose for one primary config (configs/<name>.yaml), initialised once."""

    def __init__(self, config_name: str) -> None:
        from hydra import initialize_config_module
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()
        self.context = initialize_config_module("genlab.configs", version_base="1.3")
        self.context.__enter__()
        self.config_name = config_name
        self.loader = GlobalHydra.instance().config_loader()
        # the primary config as written, defaults list included, without composing it (that takes 0.3 s)
        self.primary = self.loader.repository.load_config(config_name)
        self._default: Any = None

    @property
    def default(self) -> Any:
        """The command's config composed without overrides (Hydra's node included)."""
        if self._default is None:
            self._default = self.compose()
        return self._default

    def compose(self, *overrides: str) -> Any:
        from hydra import compose

        return compose(self.config_name, overrides=list(overrides), return_hydra_config=True)

    def groups(self) -> dict[str, list[str]]:
        """Every group the command's config chooses from (those in its defaults list, and the groups nested in
        them), with its options; of Hydra's own groups, those genlab ships options for."""
        top = [entry.group for entry in self.primary.defaults_list or [] if getattr(entry, "group", None)]
        found: dict[str, list[str]] = {}

        from hydra.core.object_type import ObjectType

        repository = self.loader.repository  # its listings, without the loader's copy of it per call

        def add(group: str) -> None:
            if group.startswith(HYDRA_GROUPS) and not (config_root() / group).is_dir():
                return  # Hydra's own (hydra/env, hydra/help, ...): nothing of genlab's to choose
            options = sorted(set(repository.get_group_options(group, ObjectType.CONFIG)))
            if group == "hydra":
                options = [option for option in options if (config_root() / group / f"{option}.yaml").is_file()]
            if options:
                found[group] = options
            for nested in sorted(set(repository.get_group_options(group, ObjectType.GROUP))):
                add(f"{group}/{nested}")

        for group in top:
            add(group)
        return dict(sorted(found.items()))

    def default_option(self, group: str) -> str | None:
        """The option the primary config picks for `group` ("none" for null), or None for a nested group."""
        for entry in self.primary.defaults_list or []:
            if getattr(entry, "group", None) == group:
                return "none" if entry.value is None else str(entry.value)
        return None

    def close(self) -> None:
        from hydra.core.global_hydra import GlobalHydra

        self.context.__exit__(None, None, None)
        GlobalHydra.instance().clear()


def app_help(command: str, config_name: str) -> str:
    composer = Composer(config_name)
    try:
        text = composer.primary.config.hydra.help
        header, footer = (text.get("header") or f"genlab {command}").rstrip(), (text.get("footer") or "").rstrip()
        groups = composer.groups()
    finally:
        composer.close()
    width = max(map(len, groups), default=0)
    lines = [f"{name + ':':<{width + 1}} {', '.join(options)}" for name, options in groups.items()]
    # the command's own keys as its file documents them, comments included
    own_keys = (config_root() / f"{config_name}.yaml").read_text().split("\nhydra:")[0].rstrip().split("\n")
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


def description(text: str) -> list[str]:
    """The comment lines that open an option's file (after a @package header): what the option is."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.removeprefix("#").strip())
    return lines


def show(value: Any) -> str:
    """A default value as it is written on the command line (null, true, '', [1, 28, 28], {})."""
    import yaml

    if value == "":
        return "''"
    if value is None or isinstance(value, (bool, list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    return str(value)


def flat_keys(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, default) for every leaf below a mapping; empty mappings are leaves."""
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from flat_keys(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def option_help(composer: Composer, group: str, option: str) -> list[str]:
    """One option of a group as Hydra composes it: what its file says, what else it picks, each key it sets."""
    from omegaconf import OmegaConf

    relative = f"{group}/{option}.yaml"
    lines = [f"== {group}={option} (configs/{relative}) =="]
    path = config_root() / relative
    if path.is_file():
        lines += [f"  # {line}" for line in description(path.read_text()) if line]
    composed = composer.compose(f"{group}={option}")
    choices, default_choices = composed.hydra.runtime.choices, composer.default.hydra.runtime.choices
    picked = [f"{name}={show(choices[name])}" for name in choices
              if name != group and not name.startswith(HYDRA_GROUPS) and choices[name] != default_choices.get(name)]
    if picked:
        lines.append(f"  picks: {', '.join(picked)}")
    package = group.replace("/", ".")
    node = OmegaConf.select(composed, package)
    job = OmegaConf.to_container(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]), resolve=False)
    if node is not None:  # the group's own node
        keys = list(flat_keys(OmegaConf.to_container(node, resolve=False), package))
    else:  # a preset of global keys (experiment, debug, hparams_search): what it changes
        default = OmegaConf.to_container(OmegaConf.masked_copy(composer.default, [k for k in composer.default if k != "hydra"]),
                                         resolve=False)
        before = dict(flat_keys(default, ""))
        keys = [(key, value) for key, value in flat_keys(job, "") if before.get(key, object()) != value]
    lines += [f"  {key}={show(value)}" for key, value in keys]
    return lines


def group_help(command: str, config_name: str, group: str) -> str:
    """`genlab <command> --help <group>`: every option of the group with its keys and default values."""
    composer = Composer(config_name)
    try:
        groups = composer.groups()
        if group not in groups:
            raise UnknownGroup(f"genlab {command}: no config group {group!r}; choose one of: {', '.join(groups)}")
        default = composer.default_option(group)
        lines = [
            f"genlab {command} --help {group}: pick one option with {group}=<option>"
            + (f" (default: {default})" if default is not None else "") + "; override any key below with key=value",
        ]
        for option in groups[group]:
            lines += ["", *option_help(composer, group, option)]
    finally:
        composer.close()
    return "\n".join(lines)
