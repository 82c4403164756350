"""Run ``.onnx`` recurrent models: RNN/LSTM/GRU nodes on rnnsim's kernels, the glue in NumPy.

``from_onnx(path)`` reads the file with the ``onnx`` package (an optional extra), checks it
completely and returns an ``OnnxModel`` whose ``run(feeds)`` is used like an ONNX Runtime
session: a dict of arrays by graph-input name in, a dict by graph-output name out. Nothing in
the file is executed: the graph is interpreted node by node, recurrent nodes through the cells
of ``rnnsim.cells`` (one cell per direction, so the two directions of a bidirectional node may
use different activations), every other supported operator by ``onnx_ops``. Gate orders are
mapped explicitly (see ``RecurrentOp`` and docs/onnx.md): ONNX stores LSTM gates as i, o, f, c
and GRU gates as z, r, h; the kernels use PyTorch's i, f, g, o and r, z, n.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..activations import BoundActivation, bind
from ..config import LayerConfig, Spec
from ..errors import ConfigError, InputError, ShapeError
from ..plugins import get_plugins
from .onnx_ops import OPS

INSTALL_HINT = "pip install 'rnnsim[onnx]' (or pip install onnx)"
MIN_OPSET = 7
FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))
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


def _import_onnx(what: str):
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401 (a submodule used below)
    except ImportError:
        raise InputError(f"reading {what} needs the onnx package: {INSTALL_HINT}.") from None
    return onnx


def from_onnx(source: str | os.PathLike | Any) -> "OnnxModel":
    """An ``OnnxModel`` for an ``.onnx`` file (or an ``onnx.ModelProto``).

    The whole model is checked here: every operator must be supported (one error lists all
    the others with the nodes using them), the recurrent nodes' attributes must be valid and
    their weights must have the shapes and dtypes the attributes imply. External weight files
    must lie inside the model's folder.
    """
    onnx = _import_onnx(f"'{source}'" if isinstance(source, (str, os.PathLike)) else "a model")
    if isinstance(source, onnx.ModelProto):
        return OnnxModel(source, "model", None)
    path = Path(source)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise InputError(f"ONNX model '{path}' {what}. Check the path.")
    try:
        proto = onnx.load_model(path, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not ONNX
        raise InputError(f"'{path}' cannot be read as an ONNX model: {exc}.") from None
    return OnnxModel(proto, f"ONNX model '{path}'", path.parent)


def _external_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors


def _load_external_data(graph, folder: Path | None, origin: str) -> None:
    """Read external tensor data, refusing any location outside ``folder``."""
    for tensor in _external_tensors(graph):
        if tensor.data_location != tensor.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{origin}: tensor '{tensor.name}' keeps its data in external file {location!r}"
        if folder is None:
            raise InputError(f"{where}; load the model from its file so the folder is known.")
        base = folder.resolve()
        target = (base / location).resolve()
        if not location or Path(location).is_absolute() or base not in target.parents:
            raise InputError(f"{where}, outside the model's folder '{base}'. rnnsim reads "
                             "external data only from files beside the model or below it.")
        if not target.is_file():
            raise InputError(f"{where}, which does not exist in '{base}'.")
        offset, length = int(info.get("offset", 0)), info.get("length")
        size = target.stat().st_size
        length = size - offset if length is None else int(length)
        if offset < 0 or length < 0 or offset + length > size:
            raise InputError(f"{where}: offset {offset} and length {length} run past the "
                             f"file's {size} bytes.")
        with open(target, "rb") as fh:
            fh.seek(offset)
            tensor.raw_data = fh.read(length)
        del tensor.external_data[:]
        tensor.data_location = tensor.DEFAULT


@dataclass
class Node:
    """One node of the graph as rnnsim runs it."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict
    run: Any

    @property
    def where(self) -> str:
        return f"node '{self.name}' ({self.op})"


def _attributes(onnx, node) -> dict:
    attrs = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", errors="replace") for v in value]
        attrs[attribute.name] = value
    return attrs


def _describe(value: np.ndarray) -> str:
    return f"{value.dtype} {tuple(value.shape)}"


