"""An ONNX graph run node by node like an ONNX Runtime session: recurrent nodes on rnnsim's
kernels (``recurrent``), every other supported operator in NumPy (``ops``)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ... import guards
from ...errors import ConfigError, InputError, NonfiniteError, RnnsimError, ShapeError
from .fusion import fuse
from .load import (Node, describe_array, implicit_inputs, import_onnx, load_external_data,
                   read_attributes)
from .onestep import OneStepGraph
from .ops import OPS
from .recurrent import RECURRENT, RecurrentNode
from .reference import RANDOM_OPS, STANDARD_DOMAINS, bind_reference


MIN_OPSET = 7




def _run_node(node: Node, inputs: list, values: dict) -> tuple:
    """Run a node; NumPy's (or onnx.reference's) complaints about the inputs become a
    ShapeError naming the node and its inputs. Recurrent and fused nodes check their inputs
    themselves, with errors naming them."""
    try:
        return node.run(inputs, values)
    except RnnsimError:
        raise
    except Exception as exc:  # noqa: BLE001
        shapes = ", ".join(f"'{n}' {describe_array(v)}" for n, v in zip(node.inputs, inputs)
                           if isinstance(v, np.ndarray))
        raise ShapeError(f"{node.where} failed on inputs {shapes}: {exc}.") from None


def _owned(value):
    """A graph output the caller may keep and change: constants are copied."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return value.copy()
    return value


