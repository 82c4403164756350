"""Keras 3 layers (class name, config and weights) mapped to an rnnsim ``Network``.

Keras keeps ``kernel`` (k, G*p) and ``recurrent_kernel`` (p, G*p), which rnnsim holds transposed
as ``W`` (G*p, k) and ``U`` (G*p, p). LSTM gates are i, f, c, o in both. GRU gates are z, r, h
in Keras and r, z, n in rnnsim; a ``reset_after`` GRU's bias has two rows (input, recurrent):
the recurrent row's r and z parts fold into ``b``, its h part is ``bn`` (b_hn).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...config import parse
from ...errors import ConfigError, ShapeError
from ..gates import gru_biases, reorder_blocks
from ...network import Network

# Keras activation name -> rnnsim activation spec (Keras' own constants).
ACTIVATIONS = {
    "linear": "identity", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu",
    "hard_sigmoid": {"name": "hard_sigmoid", "alpha": 1 / 6, "beta": 0.5},
    "leaky_relu": {"name": "leaky_relu", "alpha": 0.2},
    "elu": {"name": "elu", "alpha": 1.0},
    "selu": {"name": "selu", "alpha": 1.6732632423543772, "gamma": 1.0507009873554805},
    "softsign": "softsign", "softplus": "softplus", "gelu": "gelu", "silu": "silu",
    "swish": "silu", "softmax": "softmax", "log_softmax": "log_softmax",
}
RECURRENT = {"SimpleRNN": ("elman", 1), "LSTM": ("lstm", 4), "GRU": ("gru", 3)}
# Layers that do nothing at inference.
PASS_THROUGH = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
                "AlphaDropout", "ActivityRegularization")
HEADS = ("Dense", "TimeDistributed")
# Keras layer keys that change what a recurrent layer computes, with why rnnsim refuses them.
REFUSED = {
    "go_backwards": "it reverses the input and the output order; wrap the layer in "
                    "Bidirectional, or reverse the sequence yourself",
    "stateful": "it carries states across predict calls; pass states to Network.run instead",
    "return_state": "it returns the states as extra outputs; read RunResult.states instead",
}
GRU_ORDER = (1, 0, 2)  # Keras z, r, h -> rnnsim r, z, n


@dataclass(frozen=True)
class KerasLayer:
    """One Keras layer: ``class_name``, its ``get_config()`` and its weights in Keras' order
    (``get_weights()``: kernel, recurrent kernel, bias; a Bidirectional's forward then
    backward ones)."""

    class_name: str
    config: dict
    weights: tuple[np.ndarray, ...]

    @property
    def where(self) -> str:
        return f"Keras layer '{self.config.get('name', '?')}' ({self.class_name})"


def unwrapped(entry: dict) -> dict:
    """``{"class_name", "config"}`` of a generic ``RNN`` layer around a SimpleRNNCell, LSTMCell
    or GRUCell, as the equivalent SimpleRNN, LSTM or GRU layer; any other entry as it is."""
    if entry["class_name"] != "RNN":
        return entry
    cell, cfg = entry["config"]["cell"], entry["config"]
    name = cell["class_name"].removesuffix("Cell")
    if name not in RECURRENT or cell["class_name"] == name:
        raise ConfigError(f"Keras layer '{cfg.get('name', '?')}' (RNN) wraps "
                          f"{cell['class_name']}; rnnsim runs RNN around SimpleRNNCell, LSTMCell "
                          "or GRUCell (StackedRNNCells: use one layer per cell).")
    layer_keys = ("name", "return_sequences", "go_backwards", "stateful", "return_state")
    return {"class_name": name, "config": {**cell["config"],
                                           **{k: cfg[k] for k in layer_keys if k in cfg}}}


def activation(name, where: str):
    """The rnnsim spec of a Keras activation name."""
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    raise ConfigError(f"{where}: activation {name!r} has no rnnsim equivalent; supported: "
                      f"{', '.join(sorted(ACTIVATIONS))}. Register it as an rnnsim activation "
                      "plugin and map it yourself with Network(config, params).")


def _recurrent(cfg: dict, weights: Sequence[np.ndarray], class_name: str, where: str,
               backward: bool = False) -> tuple[dict, dict, int]:
    """(rnnsim layer config, parameters without suffix, input size) of one direction."""
    cell, gates = RECURRENT[class_name]
    for key, why in REFUSED.items():
        if cfg.get(key) and not (backward and key == "go_backwards"):
            raise ConfigError(f"{where}: {key}=True is not supported: {why}.")
    p, bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
    count = 3 if bias else 2
    if len(weights) != count:
        raise ShapeError(f"{where}: expected {count} weight arrays (kernel, recurrent_kernel"
                         f"{', bias' if bias else ''}), got {len(weights)}.")
    kernel, recurrent = (np.asarray(w) for w in weights[:2])
    reset_after = cfg.get("reset_after", True) if cell == "gru" else None
    bias_shape = ((2, gates * p) if reset_after else (gates * p,))
    expected = [("kernel", kernel, (kernel.shape[0] if kernel.ndim == 2 else -1, gates * p)),
                ("recurrent_kernel", recurrent, (p, gates * p))]
    if bias:
        expected.append(("bias", np.asarray(weights[2]), bias_shape))
    mode = "" if reset_after is None else f", reset_after={reset_after}"
    for label, value, shape in expected:
        if value.shape != shape:
            raise ShapeError(f"{where}: {label} has shape {value.shape}, expected {shape} for "
                             f"units={p}{mode}.")
    layer = {"cell": cell, "units": p, "bias": bias,
             "activation": activation(cfg.get("activation", "tanh"), where)}
    order = GRU_ORDER if cell == "gru" else tuple(range(gates))
    params = {"W": reorder_blocks(kernel.T, order), "U": reorder_blocks(recurrent.T, order)}
    if cell in ("lstm", "gru"):
        layer["gate_activation"] = activation(cfg.get("recurrent_activation", "sigmoid"), where)
    if cell == "lstm":
        layer["cell_activation"] = layer["activation"]
    if cell == "gru":
        layer["reset_after"] = bool(reset_after)
    if bias:
        b = np.asarray(weights[2])
        if cell != "gru":
            params["b"] = b.copy()
        elif reset_after:
            params["b"], params["bn"] = gru_biases(reorder_blocks(b[0], order),
                                                   reorder_blocks(b[1], order))
        else:
            params["b"], params["bn"] = reorder_blocks(b, order), np.zeros(p, b.dtype)
    return layer, params, kernel.shape[0]


def _bidirectional(layer: KerasLayer) -> tuple[dict, dict, int, bool]:
    cfg, where = layer.config, layer.where
    if cfg.get("merge_mode", "concat") != "concat":
        raise ConfigError(f"{where}: merge_mode {cfg.get('merge_mode')!r} is not supported; "
                          "rnnsim concatenates the two directions (merge_mode='concat').")
    forward = unwrapped(cfg["layer"])
    backward = unwrapped(cfg.get("backward_layer") or cfg["layer"])
    names = {forward["class_name"], backward["class_name"]}
    if len(names) != 1 or not names <= set(RECURRENT):
        raise ConfigError(f"{where}: wraps {' and '.join(sorted(names))}; rnnsim runs "
                          f"Bidirectional around one of {', '.join(RECURRENT)} in both directions.")
    class_name = forward["class_name"]
    half = len(layer.weights) // 2
    spec, params, k = _recurrent(forward["config"], layer.weights[:half], class_name,
                                 f"{where} forward")
    back, reverse, _ = _recurrent(backward["config"], layer.weights[half:], class_name,
                                  f"{where} backward", backward=True)
    if back != spec:
        raise ConfigError(f"{where}: the backward layer differs from the forward one "
                          f"({back} vs {spec}); rnnsim runs both directions with one layer "
                          "config.")
    params.update({f"{name}_reverse": value for name, value in reverse.items()})
    return dict(spec, bidirectional=True), params, k, bool(forward["config"].get(
        "return_sequences", False))


def _head(layer: KerasLayer, per_step: bool, width: int) -> tuple[dict, dict]:
    cfg, where = layer.config, layer.where
    if layer.class_name == "TimeDistributed":
        inner = cfg["layer"]
        if inner["class_name"] != "Dense":
            raise ConfigError(f"{where}: wraps {inner['class_name']}; rnnsim runs "
                              "TimeDistributed(Dense) only.")
        cfg, per_step = inner["config"], True
    bias = bool(cfg.get("use_bias", True))
    if len(layer.weights) != 1 + bias:
        raise ShapeError(f"{where}: expected {1 + bias} weight arrays (kernel"
                         f"{', bias' if bias else ''}), got {len(layer.weights)}.")
    kernel = np.asarray(layer.weights[0])
    if kernel.shape != (width, int(cfg["units"])):
        raise ShapeError(f"{where}: kernel has shape {kernel.shape}, expected "
                         f"{(width, int(cfg['units']))} (the recurrent layers give {width} "
                         "features).")
    b = np.asarray(layer.weights[1]) if bias else np.zeros(kernel.shape[1], kernel.dtype)
    head = {"name": "linear" if per_step else "last_step", "units": kernel.shape[1],
            "activation": activation(cfg.get("activation", "linear"), where)}
    return head, {"head.W": kernel.T.copy(), "head.b": b}


def to_network(layers: Sequence[KerasLayer], dtype: str | None = None) -> Network:
    """The ``Network`` of a chain of Keras layers: recurrent layers, then at most one Dense or
    TimeDistributed(Dense) head. ``dtype`` defaults to the weights' own (float16 as float32)."""
    try:
        return _build(layers, dtype)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"the Keras model's config or weights are not what Keras 3 writes "
                          f"({type(exc).__name__}: {exc}); save the model with Keras 3 "
                          "(model.save('model.keras')).") from None


