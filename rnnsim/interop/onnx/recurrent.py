"""ONNX's RNN, LSTM and GRU nodes bound to rnnsim's cells: attributes checked, gate orders
mapped (ONNX stores LSTM gates as i, o, f, c and GRU gates as z, r, h; the kernels use PyTorch's
i, f, g, o and r, z, n), one cell per direction."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...activations import BoundActivation, bind
from ...config import LayerConfig, Spec
from ...errors import ConfigError, InputError, ShapeError, shown
from ...plugins import get_plugins
from ..gates import gru_biases, reorder_blocks
from .load import FLOAT_TYPES, Node, describe_array
from .onestep import StepBinding


DIRECTIONS = ("forward", "reverse", "bidirectional")


# ONNX activation name (lower case) -> (rnnsim activation, takes alpha, takes beta).
ACTIVATIONS = {
    "relu": ("relu", False, False), "tanh": ("tanh", False, False),
    "sigmoid": ("sigmoid", False, False), "affine": ("affine", True, True),
    "leakyrelu": ("leaky_relu", True, False), "thresholdedrelu": ("thresholded_relu", True, False),
    "scaledtanh": ("scaled_tanh", True, True), "hardsigmoid": ("hard_sigmoid", True, True),
    "elu": ("elu", True, False), "softsign": ("softsign", False, False),
    "softplus": ("softplus", False, False),
}


# ONNX Runtime's values for an alpha/beta the lists run out of; every other one is 0.
ACTIVATION_DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}


@dataclass(frozen=True)
class RecurrentOp:
    """How one ONNX recurrent operator maps onto an rnnsim cell.

    gate_order : for each kernel gate block (PyTorch order), the ONNX block it comes from
    activation_slots : for each kernel activation (act0, act1...), the index in ONNX's list
    """

    cell: str
    gates: int
    activations: tuple[str, ...]
    gate_order: tuple[int, ...]
    activation_slots: tuple[int, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: frozenset[str]


_COMMON_ATTRIBUTES = ("activation_alpha", "activation_beta", "activations", "clip", "direction",
                      "hidden_size", "layout")


_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h")


RECURRENT = {
    # h_t = f(W x + R h + Wb + Rb)
    "RNN": RecurrentOp("elman", 1, ("Tanh",), (0,), (0,), _INPUTS, ("Y", "Y_h"),
                       frozenset(_COMMON_ATTRIBUTES)),
    # ONNX blocks i, o, f, c -> kernel i, f, g(=c), o; ONNX activations (f, g, h) -> kernel
    # act0 = h (on c_t), act1 = f (gates), act2 = g (cell input).
    "LSTM": RecurrentOp("lstm", 4, ("Sigmoid", "Tanh", "Tanh"), (0, 2, 3, 1), (2, 0, 1),
                        _INPUTS + ("initial_c", "P"), ("Y", "Y_h", "Y_c"),
                        frozenset(_COMMON_ATTRIBUTES + ("input_forget",))),
    # ONNX blocks z, r, h -> kernel r, z, n(=h); ONNX activations (f, g) -> kernel act0 = g
    # (candidate), act1 = f (gates).
    "GRU": RecurrentOp("gru", 3, ("Sigmoid", "Tanh"), (1, 0, 2), (1, 0), _INPUTS, ("Y", "Y_h"),
                       frozenset(_COMMON_ATTRIBUTES + ("linear_before_reset",))),
}


def build_cell(cell: str, p: int, k: int, activations: list[BoundActivation], options: dict,
               where: str):
    """An rnnsim cell ``cell`` of ``p`` units on ``k`` inputs with bound ``activations``
    (in the kernel's slots) and the cell's ``options``; errors name ``where``."""
    config = LayerConfig(cell=cell, units=p, **options)
    return get_plugins().cells.get(cell, where).cls(config, k, activations, where)


def bind_activation(name: str, where: str, **params) -> BoundActivation:
    """rnnsim's activation ``name`` with its parameters, bound for the kernels."""
    return bind(Spec.model_validate({"name": name, **params}), where, get_plugins())


class RecurrentNode:
    """An ONNX RNN/LSTM/GRU node checked against its attributes and bound to rnnsim cells.

    Weights that are initializers are checked and converted to kernel order once, here;
    weights computed by the graph are checked and converted on every run. Without a
    ``hidden_size`` attribute the size is R's last dimension: from the initializer, from its
    declared or inferred shape (``shapes``: tensor name -> (dtype, dims)), else on every run.
    """

    def __init__(self, node: Node, spec: RecurrentOp, constants: dict, origin: str,
                 shapes: dict):
        self.node = node
        self.spec = spec
        self.where = f"{origin}: {node.where}"
        attrs = node.attrs
        unknown = sorted(set(attrs) - spec.attributes)
        if unknown:
            raise ConfigError(f"{self.where}: unknown attribute(s) {unknown}; {node.op} takes "
                              f"{sorted(spec.attributes)}.")
        if len(node.inputs) < 3 or not all(node.inputs[:3]):
            raise ConfigError(f"{self.where}: needs the inputs X, W and R.")
        if len(node.inputs) > len(spec.inputs) or len(node.outputs) > len(spec.outputs):
            raise ConfigError(f"{self.where}: takes at most the inputs {list(spec.inputs)} and "
                              f"the outputs {list(spec.outputs)}.")
        self.direction = attrs.get("direction", "forward")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"{self.where}: direction {shown(self.direction)} is not one of "
                              f"{', '.join(DIRECTIONS)}.")
        self.directions = 2 if self.direction == "bidirectional" else 1
        self.layout = attrs.get("layout", 0)
        if self.layout not in (0, 1):
            raise ConfigError(f"{self.where}: layout {self.layout} must be 0 (time first) or 1 "
                              "(batch first).")
        self.clip = attrs.get("clip")
        if self.clip is not None and not (_finite_number(self.clip) and self.clip > 0):
            raise ConfigError(f"{self.where}: clip {shown(self.clip)} must be positive and "
                              "finite (a float attribute).")
        self.input_forget = bool(attrs.get("input_forget", 0))
        self.linear_before_reset = bool(attrs.get("linear_before_reset", 0))
        weight_names = dict(zip(spec.inputs, node.inputs))
        self.hidden_size = attrs.get("hidden_size", _last_dim(constants, shapes,
                                                              weight_names["R"]))
        if self.hidden_size is not None and (not isinstance(self.hidden_size, int)
                                             or self.hidden_size <= 0):
            raise ConfigError(f"{self.where}: hidden_size must be a positive integer (got "
                              f"{shown(self.hidden_size)}).")
        self.activations = self._activations()
        self.state_names = ("h", "c") if spec.cell == "lstm" else ("h",)
        self.names = {key: name for key, name in weight_names.items() if name}
        self.dtype = None
        self.input_size = None
        self.params = None
        weights = {key: constants.get(self.names.get(key)) for key in ("W", "R", "B", "P")}
        self.weight_shapes = {key: tuple(v.shape) for key, v in weights.items() if v is not None}
        constant = all(weights[key] is not None for key in ("W", "R", "B", "P")
                       if key in self.names)
        if constant:  # private copies, read-only: the cells skip their per-call weight check
            self.params = [{key: _read_only(value) for key, value in direction.items()}
                           for direction in self._kernel_params(weights, self.hidden_size)]
            self.dtype, self.input_size = weights["W"].dtype, weights["W"].shape[2]
        self._cells: dict[int, list] = {}
        # the cells of the known hidden size ([] when each run's R gives it)
        self.cells = [] if self.hidden_size is None else self.cells_for(self.hidden_size)
        self.bindings: dict[int, StepBinding] = {}  # batch size -> its one-step call

    # ---- attributes ----------------------------------------------------------------------

    def _activations(self) -> list[list[BoundActivation]]:
        """Bound kernel activations per direction, consuming activation_alpha/beta in list
        order across all functions (and directions), as ONNX Runtime does."""
        attrs, spec, D = self.node.attrs, self.spec, self.directions
        per_direction = len(spec.activations)
        names = list(attrs.get("activations", spec.activations * D))
        if spec.cell == "elman" and D == 1 and len(names) == 2:
            names = names[:1]  # ONNX Runtime's rule for the old default ["Tanh", "Tanh"]
        if len(names) != per_direction * D:
            raise ConfigError(f"{self.where}: activations {shown(names)} must list "
                              f"{per_direction} function(s) per direction "
                              f"({per_direction * D} for direction '{self.direction}').")
        for key in ("activation_alpha", "activation_beta"):
            values = attrs.get(key, [])
            if not isinstance(values, list) or not all(_finite_number(v) for v in values):
                raise ConfigError(f"{self.where}: {key} must be a list of finite numbers (a "
                                  f"floats attribute), not {shown(values)}.")
        alphas = iter(attrs.get("activation_alpha", []))
        betas = iter(attrs.get("activation_beta", []))
        bound, labels = [], []
        for i, name in enumerate(names):
            key = str(name).lower()
            if key not in ACTIVATIONS:
                raise ConfigError(f"{self.where}: activations[{i}] {shown(name)} is not an ONNX "
                                  "activation; use one of Relu, Tanh, Sigmoid, Affine, "
                                  "LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, "
                                  "Softsign, Softplus.")
            rnnsim_name, takes_alpha, takes_beta = ACTIVATIONS[key]
            default_alpha, default_beta = ACTIVATION_DEFAULTS.get(key, (0.0, 0.0))
            params = {}
            if takes_alpha:
                params["alpha"] = float(next(alphas, default_alpha))
            if takes_beta:
                params["beta"] = float(next(betas, default_beta))
            bound.append(bind_activation(rnnsim_name, f"{self.where}: activations[{i}]",
                                         **params))
            described = ", ".join(f"{key}={value:g}" for key, value in params.items())
            labels.append(f"{name}({described})" if described else str(name))
        self.activation_labels = [labels[d * per_direction:(d + 1) * per_direction]
                                  for d in range(D)]
        return [[bound[d * per_direction + slot] for slot in spec.activation_slots]
                for d in range(D)]

    def cells_for(self, p: int) -> list:
        """One rnnsim cell of ``p`` units per direction, each with that direction's
        activations (built once per size)."""
        cells = self._cells.get(p)
        if cells is None:
            options = {"clip": None if self.clip is None else float(self.clip)}
            if self.spec.cell == "lstm":
                options["input_forget"] = self.input_forget
            if self.spec.cell == "gru":
                options["reset_after"] = self.linear_before_reset
            cells = self._cells[p] = [build_cell(self.spec.cell, p, self.input_size or 1,
                                                 activations, options, self.where)
                                      for activations in self.activations]
        return cells

    # ---- weights -------------------------------------------------------------------------

    def _kernel_params(self, weights: dict, p: int) -> list[dict[str, np.ndarray]]:
        """Check W, R, B, P against the attributes and the hidden size ``p``; per direction,
        the kernel's parameters."""
        W, R, B, P = (weights.get(key) for key in ("W", "R", "B", "P"))
        D, G = self.directions, self.spec.gates
        self._check_weight("W", W, W.dtype)
        if W.ndim != 3 or W.shape[:2] != (D, G * p):
            self._shape_error("W", W, f"(num_directions={D}, {G}*hidden_size={G * p}, "
                                      "input_size)", p)
        self._check_weight("R", R, W.dtype, p, (D, G * p, p))
        if B is not None:
            self._check_weight("B", B, W.dtype, p, (D, 2 * G * p))
        if P is not None:
            self._check_weight("P", P, W.dtype, p, (D, 3 * p))
        order = list(self.spec.gate_order)
        params = []
        for d in range(D):
            kernel = {"W": reorder_blocks(W[d], order), "U": reorder_blocks(R[d], order)}
            if B is not None:
                Wb = reorder_blocks(B[d, :G * p], order)
                Rb = reorder_blocks(B[d, G * p:], order)
                if self.spec.cell == "gru":  # Rb of n stays inside r * (...) in the kernel
                    kernel["b"], kernel["bn"] = gru_biases(Wb, Rb)
                else:
                    kernel["b"] = Wb + Rb
            if P is not None:  # ONNX P: i, o, f; kernel: i, f, o
                kernel["P"] = np.ascontiguousarray(P[d].reshape(3, p)[[0, 2, 1]])
            params.append(kernel)
        return params

    def _tensor(self, key: str) -> str:
        name = self.names.get(key, "")
        return f"{key} ('{name}')" if name and name != key else key

    def _shape_error(self, key: str, value: np.ndarray, expected: str, p: int):
        raise ShapeError(f"{self.where}: {self._tensor(key)} has shape {value.shape}; "
                         f"expected {expected} for hidden_size={p}, "
                         f"direction='{self.direction}'" +
                         (f", layout={self.layout}" if key in ("X", "initial_h", "initial_c")
                          else "") + ".")

    def _check_weight(self, key, value, dtype, p=None, shape=None) -> None:
        """``value``'s dtype is float32/float64 and ``dtype``; its shape ``shape`` if given."""
        if value.dtype not in FLOAT_TYPES:
            raise ShapeError(f"{self.where}: {self._tensor(key)} has dtype {value.dtype}; "
                             "rnnsim runs float32 and float64.")
        if value.dtype != dtype:
            raise ShapeError(f"{self.where}: {self._tensor(key)} has dtype {value.dtype}, but W "
                             f"has {dtype}; all float inputs of a node share one dtype.")
        if shape is not None and value.shape != shape:
            self._shape_error(key, value, str(shape), p)

    # ---- running -------------------------------------------------------------------------

    def __call__(self, inputs: list) -> tuple:
        spec = self.spec
        values = dict(zip(spec.inputs, inputs))
        params = self.params
        p = self.hidden_size or self._size_from_r(values["R"])
        if params is None:
            params = self._kernel_params(values, p)
        W = values["W"] if self.params is None else None
        dtype = self.dtype if W is None else W.dtype
        k = self.input_size if W is None else W.shape[2]
        x = self._checked_x(values["X"], dtype, k, p)
        T, B = x.shape[:2]
        lengths = self._lengths(values.get("sequence_lens"), T, B)
        # (D, B, p) copies the kernels overwrite with the final states, direction by direction
        h = self._state("initial_h", values.get("initial_h"), dtype, B, p)
        c = (self._state("initial_c", values.get("initial_c"), dtype, B, p)
             if spec.cell == "lstm" else None)
        if T == 1 and self.params is not None and values.get("sequence_lens") is None:
            return self._outputs(self._one_step(x, h, c), h, c, None)
        outs = []
        for d, (cell, kernel_params) in enumerate(zip(self.cells_for(p), params)):
            reverse = d == 1 or self.direction == "reverse"
            extra = {} if c is None else {"c": c[d]}
            outs.append(cell.run_direction(kernel_params, "", x, h[d], lengths, reverse, **extra))
        return self._outputs(outs, h, c, values.get("sequence_lens"))

    def binding(self, batch: int) -> StepBinding:
        """The compiled one-step call of every direction for ``batch`` sequences, bound once
        (the weights must be constants and the hidden size known)."""
        if batch not in self.bindings:
            self.bindings[batch] = StepBinding(self, batch)
        return self.bindings[batch]

    def _one_step(self, x, h, c) -> list[np.ndarray]:
        """One timestep (x (1, B, k)) of every direction through ``binding``, h and c
        (D, B, p) updated in place: the cells' own per-call work (weight checks, buffers, a
        dispatch on a dozen arguments) costs more than a step. Returns each direction's
        output (1, B, p); the caller checks the values."""
        binding = self.binding(x.shape[1])
        given = {"h": h, "c": c}
        with binding.lock:
            for name, view in binding.states.items():
                view[...] = given[name]
            binding(x, check_finite=False)
            for name, view in binding.states.items():
                given[name][...] = view
            return [binding.y[:, d].copy() for d in range(self.directions)]

    def _size_from_r(self, R) -> int:
        """The hidden size R (num_directions, gates*hidden_size, hidden_size) implies."""
        if R.ndim != 3 or R.shape[2] == 0:
            raise ShapeError(f"{self.where}: {self._tensor('R')} has shape {R.shape}; expected "
                             f"(num_directions={self.directions}, {self.spec.gates}*hidden_size, "
                             "hidden_size) (the node has no hidden_size attribute, so R's last "
                             "axis gives it).")
        return int(R.shape[2])

    def _checked_x(self, X, dtype, k, p) -> np.ndarray:
        if X.ndim != 3 or X.shape[2] != k:
            axes = "seq_length, batch_size" if self.layout == 0 else "batch_size, seq_length"
            self._shape_error("X", X, f"({axes}, input_size={k})", p)
        if X.dtype != dtype:
            raise ShapeError(f"{self.where}: {self._tensor('X')} has dtype {X.dtype}, but the "
                             f"weights have {dtype}; all float inputs of a node share one "
                             "dtype.")
        x = X.transpose(1, 0, 2) if self.layout else X
        if x.shape[0] == 0:
            raise ShapeError(f"{self.where}: {self._tensor('X')} has shape {X.shape}: no "
                             "timesteps to run.")
        return np.ascontiguousarray(x)

    def _lengths(self, lens, T: int, B: int) -> np.ndarray:
        if lens is None:
            return np.full(B, T, np.int64)
        if lens.shape != (B,) or lens.dtype.kind not in "iu":
            raise ShapeError(f"{self.where}: {self._tensor('sequence_lens')} is "
                             f"{describe_array(lens)}; expected ({B},) int32, one length per "
                             "sequence.")
        if np.any(lens < 0) or np.any(lens > T):
            raise InputError(f"{self.where}: {self._tensor('sequence_lens')} holds "
                             f"{lens.tolist()}; every length must lie in [0, {T}].")
        return lens.astype(np.int64)

    def _state(self, key: str, value, dtype, B: int, p: int) -> np.ndarray:
        """A fresh (num_directions, B, hidden_size) copy of initial_h / initial_c, or zeros."""
        D = self.directions
        if value is None:
            return np.zeros((D, B, p), dtype)
        expected = (B, D, p) if self.layout else (D, B, p)
        if value.shape != expected:
            self._shape_error(key, value, str(expected), p)
        if value.dtype != dtype:
            raise ShapeError(f"{self.where}: {self._tensor(key)} has dtype {value.dtype}, but "
                             f"the weights have {dtype}.")
        return np.array(value.transpose(1, 0, 2) if self.layout else value, order="C")

    def _outputs(self, outs, h, c, lens) -> tuple:
        """Y, Y_h (and Y_c) in the node's layout; None for outputs the node leaves unnamed."""
        named = self.node.outputs
        results = []
        if named and named[0]:
            Y = outs[0][:, None] if len(outs) == 1 else np.stack(outs, axis=1)  # (T, D, B, p)
            results.append(np.ascontiguousarray(Y.transpose(2, 0, 1, 3)) if self.layout else Y)
        else:
            results.append(None)
        empty = None if lens is None or lens.all() else lens == 0
        for index, final in ((1, h), (2, c)):
            if len(named) <= index or not named[index]:
                results.append(None)
                continue
            if empty is not None:
                final[:, empty] = 0  # ONNX Runtime: a sequence of length 0 ends in zeros
            results.append(np.ascontiguousarray(final.transpose(1, 0, 2)) if self.layout
                           else final)
        return tuple(results[:len(named)])

    def describe(self) -> dict:
        """The node's attributes and weight shapes as plain data (for ``rnnsim info``)."""
        return {
            "name": self.node.name, "op": self.node.op, "direction": self.direction,
            "hidden_size": self.hidden_size, "input_size": self.input_size,
            "layout": self.layout, "dtype": None if self.dtype is None else str(self.dtype),
            "activations": self.activation_labels,
            "clip": self.clip,
            **({"input_forget": self.input_forget} if self.spec.cell == "lstm" else {}),
            **({"linear_before_reset": self.linear_before_reset}
               if self.spec.cell == "gru" else {}),
            "inputs": {key: name for key, name in self.names.items()},
            "weights": {key: list(shape) for key, shape in self.weight_shapes.items()},
        }


def _finite_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _last_dim(constants: dict, shapes: dict, name: str) -> int | None:
    """The last dimension of tensor ``name`` if known before a run, else None."""
    if name in constants:
        return int(constants[name].shape[-1]) if constants[name].ndim else None
    dims = shapes.get(name, (None, None))[1]
    return dims[-1] if dims and isinstance(dims[-1], int) and dims[-1] > 0 else None


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only copy of ``array`` that owns its memory."""
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array
