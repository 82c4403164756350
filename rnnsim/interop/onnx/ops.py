"""rnnsim's own NumPy fast path for the glue operators exporters write around recurrent nodes
(shape arithmetic, slicing, the projections of heads): a plain function call each, where an
``onnx.reference`` operator costs 10 to 20 µs per call, which a streaming one-step call feels.
Every other standard operator, and these with attributes or inputs the functions here do not
read, runs through ``onnx.reference`` (``reference``).

Each operator is a function ``op(inputs, attrs, opset) -> tuple of outputs`` over NumPy arrays
(``None`` for an omitted optional input), registered in ``OPS`` with the attributes it
understands and how many inputs it takes. Where an operator changed between opsets (axes of
Squeeze/Unsqueeze/Slice moved from attributes to inputs) the ``opset`` of the model picks the
form. Semantics follow the ONNX operator specs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ... import guards


@dataclass(frozen=True)
class Op:
    """One supported operator: its function, the attributes it reads, its input counts."""

    fn: Callable
    attributes: frozenset[str]
    min_inputs: int
    max_inputs: int


def _ints(array) -> list[int]:
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _fitting(shape, dtype) -> tuple[int, ...]:
    """``shape``, once an array of it is known to fit in memory (a ValueError otherwise: a
    shape input can ask for any size)."""
    shape = tuple(shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"the shape {shape} has a negative dimension")
    guards.check_fits({f"its output {shape} of {np.dtype(dtype)}":
                       math.prod(shape) * np.dtype(dtype).itemsize},
                      "its values", "Check the shape input.", ValueError)
    return shape


def constant_of_shape(inputs, attrs, opset):
    """ConstantOfShape: an array of the input shape filled with ``value`` (float32 0 default)."""
    value = attrs.get("value", np.zeros(1, np.float32))
    return (np.full(_fitting(_ints(inputs[0]), value.dtype), value.reshape(-1)[0],
                    dtype=value.dtype),)


def shape(inputs, attrs, opset):
    """Shape: the input's shape as int64, sliced by ``start``/``end`` (opset 15)."""
    dims = inputs[0].shape[attrs.get("start", 0):attrs.get("end", None)]
    return (np.array(dims, dtype=np.int64),)


def gather(inputs, attrs, opset):
    """Gather: ``data`` indexed by ``indices`` along ``axis`` (negative indices count back)."""
    data, indices = inputs
    axis = attrs.get("axis", 0)
    size = data.shape[axis]
    if np.any(indices >= size) or np.any(indices < -size):
        raise IndexError(f"indices must lie in [{-size}, {size - 1}] for axis {axis} of size "
                         f"{size}")
    return (np.asarray(np.take(data, indices, axis=axis)),)


def slice_(inputs, attrs, opset):
    """Slice: ``starts``/``ends``/``axes``/``steps``, as attributes before opset 10, else inputs."""
    data = inputs[0]
    if opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes"), None
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = None if len(inputs) < 4 or inputs[3] is None else _ints(inputs[3])
        steps = None if len(inputs) < 5 or inputs[4] is None else _ints(inputs[4])
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("starts, ends, axes and steps must have the same length")
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise ValueError("a step of 0")
        # Python slices clamp out-of-range bounds exactly as the ONNX spec does.
        index[axis] = slice(start, end, step)
    return (data[tuple(index)],)


def _axes(inputs, attrs, opset, since: int):
    if opset < since:
        return attrs.get("axes")
    return None if len(inputs) < 2 or inputs[1] is None else _ints(inputs[1])


def squeeze(inputs, attrs, opset):
    """Squeeze: drop the size-1 ``axes`` (an attribute before opset 13), or every size-1 axis."""
    data = inputs[0]
    axes = _axes(inputs, attrs, opset, 13)
    if axes is None:
        return (np.squeeze(data),)
    return (np.squeeze(data, axis=tuple(axes)),)


def unsqueeze(inputs, attrs, opset):
    """Unsqueeze: insert size-1 ``axes`` (an attribute before opset 13), counted in the output."""
    axes = _axes(inputs, attrs, opset, 13)
    if axes is None:
        raise ValueError("Unsqueeze needs axes")
    return (np.expand_dims(inputs[0], tuple(axes)),)


def concat(inputs, attrs, opset):
    """Concat along ``axis``."""
    return (np.concatenate([x for x in inputs if x is not None], axis=attrs["axis"]),)


