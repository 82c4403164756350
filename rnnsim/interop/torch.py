"""Run PyTorch ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` weights on rnnsim's kernels; torch is optional.

PyTorch names (``weight_ih_l0``, ``weight_hh_l1_reverse``, ``bias_ih_l0``, ``weight_hr_l0``...)
map to rnnsim's ``layers.<l>.W``, ``U``, ``b`` and ``R``. The recurrent biases fold into ``b``
(``b = bias_ih + bias_hh``), except GRU's ``b_hn``, which sits inside ``r * (...)`` and stays
separate as ``bn``.
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import guards
from ..config import parse
from ..errors import ConfigError, InputError, ShapeError, shown
from ..io import read_npz
from ..network import Network
from .gates import gru_biases

# mode (lower case) -> (cell, gates per layer, Elman activation)
MODES = {"rnn_tanh": ("elman", 1, "tanh"), "rnn_relu": ("elman", 1, "relu"),
         "lstm": ("lstm", 4, None), "gru": ("gru", 3, None)}
CONSTRUCTOR_KEYS = ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "bidirectional", "proj_size", "nonlinearity", "dtype")


def from_torch(module_or_state_dict: Any, head: Any = None, head_name: str = "linear",
               **config) -> Network:
    """A ``Network`` with the weights of a ``torch.nn.RNN``/``LSTM``/``GRU`` or its state dict.

    module_or_state_dict : a live module, or a mapping of PyTorch parameter names to arrays,
        in which case ``config`` gives the constructor arguments (``mode``: 'RNN', 'RNN_TANH',
        'RNN_RELU', 'LSTM' or 'GRU', case-insensitive; ``input_size``, ``hidden_size``,
        ``num_layers``, ``bias``, ``batch_first``, ``bidirectional``, ``proj_size``,
        ``nonlinearity``) and optionally ``dtype``.

    head : the ``torch.nn.Linear`` (or its state dict) the model applies after the recurrent module
        (``fc(rnn(x)[0])``); it becomes the network's head ``head_name`` (``linear``, per
        step; ``last_step`` for ``fc(output[-1])``; ``softmax``), so ``net.run(x).y`` is the
        model's output.

    ``net.run(x, h0, c0)`` gives ``.output`` equal to the module's ``output``, ``.h_n`` its
    ``h_n`` and, for LSTM, ``.c_n`` its ``c_n``.
    """
    if hasattr(module_or_state_dict, "state_dict") and hasattr(module_or_state_dict, "mode"):
        module = module_or_state_dict
        args = {key: getattr(module, key) for key in CONSTRUCTOR_KEYS if hasattr(module, key)}
        if not str(args.get("mode", "")).lower().startswith("rnn"):
            args.pop("nonlinearity", None)
        state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        args.update(config)
    elif isinstance(module_or_state_dict, Mapping):
        state = {k: np.asarray(v) for k, v in module_or_state_dict.items()}
        args = dict(config)
    else:
        raise ConfigError("from_torch takes a torch.nn.RNN/LSTM/GRU module or a mapping of "
                          "PyTorch parameter names to arrays, not "
                          f"{type(module_or_state_dict).__name__}.")
    unknown = sorted(set(args) - set(CONSTRUCTOR_KEYS))
    if unknown:
        raise ConfigError(f"from_torch: unknown argument(s) {unknown}; accepted: "
                          f"{', '.join(CONSTRUCTOR_KEYS)}.")
    for key in ("input_size", "hidden_size"):
        if key not in args:
            raise ConfigError(f"from_torch: '{key}' is required with a state dict "
                              "(the module's constructor argument).")
    cell, gates, activation = _mode(args)
    proj = int(args.get("proj_size") or 0)
    if proj and cell != "lstm":
        raise ConfigError(f"from_torch: proj_size={proj} applies to LSTM only, not mode "
                          f"{args.get('mode')!r}.")
    if proj >= int(args["hidden_size"]):
        raise ConfigError(f"from_torch: proj_size={proj} must be smaller than hidden_size="
                          f"{args['hidden_size']} (as in PyTorch).")
    num_layers = int(args.get("num_layers", 1))
    bias = bool(args.get("bias", True))
    bidirectional = bool(args.get("bidirectional", False))
    dtype = str(args.get("dtype") or _dtype_of(state))
    layer = {"cell": cell, "units": int(args["hidden_size"]), "bias": bias,
             "bidirectional": bidirectional}
    if activation is not None:
        layer["activation"] = activation
    if proj:
        layer["proj_size"] = proj
    network = {"input_size": int(args["input_size"]), "dtype": dtype,
               "batch_first": bool(args.get("batch_first", False)),
               "layers": [dict(layer) for _ in range(num_layers)]}
    readout = None
    if head is not None:
        width = (proj or int(args["hidden_size"])) * (2 if bidirectional else 1)
        readout = _linear_readout(head, width)
        network["head"] = {"name": head_name, "units": len(readout["head.b"])}
    cfg = parse({"network": network})
    expected = expected_shapes(gates, int(args["input_size"]), int(args["hidden_size"]),
                               num_layers, bias, bidirectional, proj)
    _check(state, expected, args)
    params = _convert(state, cell, expected)
    if readout is not None:
        params.update({name: value.astype(dtype) for name, value in readout.items()})
    return Network(cfg, params)


def _linear_readout(head, width: int) -> dict[str, np.ndarray]:
    """``head.W`` (m, width) and ``head.b`` (m,) of a ``torch.nn.Linear`` on ``width``
    features, or of its state dict (``weight``, optional ``bias``)."""
    if hasattr(head, "state_dict"):
        head = head.state_dict()
    if not isinstance(head, Mapping) or "weight" not in head:
        raise ConfigError(f"from_torch: head must be a torch.nn.Linear or its state dict "
                          f"(weight, bias), not {type(head).__name__}.")
    parts = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v,
                           np.float64) for k, v in head.items()}
    w = parts["weight"]
    if w.ndim != 2 or w.shape[1] != width:
        raise ShapeError(f"from_torch: the head's weight has shape {w.shape}; expected "
                         f"(outputs, {width}), the recurrent module's features per step.")
    b = parts.get("bias", np.zeros(w.shape[0]))
    return {"head.W": w, "head.b": b}


def _mode(args: dict) -> tuple[str, int, str | None]:
    raw = str(args.get("mode", "RNN_TANH"))
    mode = raw.lower()
    nonlinearity = args.get("nonlinearity")
    if mode == "rnn":
        mode = "rnn_" + str(nonlinearity or "tanh").lower()
    elif nonlinearity is not None and mode in MODES and not mode.endswith(str(nonlinearity)):
        raise ConfigError(f"from_torch: nonlinearity {nonlinearity!r} does not apply to mode "
                          f"{raw!r}; it is an RNN argument ('tanh' or 'relu').")
    if mode not in MODES:
        raise ConfigError(f"from_torch: mode {raw!r} is not supported; supported: 'RNN' "
                          "(with nonlinearity 'tanh'/'relu'), 'RNN_TANH', 'RNN_RELU', 'LSTM', "
                          "'GRU' (any case).")
    return MODES[mode]


def _dtype_of(state: Mapping[str, np.ndarray]) -> str:
    first = state.get("weight_ih_l0")
    return "float64" if first is not None and first.dtype == np.float64 else "float32"


def expected_shapes(gates: int, k: int, p: int, num_layers: int, bias: bool,
                    bidirectional: bool, proj: int = 0) -> dict[str, tuple[int, ...]]:
    """Every PyTorch state-dict name of such a module -> its shape, in PyTorch's order."""
    q = proj or p
    directions = ("", "_reverse") if bidirectional else ("",)
    expected = {}
    for layer in range(num_layers):
        fan_in = k if layer == 0 else q * len(directions)
        for sfx in directions:
            expected[f"weight_ih_l{layer}{sfx}"] = (gates * p, fan_in)
            expected[f"weight_hh_l{layer}{sfx}"] = (gates * p, q)
            if bias:
                expected[f"bias_ih_l{layer}{sfx}"] = (gates * p,)
                expected[f"bias_hh_l{layer}{sfx}"] = (gates * p,)
            if proj:
                expected[f"weight_hr_l{layer}{sfx}"] = (proj, p)
    return expected