class OnnxModel:
    """An ONNX graph ready to run; use like an ONNX Runtime session.

    input_names, output_names : the graph's inputs (those that are not initializers) and
        outputs, in the file's order
    opset : the default-domain opset the model was written for
    recurrent : the RNN/LSTM/GRU nodes (``RecurrentNode``), in graph order
    """

    def __init__(self, proto, origin: str, folder: Path | None):
        onnx = import_onnx(origin)
        self.origin = origin
        self.opset = self._opset(proto)
        if len(proto.functions):  # a model's own functions hold standard operators: inline them
            try:
                proto = onnx.inliner.inline_local_functions(proto)
            except Exception as exc:  # noqa: BLE001 (the C++ inliner's complaints)
                raise ConfigError(f"{origin}: the model's functions cannot be inlined: "
                                  f"{exc}.") from None
        graph = proto.graph
        self._refuse_other_domains(graph)
        load_external_data(onnx, graph, folder, origin)
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
        self._all_outputs = tuple(self.output_names)
        self.nodes: list[Node] = []
        self.recurrent: list[RecurrentNode] = []
        nodes = [Node(proto_node.name or f"#{index}", proto_node.op_type,
                      tuple(proto_node.input), tuple(proto_node.output),
                      read_attributes(onnx, proto_node), None,
                      implicit=implicit_inputs(onnx, proto_node))
                 for index, proto_node in enumerate(graph.node)]
        self._check_order(nodes, set(constants) | set(self.inputs))
        shapes = self._inferred_types(onnx, proto)
        own = [node.op in RECURRENT or self._bind_own(node) for node in nodes]
        others = iter(bind_reference(onnx, proto, [proto_node for proto_node, mine in
                                                   zip(graph.node, own) if not mine], origin))
        for node, mine in zip(nodes, own):
            if node.op in RECURRENT:  # bound here, to the weights folded so far
                recurrent = RecurrentNode(node, RECURRENT[node.op], constants, origin, shapes)
                node.run = lambda inputs, values, recurrent=recurrent: recurrent(inputs)
                self.recurrent.append(recurrent)
            elif not mine:
                node.run, node.reference = next(others), True
            if (node.op not in RECURRENT and node.op not in RANDOM_OPS
                    and all(name in constants for name in node.inputs + node.implicit
                            if name)):
                self._fold(node, constants)
            else:
                self.nodes.append(node)
        for value in constants.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        self._constants = constants
        self.fused = fuse(self.nodes, constants, shapes, self.output_names, origin)
        # wanted outputs -> (the nodes to run, their compiled one-step call or None)
        self._plans: dict[tuple[str, ...], tuple[list[Node], OneStepGraph | None]] = {}
        self._recurrent_of = {id(r.node): r for r in self.recurrent}

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

    def _refuse_other_domains(self, graph) -> None:
        """Operators outside the standard domains, listed in one ConfigError."""
        unsupported: dict[str, list[str]] = {}
        for index, node in enumerate(graph.node):
            if node.domain not in STANDARD_DOMAINS:
                unsupported.setdefault(f"{node.domain}.{node.op_type}", []).append(
                    node.name or f"#{index}")
        if unsupported:
            listed = "; ".join(f"{op} (node{'s' if len(names) > 1 else ''} "
                               f"{', '.join(repr(n) for n in names)})"
                               for op, names in sorted(unsupported.items()))
            raise ConfigError(f"{self.origin} uses operators outside the standard ONNX domains, "
                              f"which rnnsim does not run: {listed}. rnnsim runs every operator "
                              "of the default domain (ai.onnx) and of ai.onnx.ml; export the "
                              "model without custom or runtime-specific operators (e.g. without "
                              "ONNX Runtime's graph optimizations saved into the file).")

    def _inferred_types(self, onnx, proto) -> dict[str, tuple[np.dtype, tuple | None]]:
        """Dtype and dimensions of every tensor ONNX's shape inference can type (the graph's
        inputs at least): what the recurrent nodes and the fusion read before a run."""
        infos = list(proto.graph.input)
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
            infos += list(inferred.graph.value_info) + list(inferred.graph.output)
        except Exception:  # noqa: BLE001 (shape inference is a help here, never required)
            pass
        types = {}
        for info in infos:
            if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
                try:
                    types[info.name] = self._input_type(onnx, info)
                except ConfigError:
                    continue
        return types

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

    def _check_order(self, nodes: list[Node], known: set) -> None:
        for node in nodes:
            for tensor in node.inputs + node.implicit:
                if tensor and tensor not in known:
                    raise ConfigError(f"{self.origin}: {node.where} reads '{tensor}', which no "
                                      "earlier node, graph input or initializer provides (the "
                                      "nodes must be in topological order).")
            known.update(name for name in node.outputs if name)
        missing = [name for name in self.output_names if name not in known]
        if missing:
            raise ConfigError(f"{self.origin}: graph output(s) {missing} are produced by no "
                              "node.")

    def _bind_own(self, node: Node) -> bool:
        """Bind ``node`` to rnnsim's own NumPy function if ``ops`` has one for its operator,
        attributes and input count; False otherwise."""
        spec = OPS.get(node.op)
        if (spec is None or not set(node.attrs) <= spec.attributes
                or not spec.min_inputs <= len(node.inputs) <= spec.max_inputs):
            return False
        node.run = lambda inputs, values, fn=spec.fn, attrs=node.attrs: fn(inputs, attrs,
                                                                          self.opset)
        return True

    def _fold(self, node: Node, constants: dict) -> None:
        """Run a node whose inputs are all constants once, now."""
        inputs = [constants[name] if name else None for name in node.inputs]
        try:
            outputs = node.run(inputs, constants)
        except RnnsimError:
            raise
        except Exception as exc:  # noqa: BLE001 (NumPy's and onnx.reference's complaints)
            raise ConfigError(f"{self.origin}: {node.where} fails on its constant inputs: "
                              f"{exc}.") from None
        for name, value in zip(node.outputs, outputs):
            if name:
                constants[name] = np.asarray(value)

    # ---- running -------------------------------------------------------------------------

    def _plan(self, wanted: tuple[str, ...]) -> tuple[list[Node], OneStepGraph | None]:
        """The nodes needed for ``wanted`` outputs, in graph order, and their compiled
        one-step call (``OneStepGraph``) when they hold a recurrent node."""
        plan = self._plans.get(wanted)
        if plan is None:
            needed = set(wanted)
            nodes = []
            for node in reversed(self.nodes):
                if any(name in needed for name in node.outputs if name):
                    nodes.append(node)
                    needed.update(name for name in node.inputs + node.implicit if name)
            nodes.reverse()
            plan = self._plans[wanted] = (nodes, self._one_step_graph(nodes, wanted))
        return plan

    def _one_step_graph(self, nodes: list[Node], wanted: tuple[str, ...]) \
            -> OneStepGraph | None:
        """A ``OneStepGraph`` when ``nodes`` hold a recurrent node with constant weights (a
        one-timestep call may then run as a compiled step); None otherwise."""
        recurrent = [self._recurrent_of.get(id(node)) for node in nodes]
        if not wanted or not any(r is not None and r.params is not None for r in recurrent):
            return None
        return OneStepGraph(nodes, self._recurrent_of, self._constants,
                            {name: dtype for name, (dtype, _) in self.inputs.items()}, wanted,
                            self._accepts)

    def _accepts(self, shapes: dict[str, tuple]) -> bool:
        """Whether the declared dims of the inputs admit ``shapes`` (input name -> shape)."""
        sizes: dict = {}
        try:
            for name, shape in shapes.items():
                dims = self.inputs[name][1]
                if dims is not None:
                    self._check_dims(name, shape, dims, sizes)
        except ShapeError:
            return False
        return True

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
        check_finite : refuse float inputs holding NaN or inf, and raise ``NonfiniteError``
            naming the first node whose float output holds NaN or inf
        """
        wanted = self._all_outputs if outputs is None else tuple(outputs)
        plan = self._plans.get(wanted)
        if plan is None:
            unknown = [n for n in wanted if n not in self.output_names]
            if unknown:
                raise InputError(f"{self.origin}: unknown output(s) {unknown}; the model's "
                                 f"outputs are {self.output_names}.")
            plan = self._plan(wanted)
        nodes, one_step = plan
        if one_step is not None:
            found = one_step(feeds, check_finite)
            if found is not None:
                return found
        values = dict(self._constants)
        values.update(self._checked_feeds(feeds, check_finite))
        for node in nodes:
            inputs = [values[name] if name else None for name in node.inputs]
            results = _run_node(node, inputs, values)
            check = check_finite and not node.moves_values
            for name, value in zip(node.outputs, results):
                if name:
                    if check:
                        _check_finite_output(node, name, value, self.origin)
                    values[name] = value
        return {name: _owned(values[name]) for name in wanted}

    def describe(self) -> dict:
        """Inputs, outputs, opset, operator counts (``reference_ops``: those run by
        onnx.reference), the recurrent nodes and the fused recurrences, as plain data."""
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
            "reference_ops": sorted({node.op for node in self.nodes if node.reference}),
            "recurrent": [node.describe() for node in self.recurrent],
            "fused": [fused.describe() for fused in self.fused],
        }


def from_onnx(source: str | os.PathLike | Any) -> "OnnxModel":
    """An ``OnnxModel`` for an ``.onnx`` file (or an ``onnx.ModelProto``).

    The whole model is checked here: every operator must be supported (one error lists all
    the others with the nodes using them), the recurrent nodes' attributes must be valid and
    their weights must have the shapes and dtypes the attributes imply. External weight files
    must lie inside the model's folder.
    """
    onnx = import_onnx(f"'{source}'" if isinstance(source, (str, os.PathLike)) else "a model")
    if isinstance(source, onnx.ModelProto):
        return OnnxModel(source, "model", None)
    path = Path(source)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise InputError(f"ONNX model '{path}' {what}. Check the path.")
    # protobuf parses the whole file at once: the file and the model it holds, in memory
    guards.check_fits({f"ONNX model '{path}', twice": 2 * path.stat().st_size},
                      f"'{path}' and the model parsed from it",
                      "Keep large weights in external data files.",
                      InputError)
    try:
        proto = onnx.load_model(path, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not ONNX
        raise InputError(f"'{path}' cannot be read as an ONNX model: {exc}.") from None
    return OnnxModel(proto, f"ONNX model '{path}'", path.parent)


def _check_finite_output(node, name: str, value, origin: str) -> None:
    """A ``NonfiniteError`` when the float output ``name`` of ``node`` holds NaN or inf."""
    value = np.asarray(value)
    if (value.dtype.kind == "f" and not math.isfinite(value.sum())
            and not np.isfinite(value).all()):
        raise NonfiniteError(f"{origin}: {node.where} output '{name}' holds NaN or inf, though "
                             "the inputs are finite: its weights or attributes (activation_alpha, "
                             "clip...) make it diverge. Check them, or pass check_finite=False "
                             "(rnnsim run --allow-nonfinite) to keep the values.")
