"""Errors that are the user's to fix: genlab prints their message alone, without a traceback."""


class GenlabError(Exception):
    """Base class: the message names the config key or file and the way out."""

    exit_code = 2


class ConfigError(GenlabError, ValueError):
    """A config value that cannot work (the message names the key)."""


class DataNotFoundError(GenlabError, FileNotFoundError):
    """A data set's files are missing; the message says where genlab looked and how to get them."""


class DataFormatError(GenlabError, ValueError):
    """A data file exists but its contents are not what its format promises."""


class DivergenceError(GenlabError):
    """A loss became NaN or infinite; training stopped before that step touched the weights."""