def _check(state, expected, args) -> None:
    problems = [f"missing '{name}' of shape {shape}" for name, shape in expected.items()
                if name not in state]
    problems += [f"'{name}' has shape {state[name].shape}, expected {shape}"
                 for name, shape in expected.items()
                 if name in state and state[name].shape != shape]
    problems += [f"unexpected '{name}'" for name in state if name not in expected]
    if problems:
        given = ", ".join(f"{key}={args[key]!r}" for key in CONSTRUCTOR_KEYS
                          if args.get(key) is not None)
        raise ShapeError(f"the PyTorch state dict does not match the module arguments ({given}): "
                         + "; ".join(problems) + ". Pass the arguments the module was built "
                         "with, or the state dict of that module.")


def _convert(state, cell: str, expected) -> dict[str, np.ndarray]:
    params = {}
    for name in expected:
        kind, _, rest = name.partition("_l")
        layer, _, sfx = rest.partition("_")
        sfx = "_" + sfx if sfx else ""
        value = np.asarray(state[name])
        if kind == "weight_ih":
            params[f"layers.{layer}.W{sfx}"] = value
        elif kind == "weight_hh":
            params[f"layers.{layer}.U{sfx}"] = value
        elif kind == "weight_hr":
            params[f"layers.{layer}.R{sfx}"] = value
        elif kind == "bias_ih":
            params[f"layers.{layer}.b{sfx}"] = value.copy()
        else:  # bias_hh, after bias_ih of the same layer and direction
            b = params[f"layers.{layer}.b{sfx}"]
            if cell == "gru":
                params[f"layers.{layer}.b{sfx}"], params[f"layers.{layer}.bn{sfx}"] = \
                    gru_biases(b, value)
            else:
                b += value
    return params


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A PyTorch state dict saved as ``.npz``, ``.safetensors`` or ``.pt``, as NumPy arrays.

    ``.safetensors`` is read by rnnsim itself (no package needed) and ``.pt`` needs torch
    (loaded with ``weights_only=True``, so no pickled code runs). Each is checked against the
    memory before its tensors are read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file '{path}' does not exist. Check the path.")
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".safetensors", ".pt", ".pth"):
        raise InputError(f"weights file '{path}' has an unknown type '{suffix}'; use .npz, "
                         ".safetensors or .pt (a saved state_dict).")
    try:
        if suffix == ".npz":
            return read_npz(path)
        if suffix == ".safetensors":
            return _load_safetensors(path)
        return _load_pt(path)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        raise InputError(f"weights file '{path}' cannot be read as {suffix}: {exc}.") from None


