"""Commands genlab prints for the user to run: every word quoted for the shell, every value for Hydra,
so that a line pasted as printed runs, whatever the folder names hold (spaces, commas, quotes)."""

from __future__ import annotations

import re
import shlex
from typing import Sequence

# a value Hydra reads as it is written: no spaces, quotes, brackets, commas, equal signs or interpolations
PLAIN_VALUE = re.compile(r"[\w/.+@-]+")


def hydra_value(text: str) -> str:
    """A value Hydra's override grammar reads back as it is: quoted when it holds `=`, `,` or other syntax."""
    if PLAIN_VALUE.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def hydra_override(key: str, value: object) -> str:
    """`key=value` as Hydra's override parser reads it back to `value`."""
    return f"{key}={hydra_value(str(value))}"


def shell_word(word: str) -> str:
    """`word` quoted for a POSIX shell: shlex.quote, or double quotes around an override that holds Hydra's
    single quotes and nothing a shell expands inside double quotes (`"ckpt_path='/my runs/last.ckpt'"`)."""
    if "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


def command_line(words: Sequence[str]) -> str:
    """A command line that shlex.split (and a shell) turns back into exactly `words`."""
    return " ".join(map(shell_word, words))
