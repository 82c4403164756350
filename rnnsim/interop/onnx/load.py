"""Reading an ``.onnx`` file: the ``onnx`` package (an optional extra), external weight files
kept inside the model's folder, and nodes with their attributes as NumPy values."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import guards
from ...errors import InputError, shown


FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


INSTALL_HINT = "pip install 'rnnsim[onnx]' (or pip install onnx)"


def import_onnx(what: str):
    """The ``onnx`` package; an InputError saying how to install it, naming ``what`` needed it."""
    try:
        import onnx
        import onnx.inliner  # noqa: F401 (submodules used by the model's loader)
        import onnx.numpy_helper  # noqa: F401
    except ImportError:
        raise InputError(f"reading {what} needs the onnx package: {INSTALL_HINT}.") from None
    return onnx


def _external_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors


def load_external_data(onnx, graph, folder: Path | None, origin: str) -> None:
    """Read external tensor data, refusing any location outside ``folder``, an offset or
    length that is not a whole number inside the file, and data of another size than the
    tensor's shape and type declare or beyond the memory (checked before reading)."""
    for tensor in _external_tensors(graph):
        if tensor.data_location != tensor.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = (f"{origin}: tensor {shown(tensor.name)} keeps its data in external file "
                 f"{shown(location)}")
        if folder is None:
            raise InputError(f"{where}; load the model from its file so the folder is known.")
        if "\0" in location:
            raise InputError(f"{where}, a name holding a NUL byte. Fix the model's "
                             "external_data location.")
        base = folder.resolve()
        target = (base / location).resolve()
        if not location or Path(location).is_absolute() or base not in target.parents:
            raise InputError(f"{where}, outside the model's folder '{base}'. rnnsim reads "
                             "external data only from files beside the model or below it.")
        if not target.is_file():
            raise InputError(f"{where}, which does not exist in '{base}'.")
        tensor.raw_data = _read_external(target, info, _tensor_bytes(onnx, tensor, where), where)
        del tensor.external_data[:]
        tensor.data_location = tensor.DEFAULT


def _tensor_bytes(onnx, tensor, where: str) -> int:
    """The bytes the tensor's shape and element type declare."""
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where}, with the unknown element type {tensor.data_type}.") from None
    if any(d < 0 for d in tensor.dims):
        raise InputError(f"{where}, with the impossible shape {tuple(tensor.dims)}.")
    return math.prod(tensor.dims) * itemsize


def _read_external(target: Path, info: dict, declared: int, where: str) -> bytes:
    """The ``declared`` bytes at ``info``'s offset in ``target``, once checked."""
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", declared))
    except ValueError:
        raise InputError(f"{where}: offset {shown(info.get('offset'))} and length "
                         f"{shown(info.get('length'))} must be whole numbers of bytes.") from None
    size = target.stat().st_size
    if offset < 0 or length < 0 or offset + length > size:
        raise InputError(f"{where}: offset {offset} and length {length} run past the "
                         f"file's {size} bytes.")
    if length != declared:
        raise InputError(f"{where}: its length is {length:,} bytes, but the tensor's shape and "
                         f"type need {declared:,}. The model or its data file is damaged.")
    # read once into the tensor, parsed once into an array: twice its size at the peak
    guards.check_fits({f"{where} ({length:,} bytes), twice": 2 * length},
                      "the external data and the array made of it",
                      "Run it where more memory is free.", InputError)
    with open(target, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


# Operators that only move, select or reshape their inputs' values (or give shapes): from
# finite inputs they cannot make NaN or inf, so their outputs need no finiteness check.
MOVES_VALUES = frozenset({
    "Concat", "DepthToSpace", "Expand", "Flatten", "Gather", "GatherElements", "GatherND",
    "Identity", "Reshape", "Shape", "Size", "Slice", "SpaceToDepth", "Split", "Squeeze",
    "Tile", "Transpose", "Unsqueeze"})


@dataclass
class Node:
    """One node of the graph as rnnsim runs it."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict
    run: Any
    reference: bool = False  # run by onnx.reference rather than rnnsim's own code
    implicit: tuple[str, ...] = ()  # outer tensors its subgraphs (If, Loop, Scan) read

    @property
    def where(self) -> str:
        return f"node '{self.name}' ({self.op})"

    @property
    def moves_values(self) -> bool:
        """Whether the node only moves its inputs' values (``MOVES_VALUES``)."""
        return self.op in MOVES_VALUES


def run_nodes(nodes, values: dict) -> dict:
    """Run ``nodes`` in order, each on ``values`` (tensor name -> value), into which their
    named outputs go; returns ``values``."""
    for node in nodes:
        results = node.run([values[name] if name else None for name in node.inputs], values)
        values.update((name, value) for name, value in zip(node.outputs, results) if name)
    return values


def implicit_inputs(onnx, node) -> tuple[str, ...]:
    """The tensors of enclosing graphs that ``node``'s subgraphs read by name."""
    outer: list[str] = []
    for attribute in node.attribute:
        for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            local = {v.name for v in graph.input} | {t.name for t in graph.initializer}
            local |= {name for inner in graph.node for name in inner.output}
            for inner in graph.node:
                for name in list(inner.input) + list(implicit_inputs(onnx, inner)):
                    if name and name not in local and name not in outer:
                        outer.append(name)
    return tuple(outer)


def read_attributes(onnx, node) -> dict:
    """A node's attributes as Python values and NumPy arrays, by name."""
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


def describe_array(value: np.ndarray) -> str:
    """'float32 (3, 4)': an array's dtype and shape, for messages."""
    return f"{value.dtype} {tuple(value.shape)}"


