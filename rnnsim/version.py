"""rnnsim's version, as installed (``0.0.0`` in a source tree that is not)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnnsim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
