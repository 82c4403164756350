"""One-timestep calls of ONNX recurrent nodes on a compiled step (``stepper.BoundStep``).

``StepBinding``: one timestep of every direction of a recurrent node with constant weights,
bound once per batch size; all directions' kernel calls are one compiled call, the states
are staged into its arena and the outputs read from there. ``OneStepGraph``: the call of a
graph around such nodes (the model of a streaming ONNX Runtime session: X and the states in,
Y_h and Y_c out, with or without an exporter's glue around the node), resolved by ``glue``
once per input-shape signature into views and gathers from the feeds into the bindings'
arenas and from the arenas into the outputs. Whatever it does not expect (another type,
more than one timestep, an operator computing on values, a NaN) returns None: the
node-by-node path then runs and names the problem.
"""
from __future__ import annotations

import math
import threading
from typing import Callable

import numpy as np

from ...stepper import BoundStep
from .glue import Gather, Pieces, Resolved, resolve

# Input-shape signatures a graph keeps bound calls for (all are forgotten past this).
MAX_SIGNATURES = 64


class StepBinding:
    """One timestep of every direction of ``node`` (a ``RecurrentNode`` with constant
    weights and a known hidden size) for ``batch`` sequences. In one step a reverse direction
    is a forward one.

    y : (1, D, B, p) the arena's Y; states : name ('h', 'c') -> (D, B, p) the arena's states,
    read before the step and updated by it; values : the arena as a 1-D array of the dtype;
    positions : where in ``values`` Y's values lie, then each state's (C order); lock : held
    by a caller from staging the states to reading the outputs, so that calls from several
    threads do not mix their values.
    """

    def __init__(self, node, batch: int):
        D, p, k, dtype = node.directions, node.hidden_size, node.input_size, node.dtype
        x = np.zeros((1, batch, k), dtype)
        y = np.zeros((1, D, batch, p), dtype)
        states = {name: np.zeros((D, 1, batch, p), dtype) for name in node.state_names}
        ops = []
        for d, (cell, params) in enumerate(zip(node.cells_for(p), node.params)):
            ops += cell.step_ops(params, x, {name: s[d] for name, s in states.items()}, y[:, d])
        self.step = BoundStep(x, ops, [y, *states.values()], unbatched=False,
                              staged=tuple(states.values()))
        self.input_shape = (batch, k)
        self.y = self.step.view(y)
        self.states = {name: self.step.view(s).reshape(D, batch, p)
                       for name, s in states.items()}
        self.checking = True
        self.lock = threading.Lock()
        self.values = self.step.arena.view(dtype)
        start = self.values.__array_interface__["data"][0]
        self.positions = np.concatenate([
            (view.__array_interface__["data"][0] - start) // dtype.itemsize
            + np.arange(view.size) for view in [self.y, *self.states.values()]])

    def __call__(self, x: np.ndarray, check_finite: bool) -> int:
        """One step on ``x`` ((B, k), or (1, B, k) or (B, 1, k)) from the staged states: 0, or with
        ``check_finite`` the status of a NaN/inf in x, a state or an output
        (``kernels.bound``)."""
        if check_finite != self.checking:
            self.step.set_checks(check_finite, check_finite)
            self.checking = check_finite
        return self.step(np.ascontiguousarray(x.reshape(self.input_shape)))


class OneStepGraph:
    """The one-timestep call of a graph around recurrent nodes with constant weights.

    nodes : the nodes the wanted outputs need, in graph order; recurrent_of : id of a
    recurrent node's ``Node`` -> its ``RecurrentNode``; constants : tensor name -> value;
    inputs : the graph's input names -> dtype; wanted : the output names to return;
    accepts : whether the graph's declared input shapes admit ``{input name: shape}``.
    """

    def __init__(self, nodes: list, recurrent_of: dict, constants: dict,
                 inputs: dict[str, np.dtype], wanted: tuple[str, ...],
                 accepts: Callable[[dict], bool]):
        self.nodes, self.recurrent_of, self.constants = nodes, recurrent_of, constants
        self.types = list(inputs.items())
        self.names = frozenset(inputs)
        self.wanted = wanted
        self.accepts = accepts
        self._calls: dict[tuple, Callable | None] = {}  # the feeds' shapes -> the call

    def __call__(self, feeds, check_finite: bool) -> dict[str, np.ndarray] | None:
        """The outputs by name, or None when the general path must run (see the module)."""
        if type(feeds) is not dict or feeds.keys() != self.names:
            return None
        shapes = []
        for name, dtype in self.types:
            value = feeds[name]
            if type(value) is not np.ndarray or value.dtype != dtype:
                return None
            shapes.append(value.shape)
        key = tuple(shapes)
        call = self._calls.get(key, False)
        if call is False:
            if len(self._calls) >= MAX_SIGNATURES:
                self._calls.clear()
            call = self._calls[key] = self._bind(key)
        return None if call is None else call(feeds, check_finite)

    def _bind(self, shapes: tuple) -> Callable | None:
        """The call for feeds of these shapes, or None when the general path must run them
        (the declared shapes refuse them, or ``glue.resolve`` does)."""
        named = {name: shape for (name, _), shape in zip(self.types, shapes)}
        if not self.accepts(named):
            return None
        resolved = resolve(self.nodes, self.recurrent_of, self.constants,
                           {name: (named[name], dtype) for name, dtype in self.types},
                           self.wanted)
        return None if resolved is None else _bound_call(resolved, named)