def expand(inputs, attrs, opset):
    """Expand: broadcast the input against ``shape`` (both ways, as in NumPy)."""
    data, target = inputs
    shape = _fitting(np.broadcast_shapes(data.shape, tuple(_ints(target))), data.dtype)
    return (np.array(np.broadcast_to(data, shape)),)


def reshape(inputs, attrs, opset):
    """Reshape: 0 copies the input's dimension (unless ``allowzero``), -1 is inferred."""
    data, target = inputs[0], _ints(inputs[1])
    if not attrs.get("allowzero", 0):
        target = [data.shape[i] if dim == 0 else dim for i, dim in enumerate(target)]
    return (data.reshape(target),)


def transpose(inputs, attrs, opset):
    """Transpose by ``perm`` (default: reverse the axes)."""
    return (np.transpose(inputs[0], attrs.get("perm")),)


def gemm(inputs, attrs, opset):
    """Gemm: alpha * A' B' + beta * C, A' and B' transposed when ``transA``/``transB``."""
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    y = a @ b
    if alpha != 1.0:
        y = y * a.dtype.type(alpha)
    if c is not None:
        y = y + (c if beta == 1.0 else c * c.dtype.type(beta))
    return (y,)


def matmul(inputs, attrs, opset):
    """MatMul, with NumPy's (and ONNX's) broadcasting of the leading axes."""
    return (np.matmul(inputs[0], inputs[1]),)


def add(inputs, attrs, opset):
    """Add, broadcasting."""
    return (np.asarray(np.add(inputs[0], inputs[1])),)


def sub(inputs, attrs, opset):
    """Sub, broadcasting."""
    return (np.asarray(np.subtract(inputs[0], inputs[1])),)


def mul(inputs, attrs, opset):
    """Mul, broadcasting (also the shape arithmetic of exports with dynamic shapes)."""
    return (np.asarray(np.multiply(inputs[0], inputs[1])),)


def softmax(inputs, attrs, opset):
    """Softmax along ``axis``; before opset 13 over the input flattened to 2-D at ``axis``
    (onnx.reference implements only the opset-13 form)."""
    return (_coerced(_softmax, inputs[0], attrs, opset),)


def log_softmax(inputs, attrs, opset):
    """LogSoftmax, with Softmax's axis rules."""
    return (_coerced(_log_softmax, inputs[0], attrs, opset),)


def _coerced(fn, data, attrs, opset):
    if opset < 13:
        axis = attrs.get("axis", 1) % max(data.ndim, 1)
        return fn(data.reshape(int(np.prod(data.shape[:axis])), -1), -1).reshape(data.shape)
    return fn(data, attrs.get("axis", -1))


def _softmax(z, axis):
    shifted = np.exp(z - z.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _log_softmax(z, axis):
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def relu(inputs, attrs, opset):
    """Relu: max(x, 0)."""
    return (np.maximum(inputs[0], inputs[0].dtype.type(0)),)


def tanh(inputs, attrs, opset):
    """Tanh."""
    return (np.tanh(inputs[0]),)


def sigmoid(inputs, attrs, opset):
    """Sigmoid: 1 / (1 + exp(-x)); exp overflows to inf for large -x, giving exactly 0."""
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-inputs[0])),)


def _op(fn, attributes=(), inputs=(1, 1)):
    return Op(fn, frozenset(attributes), *inputs)


OPS: dict[str, Op] = {
    "ConstantOfShape": _op(constant_of_shape, ("value",)),
    "Shape": _op(shape, ("start", "end")),
    "Gather": _op(gather, ("axis",), (2, 2)),
    "Slice": _op(slice_, ("starts", "ends", "axes"), (1, 5)),
    "Squeeze": _op(squeeze, ("axes",), (1, 2)),
    "Unsqueeze": _op(unsqueeze, ("axes",), (1, 2)),
    "Concat": _op(concat, ("axis",), (1, 2 ** 31)),
    "Expand": _op(expand, (), (2, 2)),
    "Reshape": _op(reshape, ("allowzero",), (2, 2)),
    "Transpose": _op(transpose, ("perm",)),
    "Gemm": _op(gemm, ("alpha", "beta", "transA", "transB"), (2, 3)),
    "MatMul": _op(matmul, (), (2, 2)),
    "Add": _op(add, (), (2, 2)),
    "Sub": _op(sub, (), (2, 2)),
    "Mul": _op(mul, (), (2, 2)),
    "Softmax": _op(softmax, ("axis",)),
    "LogSoftmax": _op(log_softmax, ("axis",)),
    "Relu": _op(relu),
    "Tanh": _op(tanh),
    "Sigmoid": _op(sigmoid),
}
