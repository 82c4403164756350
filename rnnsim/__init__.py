"""rnnsim: a numba-jitted, plugin-based simulator of recurrent neural networks.

A layer has ``units`` (p) and runs for as many timesteps (T) as its input has: the weights
W (p x k), U (p x p) and b (p) never depend on T.
"""
import importlib
import importlib.util

from .errors import (ConfigError, InputError, NonfiniteError, NonfiniteWarning, OutputError,
                     PluginError, RnnsimError, ShapeError)

# Loaded on first use (PEP 562), so that `import rnnsim` (and the CLI's --help) does not
# import numba, pluggy, nor read package metadata: attribute -> the module that defines it.
_LAZY = {"Head": "heads", "Network": "network", "RunResult": "results", "State": "results",
         "load": "network", "__version__": "version", "hookimpl": "hookspecs"}



def from_torch(module_or_state_dict, **config):
    """A ``Network`` from a ``torch.nn.RNN``/``LSTM``/``GRU``, or from its state dict plus the
    constructor arguments; see ``rnnsim.interop.torch.from_torch``."""
    from .interop.torch import from_torch as convert

    return convert(module_or_state_dict, **config)


def from_onnx(path):
    """An ``OnnxModel`` for an ``.onnx`` file with RNN/LSTM/GRU nodes: ``.run(feeds)`` returns
    its outputs by name, like an ONNX Runtime session; see ``rnnsim.interop.onnx.from_onnx``.
    Needs the ``onnx`` package (``pip install 'rnnsim[onnx]'``)."""
    from .interop.onnx import from_onnx as load_onnx

    return load_onnx(path)


def from_keras(model_or_layer, dtype=None):
    """A ``Network`` from a live Keras 3 model or recurrent layer (batch_first, as Keras); see
    ``rnnsim.interop.keras.from_keras``. For a saved file: ``import_file('model.keras')``."""
    from .interop.keras import from_keras as convert

    return convert(model_or_layer, dtype)


def from_reservoirpy(model, dtype="float64"):
    """A ``Network`` from a reservoirpy Reservoir, or stacked Reservoirs read out by a Ridge
    (with feedback); see ``rnnsim.interop.reservoirpy.from_reservoirpy``."""
    from .interop.reservoirpy import from_reservoirpy as convert

    return convert(model, dtype)


def import_file(path, format=None, **options):
    """A ``Network`` (or a graph model, for ONNX) from another framework's file, by the
    importer named ``format`` or the one for the file's type; see
    ``rnnsim.importers.import_file``."""
    from .importers import import_file as load_file

    return load_file(path, format, **options)


def __getattr__(name: str):
    """``Network``, ``load``... and submodules such as ``rnnsim.config``, imported on first
    use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ConfigError", "Head", "InputError", "Network", "NonfiniteError", "NonfiniteWarning",
    "OutputError", "PluginError", "RnnsimError", "RunResult", "ShapeError", "State", "__version__",
    "from_keras", "from_onnx", "from_reservoirpy", "from_torch", "hookimpl", "import_file",
    "load",
]
