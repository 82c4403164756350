"""Exceptions raised for mistakes a user can fix: each says what, where and how."""
import reprlib

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 6
_SHOWN.maxlevel = 2
SHOWN_CHARS = 100


def shown(value) -> str:
    """``repr(value)`` cut to about ``SHOWN_CHARS`` characters, however large or deep ``value``
    is (an error message must never expand what a user gave without bound)."""
    text = _SHOWN.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


class RnnsimError(Exception):
    """Base class: the CLI shows these as a one-paragraph message, without a traceback."""


class ConfigError(RnnsimError):
    """A config is malformed, or names something that is not installed."""


class PluginError(RnnsimError):
    """A plugin failed to load, or registered something invalid."""


class ShapeError(RnnsimError):
    """An array has the wrong rank, shape or dtype."""


class InputError(RnnsimError):
    """An input file or array cannot be used: missing, unreadable, or holding NaN/inf."""


class OutputError(RnnsimError, OSError):
    """A result cannot be written: a read-only or full disk, a folder in the way, or a folder
    that holds files the write would delete. Whatever was there before is unchanged."""


class CacheError(RnnsimError):
    """The kernel cache folder is not private to its user: a file planted in it would run."""


class NonfiniteError(RnnsimError):
    """A state became NaN or inf during a run; ``fault`` says where it first happened."""

    def __init__(self, message: str, fault=None):
        super().__init__(message)
        self.fault = fault


class NonfiniteWarning(RuntimeWarning):
    """Like ``NonfiniteError``, for ``nonfinite="warn"``: the run went on."""

    def __init__(self, message: str, fault=None):
        super().__init__(message)
        self.fault = fault
