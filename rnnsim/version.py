"""rnnsim's version, as installed (``0.0.0`` in a source tree that is not).

Read on first use of ``__version__`` (PEP 562), so that importing rnnsim reads no package
metadata.
"""
import functools

from . import distributions


@functools.lru_cache(maxsize=None)
def installed_version() -> str:
    """The installed distribution's version, ``0.0.0`` when rnnsim is not installed."""
    return distributions.version("rnnsim") or "0.0.0"


def __getattr__(name: str):
    if name == "__version__":
        return installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
