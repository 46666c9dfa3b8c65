"""Errors that are the user's to fix: genlab prints their message alone, without a traceback."""


class GenlabError(Exception):
    """Base class: the message names the config key or file and the way out."""


class ConfigError(GenlabError, ValueError):
    """A config value that cannot work (the message names the key)."""


class DataNotFoundError(GenlabError, FileNotFoundError):
    """A data set's files are missing; the message says where genlab looked and how to get them."""


class DataFormatError(GenlabError, ValueError):
    """A data file exists but its contents are not what its format promises."""
