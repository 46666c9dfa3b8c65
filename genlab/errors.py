"""Errors that are the user's to fix: genlab prints their message alone, without a traceback."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from numbers import Real
from typing import Any, Callable, Iterator, NoReturn

log = logging.getLogger("genlab")


class GenlabError(Exception):
    """Base class: the message names the config key or file and the way out."""

    exit_code = 2


class ConfigError(GenlabError, ValueError):
    """A config value that cannot work (the message names the key)."""


class DataNotFoundError(GenlabError, FileNotFoundError):
    """A data set's files are missing; the message says where genlab looked and how to get them."""


class DataDownloadError(DataNotFoundError):
    """`data.download=true` failed; nothing half-downloaded is left, and the message says how to get the files by hand."""


class DataFormatError(GenlabError, ValueError):
    """A data file exists but its contents are not what its format promises."""


class DivergenceError(GenlabError):
    """A loss became NaN or infinite; training stopped before that step touched the weights."""


class TrainingInterrupted(GenlabError):
    """Training stopped on a signal after writing a resumable checkpoint (genlab/callbacks/interrupt.py)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention for "ended by signal N"

    def __reduce__(self) -> tuple:  # a sweep job in another process (hydra/launcher=parallel) sends it back
        return (type(self), (str(self), self.signum))


def require(valid: bool, key: str, value: Any, expected: str) -> None:
    """Refuse a config value where it is used, naming its key: `key=value is not valid: it must be ...`."""
    if not valid:
        raise ConfigError(f"{key}={value!r} is not valid: it must be {expected}")


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def is_positive_integer(value: Any) -> bool:
    return is_integer(value) and value > 0


def is_positive_number(value: Any) -> bool:
    return is_number(value) and value > 0


def is_non_negative_number(value: Any) -> bool:
    return is_number(value) and value >= 0


def first_line(error: BaseException | str | None) -> str:
    """An error's first line, for messages that must stay one line (its type's name when it says nothing)."""
    lines = str(error if error is not None else "").strip().splitlines()
    if lines:
        return lines[0]
    return type(error).__name__ if isinstance(error, BaseException) else ""


def exit_with(error: GenlabError, code: int | None = None) -> NoReturn:
    """End the command with `error` as its one line on stderr, and its exit code (or `code`)."""
    print(f"genlab: error: {error}", file=sys.stderr, flush=True)
    sys.exit(error.exit_code if code is None else code)


def missing_value(key: str) -> ConfigError:
    """A mandatory key left at `???`."""
    return ConfigError(f"{key} is required and has no value: add {key}=... to the command line")


def user_error(error: BaseException) -> GenlabError | None:
    """The GenlabError behind an exception (Hydra's instantiate wraps them), if there is one.

    A mandatory key left at `???` (omegaconf's MissingMandatoryValue) is the user's to fix too.
    """
    from omegaconf.errors import MissingMandatoryValue

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, GenlabError):
            return seen
        if isinstance(seen, MissingMandatoryValue):
            return missing_value(seen.full_key or "a required key")
        seen = seen.__cause__ or seen.__context__
    return None


def record_in_log_files(message: str) -> None:
    """Write an error into the run's log files only: the console shows it once, as `genlab: error:`."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@contextmanager
def report_user_errors(
    on_failure: Callable[[BaseException, GenlabError | None], None] | None = None, sweep: bool = False
) -> Iterator[None]:
    """Around a command's work: a GenlabError becomes one line on stderr and its exit code.

    Inside a sweep's job (`sweep`) the error is re-raised instead, so Hydra records the failed job and
    runs the others. Any other exception is a bug and keeps its traceback. The error reaches the run's
    log file before `on_failure` runs, since that may remove a run folder that holds nothing else.
    """
    try:
        yield
    except Exception as error:
        mistake = user_error(error)
        if mistake is not None and not sweep:
            record_in_log_files(str(mistake))
        if on_failure is not None:
            on_failure(error, mistake)
        if sweep:
            log.error("this job failed: %s", mistake or error)
            raise
        if mistake is None:
            raise
        exit_with(mistake)
