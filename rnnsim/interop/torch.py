"""Run PyTorch ``torch.nn.RNN`` weights on rnnsim's kernels; torch itself is optional.

PyTorch names (``weight_ih_l0``, ``weight_hh_l1_reverse``, ``bias_ih_l0``...) map to rnnsim's
``layers.<l>.W``, ``U`` and ``b`` (``b = bias_ih + bias_hh``).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..config import parse
from ..errors import ConfigError, ShapeError
from ..network import Network

MODES = {"rnn_tanh": "tanh", "rnn_relu": "relu"}
CONSTRUCTOR_KEYS = ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                    "bidirectional", "proj_size", "nonlinearity", "dtype")


def from_torch(module_or_state_dict: Any, **config) -> Network:
    """A ``Network`` with the weights of a ``torch.nn.RNN`` or of its state dict.

    module_or_state_dict : a live ``torch.nn.RNN``, or a mapping of PyTorch parameter names to
        arrays, in which case ``config`` gives the constructor arguments (``mode``,
        ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
        ``bidirectional``, ``nonlinearity``) and optionally ``dtype``.

    ``net.run(x, h0).output`` equals the module's ``output`` and ``.h_n`` its ``h_n``.
    """
    if hasattr(module_or_state_dict, "state_dict") and hasattr(module_or_state_dict, "mode"):
        module = module_or_state_dict
        args = {key: getattr(module, key) for key in CONSTRUCTOR_KEYS if hasattr(module, key)}
        state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        args.update(config)
    elif isinstance(module_or_state_dict, Mapping):
        state = {k: np.asarray(v) for k, v in module_or_state_dict.items()}
        args = dict(config)
    else:
        raise ConfigError("from_torch takes a torch.nn.RNN module or a mapping of PyTorch "
                          f"parameter names to arrays, not {type(module_or_state_dict).__name__}.")
    unknown = sorted(set(args) - set(CONSTRUCTOR_KEYS))
    if unknown:
        raise ConfigError(f"from_torch: unknown argument(s) {unknown}; accepted: "
                          f"{', '.join(CONSTRUCTOR_KEYS)}.")
    activation = _activation(args)
    for key in ("input_size", "hidden_size"):
        if key not in args:
            raise ConfigError(f"from_torch: '{key}' is required with a state dict "
                              "(the module's constructor argument).")
    if args.get("proj_size", 0):
        raise ConfigError("from_torch: proj_size applies to LSTM only.")
    num_layers = int(args.get("num_layers", 1))
    bias = bool(args.get("bias", True))
    bidirectional = bool(args.get("bidirectional", False))
    dtype = str(args.get("dtype") or _dtype_of(state))
    layer = {"cell": "elman", "units": int(args["hidden_size"]), "activation": activation,
             "bias": bias, "bidirectional": bidirectional}
    cfg = parse({"network": {"input_size": int(args["input_size"]), "dtype": dtype,
                             "batch_first": bool(args.get("batch_first", False)),
                             "layers": [dict(layer) for _ in range(num_layers)]}})
    return Network(cfg, _convert(state, args, num_layers, bias, bidirectional))


def _activation(args: dict) -> str:
    mode = str(args.get("mode", "RNN_TANH")).lower()
    if mode == "rnn":
        mode = "rnn_" + str(args.get("nonlinearity", "tanh")).lower()
    elif "nonlinearity" in args and mode in MODES and MODES[mode] != args["nonlinearity"]:
        raise ConfigError(f"from_torch: mode {args['mode']!r} contradicts nonlinearity "
                          f"{args['nonlinearity']!r}.")
    if mode not in MODES:
        raise ConfigError(f"from_torch: mode {args.get('mode')!r} is not supported yet; "
                          "supported: 'RNN_TANH', 'RNN_RELU' (or 'rnn' with nonlinearity "
                          "'tanh'/'relu').")
    return MODES[mode]


def _dtype_of(state: Mapping[str, np.ndarray]) -> str:
    first = state.get("weight_ih_l0")
    return "float64" if first is not None and first.dtype == np.float64 else "float32"


def _convert(state, args, num_layers, bias, bidirectional) -> dict[str, np.ndarray]:
    p, k = int(args["hidden_size"]), int(args["input_size"])
    directions = ("", "_reverse") if bidirectional else ("",)
    expected = {}
    for layer in range(num_layers):
        fan_in = k if layer == 0 else p * len(directions)
        for sfx in directions:
            expected[f"weight_ih_l{layer}{sfx}"] = (p, fan_in)
            expected[f"weight_hh_l{layer}{sfx}"] = (p, p)
            if bias:
                expected[f"bias_ih_l{layer}{sfx}"] = (p,)
                expected[f"bias_hh_l{layer}{sfx}"] = (p,)
    problems = [f"missing '{name}' of shape {shape}" for name, shape in expected.items()
                if name not in state]
    problems += [f"'{name}' has shape {state[name].shape}, expected {shape}"
                 for name, shape in expected.items()
                 if name in state and state[name].shape != shape]
    problems += [f"unexpected '{name}'" for name in state if name not in expected]
    if problems:
        raise ShapeError("the PyTorch state dict does not match the module arguments "
                         f"(hidden_size={p}, input_size={k}, num_layers={num_layers}, "
                         f"bias={bias}, bidirectional={bidirectional}): "
                         + "; ".join(problems) + ".")
    params = {}
    for layer in range(num_layers):
        for sfx in directions:
            params[f"layers.{layer}.W{sfx}"] = state[f"weight_ih_l{layer}{sfx}"]
            params[f"layers.{layer}.U{sfx}"] = state[f"weight_hh_l{layer}{sfx}"]
            if bias:
                params[f"layers.{layer}.b{sfx}"] = (state[f"bias_ih_l{layer}{sfx}"]
                                                    + state[f"bias_hh_l{layer}{sfx}"])
    return params