def _build(layers: Sequence[KerasLayer], dtype: str | None) -> Network:
    specs, params, head, sequences, width, input_size = [], {}, None, True, None, None
    for layer in layers:
        if layer.class_name == "RNN":
            found = unwrapped({"class_name": layer.class_name, "config": layer.config})
            layer = KerasLayer(found["class_name"], found["config"], layer.weights)
        if layer.class_name in PASS_THROUGH:
            continue
        if head is not None:
            raise ConfigError(f"{layer.where} follows the head '{head[0]['name']}': rnnsim "
                              "runs recurrent layers and then one Dense (or "
                              "TimeDistributed(Dense)) head.")
        if layer.class_name in HEADS:
            if not specs:
                raise ConfigError(f"{layer.where} comes before any recurrent layer; rnnsim "
                                  "imports models that start with SimpleRNN, LSTM, GRU or "
                                  "Bidirectional.")
            head = _head(layer, sequences, width)
            continue
        if not sequences:
            raise ConfigError(f"{layer.where} follows a recurrent layer with "
                              "return_sequences=False; only the last recurrent layer may drop "
                              "the sequence.")
        if layer.class_name == "Bidirectional":
            spec, found, k, sequences = _bidirectional(layer)
        elif layer.class_name in RECURRENT:
            spec, found, k = _recurrent(layer.config, layer.weights, layer.class_name,
                                        layer.where)
            sequences = bool(layer.config.get("return_sequences", False))
        else:
            supported = ", ".join([*RECURRENT, "RNN", "Bidirectional", *HEADS])
            raise ConfigError(f"{layer.where}: rnnsim does not import this layer type; "
                              f"supported: {supported} and layers that do nothing at inference "
                              f"({', '.join(PASS_THROUGH)}).")
        if width is not None and k != width:
            raise ShapeError(f"{layer.where}: its kernel takes {k} features, but the layer "
                             f"before gives {width}.")
        if not sequences and spec.get("bidirectional"):
            raise ConfigError(f"{layer.where}: Bidirectional with return_sequences=False is not "
                              "supported: Keras returns the backward direction's state after "
                              "the whole sequence, rnnsim's last step holds it after one step. "
                              "Use return_sequences=True.")
        input_size = k if input_size is None else input_size
        params.update({f"layers.{len(specs)}.{name}": v for name, v in found.items()})
        specs.append(spec)
        width = spec["units"] * (2 if spec.get("bidirectional") else 1)
    if not specs:
        raise ConfigError("the Keras model has no SimpleRNN, LSTM, GRU or Bidirectional layer.")
    if dtype is None:
        first = params["layers.0.W"].dtype
        dtype = "float64" if first == np.float64 else "float32"
    network = {"input_size": int(input_size), "dtype": dtype, "batch_first": True,
               "layers": specs}
    if head is not None:
        network["head"] = head[0]
        params.update(head[1])
    return Network(parse({"network": network}), params)