def _bound_call(resolved: Resolved, shapes: dict[str, tuple]) -> Callable:
    """``call(feeds, check_finite)`` running ``resolved``'s steps on their bindings: the
    outputs by name, or None when a step's compiled check finds a NaN or inf (or a feed
    not read whole holds one)."""
    bindings: list[StepBinding] = []
    steps = []
    for step in resolved.steps:
        binding = step.node.binding(step.batch)
        staged = [(binding.states[name], _reader(value, bindings, shapes))
                  for name, value in step.states.items()]
        steps.append((binding, _reader(step.x, bindings, shapes), staged))
        bindings.append(binding)
    outputs = [(name, _reader(value, bindings, shapes, own=True))
               for name, value in resolved.outputs]
    unread = resolved.unread
    locks = [binding.lock for binding in sorted(set(bindings), key=id)]  # one order for all

    def call(feeds: dict, check_finite: bool) -> dict[str, np.ndarray] | None:
        if check_finite and unread and not all(
                math.isfinite(feeds[name].sum()) or np.isfinite(feeds[name]).all()
                for name in unread):
            return None
        for lock in locks:
            lock.acquire()
        try:
            for binding, x, staged in steps:
                for state, read in staged:
                    state[...] = read(feeds)
                if binding(x(feeds), check_finite):
                    return None
            return {name: out(feeds) for name, out in outputs}
        finally:
            for lock in locks:
                lock.release()

    return call


def _reader(value: Gather | Pieces | np.ndarray, bindings: list[StepBinding],
            shapes: dict[str, tuple], own: bool = False) -> Callable:
    """``read(feeds)`` giving ``value``'s values: a new array with ``own``, else possibly a
    view of a feed, of a binding's arena or of constant values."""
    if isinstance(value, np.ndarray):
        return (lambda feeds: value.copy()) if own else (lambda feeds: value)
    if isinstance(value, Pieces):
        parts = [(_reader(gather, bindings, shapes), _span(where))
                 for gather, where in value.parts]

        def pieces(feeds):
            out = np.empty(value.shape, value.dtype)
            flat = out.reshape(-1)
            for read, where in parts:
                flat[where] = read(feeds)
            return out
        return pieces
    index = value.index
    if isinstance(value.source, str):
        name, shape = value.source, index.shape
        if index.size == math.prod(shapes[name]) and np.array_equal(
                index.ravel(), np.arange(index.size)):
            if own:
                return lambda feeds: feeds[name].reshape(shape).copy()
            return lambda feeds: feeds[name].reshape(shape)
        return lambda feeds: np.take(feeds[name], index)
    binding = bindings[value.source]
    index = binding.positions[index]
    view = _strided(binding.values, index)
    if view is not None:
        return (lambda feeds: view.copy()) if own else (lambda feeds: view)
    return lambda feeds, values=binding.values: np.take(values, index)


def _span(where: np.ndarray) -> slice | np.ndarray:
    """``where`` (increasing positions) as a slice when it is a run."""
    if where.size and where[-1] - where[0] == where.size - 1:
        return slice(int(where[0]), int(where[-1]) + 1)
    return where


def _strided(values: np.ndarray, index: np.ndarray) -> np.ndarray | None:
    """The view of the 1-D ``values`` that holds ``values[index]``, if there is one."""
    if not index.size:
        return None
    start = int(index.flat[0])
    steps = [int(index[tuple(1 if a == axis else 0 for a in range(index.ndim))]) - start
             if size > 1 else 0 for axis, size in enumerate(index.shape)]
    positions = np.arange(values.size, dtype=np.int64)
    try:
        found = np.ndarray(index.shape, np.int64, positions, start * 8,
                           [8 * step for step in steps])
    except ValueError:  # outside the values
        return None
    if not np.array_equal(found, index):
        return None
    return np.ndarray(index.shape, values.dtype, values, start * values.itemsize,
                      [values.itemsize * step for step in steps])