def _run_glue(node: Node, inputs: list) -> tuple:
    """Run a NumPy operator; NumPy's complaints about the inputs become a ShapeError."""
    try:
        return node.run(inputs)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        shapes = ", ".join(f"'{n}' {_describe(v)}" for n, v in zip(node.inputs, inputs)
                           if v is not None)
        raise ShapeError(f"{node.where} failed on inputs {shapes}: {exc}.") from None


class OnnxModel:
    """An ONNX graph ready to run; use like an ONNX Runtime session.

    input_names, output_names : the graph's inputs (those that are not initializers) and
        outputs, in the file's order
    opset : the default-domain opset the model was written for
    recurrent : the RNN/LSTM/GRU nodes (``RecurrentNode``), in graph order
    """

    def __init__(self, proto, origin: str, folder: Path | None):
        onnx = _import_onnx(origin)
        self.origin = origin
        graph = proto.graph
        self.opset = self._opset(proto)
        self._refuse_unsupported(graph)
        _load_external_data(graph, folder, origin)
        constants = {}
        for tensor in graph.initializer:
            try:
                constants[tensor.name] = onnx.numpy_helper.to_array(tensor)
            except Exception as exc:  # malformed tensor payloads
                raise InputError(f"{origin}: initializer '{tensor.name}' cannot be read: "
                                 f"{exc}.") from None
        self.inputs = {}
        for value_info in graph.input:
            if value_info.name not in constants:
                self.inputs[value_info.name] = self._input_type(onnx, value_info)
        self.input_names = list(self.inputs)
        self.output_names = [output.name for output in graph.output]
        self.nodes: list[Node] = []
        self.recurrent: list[RecurrentNode] = []
        known = set(constants) | set(self.inputs)
        for index, proto_node in enumerate(graph.node):
            node = self._node(onnx, proto_node, index, constants, known)
            known.update(name for name in node.outputs if name)
            if node.op in OPS and all(name in constants for name in node.inputs if name):
                self._fold(node, constants)
            else:
                self.nodes.append(node)
        missing = [name for name in self.output_names if name not in known]
        if missing:
            raise ConfigError(f"{origin}: graph output(s) {missing} are produced by no node.")
        for value in constants.values():
            value.flags.writeable = False
        self._constants = constants
        self._plans: dict[tuple[str, ...], list[Node]] = {}

    # ---- loading -------------------------------------------------------------------------

    def _opset(self, proto) -> int:
        versions = [entry.version for entry in proto.opset_import
                    if entry.domain in ("", "ai.onnx")]
        if not versions:
            raise ConfigError(f"{self.origin}: the model imports no default-domain (ai.onnx) "
                              "opset, so its operators have no defined meaning.")
        if versions[0] < MIN_OPSET:
            raise ConfigError(f"{self.origin}: opset {versions[0]} is older than {MIN_OPSET}, "
                              "the first with today's RNN/LSTM/GRU. Convert it with "
                              "onnx.version_converter.convert_version(model, 14).")
        return int(versions[0])

    def _refuse_unsupported(self, graph) -> None:
        unsupported: dict[str, list[str]] = {}
        for index, node in enumerate(graph.node):
            default_domain = node.domain in ("", "ai.onnx")
            if not default_domain or (node.op_type not in OPS and node.op_type not in RECURRENT):
                op = node.op_type if default_domain else f"{node.domain}.{node.op_type}"
                unsupported.setdefault(op, []).append(node.name or f"#{index}")
        if unsupported:
            listed = "; ".join(f"{op} (node{'s' if len(names) > 1 else ''} "
                               f"{', '.join(repr(n) for n in names)})"
                               for op, names in sorted(unsupported.items()))
            supported = ", ".join(sorted(RECURRENT) + sorted(OPS))
            raise ConfigError(f"{self.origin} uses operators rnnsim does not run: {listed}. "
                              f"Supported: {supported}.")

    def _input_type(self, onnx, value_info) -> tuple[np.dtype, tuple | None]:
        tensor_type = value_info.type.tensor_type
        if not value_info.type.HasField("tensor_type"):
            raise ConfigError(f"{self.origin}: graph input '{value_info.name}' is not a tensor.")
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{self.origin}: graph input '{value_info.name}' has element type "
                              f"{tensor_type.elem_type}, which NumPy cannot hold.") from None
        if not tensor_type.HasField("shape"):
            return dtype, None
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                     for d in tensor_type.shape.dim)
        return dtype, dims

    def _node(self, onnx, proto_node, index, constants, known) -> Node:
        name = proto_node.name or f"#{index}"
        op = proto_node.op_type
        node = Node(name, op, tuple(proto_node.input), tuple(proto_node.output),
                    _attributes(onnx, proto_node), None)
        for tensor in node.inputs:
            if tensor and tensor not in known:
                raise ConfigError(f"{self.origin}: {node.where} reads '{tensor}', which no "
                                  "earlier node, graph input or initializer provides (the "
                                  "nodes must be in topological order).")
        if op in RECURRENT:
            recurrent = RecurrentNode(node, RECURRENT[op], constants, self.origin)
            node.run = recurrent
            self.recurrent.append(recurrent)
            return node
        spec = OPS[op]
        unknown = sorted(set(node.attrs) - spec.attributes)
        if unknown:
            raise ConfigError(f"{self.origin}: {node.where} has attribute(s) {unknown} that "
                              f"rnnsim does not implement; it reads {sorted(spec.attributes)}.")
        if not spec.min_inputs <= len(node.inputs) <= spec.max_inputs:
            raise ConfigError(f"{self.origin}: {node.where} has {len(node.inputs)} inputs; "
                              f"{op} takes {spec.min_inputs} to {spec.max_inputs}.")
        node.run = lambda inputs, fn=spec.fn, attrs=node.attrs: fn(inputs, attrs, self.opset)
        return node

    def _fold(self, node: Node, constants: dict) -> None:
        """Run a node whose inputs are all constants once, now."""
        inputs = [constants[name] if name else None for name in node.inputs]
        try:
            outputs = node.run(inputs)
        except (ValueError, IndexError, TypeError, KeyError) as exc:
            raise ConfigError(f"{self.origin}: {node.where} fails on its constant inputs: "
                              f"{exc}.") from None
        for name, value in zip(node.outputs, outputs):
            if name:
                constants[name] = np.asarray(value)

    # ---- running -------------------------------------------------------------------------

    def _plan(self, wanted: tuple[str, ...]) -> list[Node]:
        """The nodes needed for ``wanted`` outputs, in graph order."""
        plan = self._plans.get(wanted)
        if plan is None:
            needed = set(wanted)
            plan = []
            for node in reversed(self.nodes):
                if any(name in needed for name in node.outputs if name):
                    plan.append(node)
                    needed.update(name for name in node.inputs if name)
            plan.reverse()
            self._plans[wanted] = plan
        return plan

    def _checked_feeds(self, feeds: Mapping, check_finite: bool) -> dict[str, np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise InputError(f"run takes a dict of arrays by input name "
                             f"({', '.join(self.input_names)}), not {type(feeds).__name__}.")
        if feeds.keys() != self.inputs.keys():
            unknown = [name for name in feeds if name not in self.inputs]
            missing = [name for name in self.input_names if name not in feeds]
            parts = ([f"unknown input(s) {unknown}"] if unknown else []) + \
                    ([f"missing input(s) {missing}"] if missing else [])
            raise InputError(f"{self.origin}: {'; '.join(parts)}. The model's inputs are "
                             f"{self.input_names}.")
        values, sizes = {}, {}
        for name, (dtype, dims) in self.inputs.items():
            value = np.asarray(feeds[name])
            if value.dtype != dtype:
                raise ShapeError(f"input '{name}' has dtype {value.dtype}; the model declares "
                                 f"{dtype}. Convert it with .astype(np.{dtype}).")
            if dims is not None:
                self._check_dims(name, value.shape, dims, sizes)
            # the sum is finite unless a value is NaN/inf (or it overflows: then look closer)
            if (check_finite and value.dtype.kind == "f" and not math.isfinite(value.sum())
                    and not np.isfinite(value).all()):
                raise InputError(f"input '{name}' holds NaN or inf values. Clean the input, or "
                                 "pass check_finite=False.")
            values[name] = value
        return values

    @staticmethod
    def _check_dims(name: str, shape: tuple, dims: tuple, sizes: dict) -> None:
        """``shape`` against the declared ``dims`` (sizes, names, None); ``sizes`` collects the
        size of every named dimension seen so far, so that inputs sharing a name agree."""
        if len(shape) == len(dims) and all(
                size == dim or dim is None or dim == 0 or (isinstance(dim, str) and
                                                           sizes.setdefault(dim, size) == size)
                for size, dim in zip(shape, dims)):
            return
        shown = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
        if len(shape) != len(dims):
            raise ShapeError(f"input '{name}' has shape {shape}; the model declares "
                             f"{len(dims)} axes {shown}.")
        for axis, (size, dim) in enumerate(zip(shape, dims)):
            if isinstance(dim, int) and dim and size != dim:
                raise ShapeError(f"input '{name}' has shape {shape}; the model declares {shown} "
                                 f"(axis {axis} must be {dim}).")
            if isinstance(dim, str) and sizes[dim] != size:
                raise ShapeError(f"input '{name}' has {dim} = {size} on axis {axis}, but an "
                                 f"earlier input has {dim} = {sizes[dim]}; the model declares "
                                 "them equal.")

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None, *,
            check_finite: bool = True) -> dict[str, np.ndarray]:
        """Run the graph on ``feeds`` and return ``{output name: array}``.

        feeds : one array per name in ``input_names``, with the declared dtype and shape
        outputs : the output names wanted (default: all ``output_names``); only the nodes
            they need run
        check_finite : refuse float inputs holding NaN or inf
        """
        wanted = tuple(self.output_names if outputs is None else outputs)
        unknown = [] if outputs is None else [n for n in wanted if n not in self.output_names]
        if unknown:
            raise InputError(f"{self.origin}: unknown output(s) {unknown}; the model's outputs "
                             f"are {self.output_names}.")
        values = dict(self._constants)
        values.update(self._checked_feeds(feeds, check_finite))
        for node in self._plan(wanted):
            inputs = [values[name] if name else None for name in node.inputs]
            # A recurrent node checks its inputs itself, with errors naming them.
            results = node.run(inputs) if node.op in RECURRENT else _run_glue(node, inputs)
            for name, value in zip(node.outputs, results):
                if name:
                    values[name] = value
        return {name: values[name] if values[name].flags.writeable else values[name].copy()
                for name in wanted}

    def describe(self) -> dict:
        """Inputs, outputs, opset, operator counts and the recurrent nodes, as plain data."""
        ops: dict[str, int] = {}
        for node in self.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        return {
            "opset": self.opset,
            "inputs": [{"name": name, "dtype": str(dtype),
                        "shape": None if dims is None else list(dims)}
                       for name, (dtype, dims) in self.inputs.items()],
            "outputs": self.output_names,
            "ops": ops,
            "recurrent": [node.describe() for node in self.recurrent],
        }


