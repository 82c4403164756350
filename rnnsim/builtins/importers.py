"""Built-in importers: PyTorch state dicts, ONNX graphs, Keras 3 files and reservoirpy models.

Each imports its framework (and the converter) only when a file is imported.
"""
from __future__ import annotations

from ..errors import InputError
from ..hookspecs import hookimpl

DTYPE = {"help": "Precision of the model [default: the weights' own].",
         "choices": ["float32", "float64"]}


def load_torch(path, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
               bidirectional=False, proj_size=0, nonlinearity=None, dtype=None):
    """A Network from a PyTorch RNN/LSTM/GRU state dict (.npz, .safetensors or .pt)."""
    from ..interop.torch import from_torch, load_state_dict

    args = {"mode": mode, "input_size": input_size, "hidden_size": hidden_size,
            "num_layers": num_layers, "bias": bias, "batch_first": batch_first,
            "bidirectional": bidirectional, "proj_size": proj_size, "dtype": dtype}
    if nonlinearity is not None:
        args["nonlinearity"] = nonlinearity
    return from_torch(load_state_dict(path), **args)


TORCH_OPTIONS = {
    "mode": {"help": "The torch.nn module the weights come from (its mode, any case).",
             "choices": ["RNN", "RNN_TANH", "RNN_RELU", "LSTM", "GRU"], "required": True},
    "input_size": {"help": "The module's input_size (k).", "type": "int", "required": True},
    "hidden_size": {"help": "The module's hidden_size (p).", "type": "int", "required": True},
    "num_layers": {"help": "The module's num_layers.", "type": "int", "default": 1},
    "bias": {"help": "Whether the module has biases.", "type": "bool", "default": True},
    "batch_first": {"help": "The module was built with batch_first=True.", "type": "bool",
                    "default": False},
    "bidirectional": {"help": "The module is bidirectional.", "type": "bool", "default": False},
    "proj_size": {"help": "LSTM proj_size (0: no projection).", "type": "int", "default": 0},
    "nonlinearity": {"help": "RNN nonlinearity [default: tanh].", "choices": ["tanh", "relu"]},
    "dtype": DTYPE,
}


def load_onnx(path):
    """A graph model of an .onnx file, recurrent nodes on rnnsim's kernels."""
    from ..interop.onnx import from_onnx

    return from_onnx(path)


def load_keras(path, config=None, dtype=None):
    """A Network from a Keras 3 .keras file, or a .weights.h5 file (plus its config)."""
    from ..interop.keras import load_keras as load

    return load(path, config, dtype)


def is_keras(path) -> bool:
    """Whether ``path`` is a zip holding a Keras 3 model's config.json and weights."""
    import zipfile  # only to sniff a file: listing the importers does not import it

    try:
        with zipfile.ZipFile(path) as archive:
            return {"config.json", "model.weights.h5"} <= set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_reservoirpy(path, allow_pickle=False, dtype="float64"):
    """A Network from a model saved by reservoirpy.save (a pickle, run only when trusted)."""
    if not allow_pickle:
        raise InputError(f"'{path}' is a reservoirpy file, which is a Python pickle: loading it "
                         "runs code from the file. Pass --allow-pickle (allow_pickle=True) if "
                         "you trust it, or call rnnsim.from_reservoirpy(model) on the live "
                         "model.")
    try:
        import reservoirpy
    except ImportError:
        raise InputError(f"reading '{path}' needs reservoirpy: pip install "
                         "'rnnsim[reservoirpy]'.") from None
    from ..interop.reservoirpy import from_reservoirpy

    try:
        model = reservoirpy.load(str(path))
    except Exception as exc:  # pickle raises anything the file's code raises
        raise InputError(f"'{path}' cannot be loaded with reservoirpy.load: "
                         f"{type(exc).__name__}: {exc}.") from None
    return from_reservoirpy(model, dtype)


@hookimpl
def register_importers(register):
    register("torch", load_torch, suffixes=[".pt", ".pth", ".safetensors"],
             description="PyTorch RNN/LSTM/GRU state dicts (.npz, .safetensors, .pt)",
             options=TORCH_OPTIONS)
    register("onnx", load_onnx, suffixes=[".onnx"],
             description="ONNX graphs; RNN/LSTM/GRU nodes on rnnsim's kernels (runs as it is)")
    register("keras", load_keras, suffixes=[".keras", ".weights.h5"], sniff=is_keras,
             description="Keras 3 SimpleRNN/LSTM/GRU/Bidirectional models, read with h5py",
             options={"config": {"help": "The model's JSON (model.to_json()) for a "
                                         ".weights.h5 file [default: inferred from shapes].",
                                 "type": "path"},
                      "dtype": DTYPE})
    register("reservoirpy", load_reservoirpy, suffixes=[".rpy"],
             description="reservoirpy Reservoir/Ridge models saved with reservoirpy.save",
             options={"allow_pickle": {"help": "Load the pickle: only for files you trust.",
                                       "type": "bool", "default": False},
                      "dtype": dict(DTYPE, default="float64",
                                    help="Precision of the model.")})