# The safetensors element types NumPy holds, by the name the file's header gives them.
SAFETENSORS_DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2",
                      "F16": "<f2", "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8",
                      "I64": "<i8", "F64": "<f8"}
_FIT_HINT = "Convert the weights on a machine with more memory, or keep fewer of them."


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file (an 8-byte header length, a JSON header of
    dtype, shape and byte range per tensor, then the data), checked against the file's size
    and the memory before anything is allocated, then read tensor by tensor with plain file
    reads: the file's pages do not stay in the process, so the peak is the tensors' size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        length = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if not 0 < length <= min(size - 8, 100 << 20):
            raise ValueError(f"a header of {length} bytes in a file of {size}")
        header = json.loads(fh.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        header.pop("__metadata__", None)
        layout = {name: _safetensors_entry(name, entry, size - 8 - length)
                  for name, entry in header.items()}
        guards.check_fits({f"{name} {shape}": math.prod(shape) * dtype.itemsize
                           for name, (dtype, shape, _) in layout.items()},
                          f"the tensors of '{path}'", _FIT_HINT, InputError)
        tensors = {}
        for name, (dtype, shape, start) in layout.items():
            array = np.empty(math.prod(shape), dtype)  # flat: a view of its bytes always casts
            fh.seek(8 + length + start)
            if fh.readinto(memoryview(array).cast("B")) != array.nbytes:
                raise ValueError(f"tensor {shown(name)} is cut short")
            tensors[name] = array.reshape(shape)
    return tensors


def _safetensors_entry(name: str, entry, data_bytes: int) -> tuple[np.dtype, tuple, int]:
    """(dtype, shape, first byte) of a header entry, checked: a known dtype, a shape of whole
    non-negative numbers, a byte range of exactly its size inside the data."""
    try:
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
        shape = tuple(entry["shape"])
        start, end = entry["data_offsets"]
        if not all(isinstance(d, int) and d >= 0 for d in (*shape, start, end)):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"tensor {shown(name)} has the entry {shown(entry)}: expected a dtype "
                         f"among {', '.join(SAFETENSORS_DTYPES)}, a shape and data_offsets of "
                         "whole numbers") from None
    if end - start != math.prod(shape) * dtype.itemsize or end > data_bytes:
        raise ValueError(f"tensor {shown(name)} of {entry['dtype']} {shape} declares bytes "
                         f"{start} to {end} of {data_bytes}")
    return dtype, shape, start


def _load_pt(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise InputError(f"reading '{path}' needs PyTorch: pip install torch, or save the "
                         "state dict as .npz or .safetensors where torch is installed.") from None
    guards.check_fits({f"'{path}'": path.stat().st_size}, f"the tensors of '{path}'",
                      _FIT_HINT, InputError)
    try:  # mapped, not read: the tensors are paged in as they are used
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # UnpicklingError (refused or damaged), zip and EOF errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"weights file '{path}' cannot be read as a weights-only .pt state "
                         f"dict: {type(exc).__name__}: {first} (rnnsim never unpickles code; "
                         "save module.state_dict() of plain tensors).") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise InputError(f"'{path}' does not hold a state dict (a mapping of names to "
                         "tensors); save module.state_dict(), not the module.")
    return {name: value.detach().cpu().numpy() for name, value in state.items()}