class RecurrentNode:
    """An ONNX RNN/LSTM/GRU node checked against its attributes and bound to rnnsim cells.

    Weights that are initializers are checked and converted to kernel order once, here;
    weights computed by the graph are checked and converted on every run.
    """

    def __init__(self, node: Node, spec: RecurrentOp, constants: dict, origin: str):
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
            raise ConfigError(f"{self.where}: direction {self.direction!r} is not one of "
                              f"{', '.join(DIRECTIONS)}.")
        self.directions = 2 if self.direction == "bidirectional" else 1
        self.layout = attrs.get("layout", 0)
        if self.layout not in (0, 1):
            raise ConfigError(f"{self.where}: layout {self.layout} must be 0 (time first) or 1 "
                              "(batch first).")
        self.clip = attrs.get("clip")
        if self.clip is not None and not self.clip > 0:
            raise ConfigError(f"{self.where}: clip {self.clip} must be positive.")
        self.input_forget = bool(attrs.get("input_forget", 0))
        self.linear_before_reset = bool(attrs.get("linear_before_reset", 0))
        weight_names = dict(zip(spec.inputs, node.inputs))
        R = constants.get(weight_names["R"])
        self.hidden_size = attrs.get("hidden_size", None if R is None else R.shape[-1])
        if not isinstance(self.hidden_size, int) or self.hidden_size <= 0:
            raise ConfigError(f"{self.where}: hidden_size must be a positive integer (got "
                              f"{self.hidden_size!r}).")
        self.activations = self._activations()
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
                           for direction in self._kernel_params(weights)]
            self.dtype, self.input_size = weights["W"].dtype, weights["W"].shape[2]
        self.cells = self._cells()

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
            raise ConfigError(f"{self.where}: activations {names} must list {per_direction} "
                              f"function(s) per direction ({per_direction * D} for direction "
                              f"'{self.direction}').")
        alphas = iter(attrs.get("activation_alpha", []))
        betas = iter(attrs.get("activation_beta", []))
        plugins = get_plugins()
        bound, labels = [], []
        for i, name in enumerate(names):
            key = str(name).lower()
            if key not in ACTIVATIONS:
                raise ConfigError(f"{self.where}: activations[{i}] {name!r} is not an ONNX "
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
            spec_ = Spec.model_validate({"name": rnnsim_name, **params})
            bound.append(bind(spec_, f"{self.where}: activations[{i}]", plugins))
            shown = ", ".join(f"{key}={value:g}" for key, value in params.items())
            labels.append(f"{name}({shown})" if shown else str(name))
        self.activation_labels = [labels[d * per_direction:(d + 1) * per_direction]
                                  for d in range(D)]
        return [[bound[d * per_direction + slot] for slot in spec.activation_slots]
                for d in range(D)]

    def _cells(self) -> list:
        """One rnnsim cell per direction, each with that direction's activations."""
        options = {"clip": None if self.clip is None else float(self.clip)}
        if self.spec.cell == "lstm":
            options["input_forget"] = self.input_forget
        if self.spec.cell == "gru":
            options["reset_after"] = self.linear_before_reset
        config = LayerConfig(cell=self.spec.cell, units=self.hidden_size, **options)
        cell_class = get_plugins().cells.get(self.spec.cell, self.where).cls
        return [cell_class(config, self.input_size or 1, activations, self.where)
                for activations in self.activations]

    # ---- weights -------------------------------------------------------------------------

    def _kernel_params(self, weights: dict) -> list[dict[str, np.ndarray]]:
        """Check W, R, B, P against the attributes; per direction, the kernel's parameters."""
        W, R, B, P = (weights.get(key) for key in ("W", "R", "B", "P"))
        D, G, p = self.directions, self.spec.gates, self.hidden_size
        self._check_weight("W", W, W.dtype)
        if W.ndim != 3 or W.shape[:2] != (D, G * p):
            self._shape_error("W", W, f"(num_directions={D}, {G}*hidden_size={G * p}, "
                                      "input_size)")
        k = W.shape[2]
        self._check_weight("R", R, W.dtype, (D, G * p, p))
        if B is not None:
            self._check_weight("B", B, W.dtype, (D, 2 * G * p))
        if P is not None:
            self._check_weight("P", P, W.dtype, (D, 3 * p))
        order = list(self.spec.gate_order)
        params = []
        for d in range(D):
            kernel = {"W": self._reorder(W[d].reshape(G, p, k), order, (G * p, k)),
                      "U": self._reorder(R[d].reshape(G, p, p), order, (G * p, p))}
            if B is not None:
                Wb = B[d, :G * p].reshape(G, p)[order].reshape(-1)
                Rb = B[d, G * p:].reshape(G, p)[order].reshape(-1)
                if self.spec.cell == "gru":  # Rb of n stays inside r * (...) in the kernel
                    kernel["b"] = np.concatenate([Wb[:2 * p] + Rb[:2 * p], Wb[2 * p:]])
                    kernel["bn"] = np.ascontiguousarray(Rb[2 * p:])
                else:
                    kernel["b"] = Wb + Rb
            if P is not None:  # ONNX P: i, o, f; kernel: i, f, o
                kernel["P"] = np.ascontiguousarray(P[d].reshape(3, p)[[0, 2, 1]])
            params.append(kernel)
        return params

    @staticmethod
    def _reorder(blocks: np.ndarray, order: list[int], shape) -> np.ndarray:
        return np.ascontiguousarray(blocks[order].reshape(shape))

    def _tensor(self, key: str) -> str:
        name = self.names.get(key, "")
        return f"{key} ('{name}')" if name and name != key else key

    def _shape_error(self, key: str, value: np.ndarray, expected: str):
        raise ShapeError(f"{self.where}: {self._tensor(key)} has shape {value.shape}; "
                         f"expected {expected} for hidden_size={self.hidden_size}, "
                         f"direction='{self.direction}'" +
                         (f", layout={self.layout}" if key in ("X", "initial_h", "initial_c")
                          else "") + ".")

    def _check_weight(self, key, value, dtype, shape=None) -> None:
        """``value``'s dtype is float32/float64 and ``dtype``; its shape ``shape`` if given."""
        if value.dtype not in FLOAT_TYPES:
            raise ShapeError(f"{self.where}: {self._tensor(key)} has dtype {value.dtype}; "
                             "rnnsim runs float32 and float64.")
        if value.dtype != dtype:
            raise ShapeError(f"{self.where}: {self._tensor(key)} has dtype {value.dtype}, but W "
                             f"has {dtype}; all float inputs of a node share one dtype.")
        if shape is not None and value.shape != shape:
            self._shape_error(key, value, str(shape))

    # ---- running -------------------------------------------------------------------------

    def __call__(self, inputs: list) -> tuple:
        spec = self.spec
        values = dict(zip(spec.inputs, inputs))
        params = self.params
        if params is None:
            params = self._kernel_params(values)
        W = values["W"] if self.params is None else None
        dtype = self.dtype if W is None else W.dtype
        k = self.input_size if W is None else W.shape[2]
        x = self._checked_x(values["X"], dtype, k)
        T, B = x.shape[:2]
        lengths = self._lengths(values.get("sequence_lens"), T, B)
        # (D, B, p) copies the kernels overwrite with the final states, direction by direction
        h = self._state("initial_h", values.get("initial_h"), dtype, B)
        c = (self._state("initial_c", values.get("initial_c"), dtype, B)
             if spec.cell == "lstm" else None)
        outs = []
        for d, (cell, kernel_params) in enumerate(zip(self.cells, params)):
            reverse = d == 1 or self.direction == "reverse"
            extra = {} if c is None else {"c": c[d]}
            outs.append(cell.run_direction(kernel_params, "", x, h[d], lengths, reverse, **extra))
        return self._outputs(outs, h, c, values.get("sequence_lens"))

    def _checked_x(self, X, dtype, k) -> np.ndarray:
        if X.ndim != 3 or X.shape[2] != k:
            axes = "seq_length, batch_size" if self.layout == 0 else "batch_size, seq_length"
            self._shape_error("X", X, f"({axes}, input_size={k})")
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
                             f"{_describe(lens)}; expected ({B},) int32, one length per "
                             "sequence.")
        if np.any(lens < 0) or np.any(lens > T):
            raise InputError(f"{self.where}: {self._tensor('sequence_lens')} holds "
                             f"{lens.tolist()}; every length must lie in [0, {T}].")
        return lens.astype(np.int64)

    def _state(self, key: str, value, dtype, B: int) -> np.ndarray:
        """A fresh (num_directions, B, hidden_size) copy of initial_h / initial_c, or zeros."""
        D, p = self.directions, self.hidden_size
        if value is None:
            return np.zeros((D, B, p), dtype)
        expected = (B, D, p) if self.layout else (D, B, p)
        if value.shape != expected:
            self._shape_error(key, value, str(expected))
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


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only copy of ``array`` that owns its memory."""
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array
