"""The `genlab` command: picks a subcommand, hands the remaining arguments to Hydra.

Kept free of heavy imports so that `genlab --help` answers at once; torch and Lightning
load only when a subcommand starts working.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

# name -> (module with a `main(argv)` entry point, one-line description): a Hydra command's main takes the
# whole `genlab <command> ...` line, report's its own arguments
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("genlab.commands.train", "train a model: genlab train model=wgan_gp data=cifar10"),
    "eval": ("genlab.commands.evaluate", "sample-quality metrics: genlab eval ckpt_path=<run>/checkpoints/best.ckpt"),
    "sample": ("genlab.commands.sample", "a sample grid and a latent walk: genlab sample ckpt_path=<run>/checkpoints/last.ckpt"),
    "report": ("genlab.commands.report", "compare runs: genlab report outputs/train/multiruns/<date>"),
    "export": ("genlab.commands.export", "a run as a shareable folder: genlab export ckpt_path=<run>/checkpoints/best.ckpt out=<folder>"),
}

# subcommands that are Hydra apps -> their primary config (configs/<name>.yaml)
HYDRA_APPS = {"train": "train", "eval": "eval", "sample": "sample", "export": "export"}

USAGE = """usage: genlab <command> [hydra overrides] [--help]

Train and compare generative image models (GANs, VAEs) from the command line.

commands:
{commands}

`genlab <command> --help` lists the config groups; `genlab <command> --help <group>` (e.g. data,
model/net) shows each option of a group with its keys and default values.
"""

def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in SUBCOMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


@contextmanager
def reader_may_leave() -> Iterator[None]:
    """Text for a reader who may stop early (`genlab eval --help | head -1`): a closed pipe ends
    the command quietly with exit code 0, as the Python docs advise (stdout goes to devnull, so
    the interpreter's last flush does not fail again)."""
    try:
        try:
            yield
        finally:  # also when argparse's --help ends with SystemExit: flush now, not at interpreter exit
            sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)


def help_groups(args: Sequence[str]) -> list[str]:
    """The config groups named beside --help (`--help data model/net`); overrides and flags are not groups."""
    return [a for a in args if a not in ("-h", "--help") and not a.startswith(("-", "+", "~")) and "=" not in a]


def command_help(command: str, args: Sequence[str]) -> int:
    """`genlab <command> --help [group ...]`, read from the YAML files alone (no torch)."""
    from genlab.commands.help import UnknownGroup, app_help, group_help

    groups = help_groups(args)
    try:
        pages = [group_help(command, HYDRA_APPS[command], g) for g in groups] or [app_help(command, HYDRA_APPS[command])]
    except UnknownGroup as error:
        print(error, file=sys.stderr)
        return 2
    print("\n\n".join(pages))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    command = argv[1] if len(argv) > 1 else "--help"
    if command in ("-h", "--help", "help"):
        with reader_may_leave():
            print(usage())
        return 0
    if command in ("-V", "--version"):
        from genlab import __version__

        with reader_may_leave():
            print(f"genlab {__version__}")
        return 0
    if command not in SUBCOMMANDS:
        print(f"genlab: unknown command {command!r}; choose one of: {', '.join(SUBCOMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    if command in HYDRA_APPS and any(flag in argv[2:] for flag in ("-h", "--help")):
        with reader_may_leave():
            return command_help(command, argv[2:])
    module = importlib.import_module(SUBCOMMANDS[command][0])
    if command in HYDRA_APPS:
        result = module.main(argv)
    else:
        with reader_may_leave():  # `genlab report --help | head -1`
            result = module.main(argv[2:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
