"""Every `genlab train` command the README and the docs show still composes: `--cfg job` on each, so none rots."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import run_genlab

# composes every genlab train command of the README and docs: seventy compositions
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# what stands for a value the reader fills in: composed with a stand-in of the same kind
PLACEHOLDERS = {"<date>": "2026-01-01_00-00-00_000000", "<preset>": "gan_optuna"}


def shown_commands(page: Path) -> list[str]:
    """`genlab train ...` as the page shows it: each line of a code block (continuation lines joined) and each
    inline code span, without its shell comment."""
    text = page.read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if " genlab train" in f" {line}" and not line.startswith("#"):
                commands.append(line[line.index("genlab train"):])
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    commands += re.findall(r"`(genlab train[^`]*)`", prose)
    return [shlex.split(command, comments=True) for command in commands]


def first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A sweep's overrides as its first job's (Hydra's own parser expands them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, single = OverridesParser.create(), []
    for override in overrides:
        parsed = parser.parse_override(override)
        if parsed.is_sweep_override():
            value = next(iter(parsed.sweep_string_iterator()))
            single.append(f"{parsed.get_key_element()}={value}")
        else:
            single.append(override)
    return single


def composable(words: list[str]) -> list[str] | None:
    """The overrides of a shown `genlab train` command, or None when it only asks for help or holds a `...`."""
    words = [word for word in words[2:] if word not in ("-m", "--multirun")]
    if any(word.startswith("--help") for word in words) or any("..." in word for word in words):
        return None
    if "--cfg" in words:
        words = words[: words.index("--cfg")]
    for placeholder, value in PLACEHOLDERS.items():
        words = [word.replace(placeholder, value) for word in words]
    return first_of_each_sweep(words)


SHOWN = sorted({(page.relative_to(REPO).as_posix(), " ".join(overrides))
                for page in PAGES for words in shown_commands(page) if (overrides := composable(words)) is not None})


def test_the_pages_show_commands_to_check():
    pages = {page for page, _ in SHOWN}
    assert {"README.md", "docs/training.md", "docs/sweeps.md", "docs/search.md"} <= pages and len(SHOWN) > 40


@pytest.fixture
def machine_with_gpus(monkeypatch):
    """The pages show GPU commands too: judged as on a machine with eight GPUs."""
    import genlab.schema.machine as machine

    monkeypatch.setattr(machine, "gpu_count", lambda: 8)


@pytest.mark.parametrize(("page", "overrides"), SHOWN, ids=[f"{page}: {overrides}" for page, overrides in SHOWN])
def test_every_genlab_train_command_shown_composes_and_passes_the_schema(tmp_path, machine_with_gpus, page, overrides):
    from omegaconf import OmegaConf

    from genlab.schema import check_command

    result = run_genlab("train", *shlex.split(overrides), "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, f"{page}: genlab train {overrides}\n{result.stderr[-2000:]}"
    assert "model:" in result.stdout and "_target_" in result.stdout
    # the config it printed passes every check a run makes first: no page shows a command genlab would refuse
    check_command("train", OmegaConf.create(result.stdout))
