"""One-timestep calls of ONNX recurrent nodes on a compiled step (``stepper.BoundStep``).

``StepBinding``: one timestep of every direction of a recurrent node with constant weights,
bound once per batch size; all directions' kernel calls are one compiled call, the states
are staged into its arena and the outputs read from there. ``OneStepGraph``: the call of a
graph that is one such node (the model of a streaming ONNX Runtime session: X and the
states in, Y_h and Y_c out), its feeds checked against the shapes the binding takes and
handed straight to it. Whatever it does not expect (another type or shape, more than one
timestep, a NaN) returns None: the node-by-node path then runs and names the problem.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from ...stepper import BoundStep


class StepBinding:
    """One timestep of every direction of ``node`` (a ``RecurrentNode`` with constant
    weights and a known hidden size) for ``batch`` sequences. In one step a reverse direction
    is a forward one.

    y : (1, D, B, p) the arena's Y; states : name ('h', 'c') -> (D, B, p) the arena's states,
    read before the step and updated by it; lock : held by a caller from staging the states
    to reading the outputs, so that calls from several threads do not mix their values.
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

    def __call__(self, x: np.ndarray, check_finite: bool) -> int:
        """One step on ``x`` (1, B, k) or (B, 1, k) from the staged states: 0, or with
        ``check_finite`` the status of a NaN/inf in x, a state or an output
        (``kernels.bound``)."""
        if check_finite != self.checking:
            self.step.set_checks(check_finite, check_finite)
            self.checking = check_finite
        return self.step(np.ascontiguousarray(x.reshape(self.input_shape)))


class OneStepGraph:
    """The whole call of a graph made of one recurrent node, for one timestep.

    node : the ``RecurrentNode``; feeds : the graph's input names by the node's input key
    ('X', 'initial_h', 'initial_c'); constants : initial states that are initializers, by
    key; wanted : the output names to return, each one of the node's outputs; accepts :
    whether the graph's declared input shapes admit ``{input name: shape}``.
    """

    def __init__(self, node, feeds: dict[str, str], constants: dict[str, np.ndarray],
                 wanted: tuple[str, ...], accepts: Callable[[dict], bool]):
        self.node = node
        self.x_name = feeds["X"]
        self.names = frozenset(feeds.values())
        self.sources = {name: (feeds.get(f"initial_{name}"), constants.get(f"initial_{name}"))
                        for name in node.state_names}
        self.outputs = dict(zip(node.node.outputs, ("Y", "h", "c")))
        self.wanted = wanted
        self.accepts = accepts
        self.batch_axis = 0 if node.layout else 1
        self._calls: dict[int, tuple | None] = {}  # batch size -> what a call needs

    def __call__(self, feeds, check_finite: bool) -> dict[str, np.ndarray] | None:
        """The outputs by name, or None when the general path must run (see the module)."""
        if type(feeds) is not dict or feeds.keys() != self.names:
            return None
        x = feeds[self.x_name]
        dtype = self.node.dtype
        if type(x) is not np.ndarray or x.dtype != dtype or x.ndim != 3:
            return None
        batch = x.shape[self.batch_axis]
        prepared = self._calls.get(batch, False)
        if prepared is False:
            prepared = self._calls[batch] = self._prepare(batch)
        if prepared is None:
            return None
        binding, x_shape, state_shape, staged, fixed, outputs = prepared
        if x.shape != x_shape or any(
                type(feeds[name]) is not np.ndarray or feeds[name].dtype != dtype
                or feeds[name].shape != state_shape for name, _ in staged):
            return None
        with binding.lock:
            for name, view in staged:
                view[...] = feeds[name]
            for view, value in fixed:
                view[...] = value
            if binding(x, check_finite):
                return None
            return {name: view.copy() for name, view in outputs}

    def _prepare(self, batch: int) -> tuple | None:
        """The binding of ``batch`` and the views in the node's layout, or None when the
        graph's declared shapes refuse that batch size."""
        node = self.node
        D, p, k = node.directions, node.hidden_size, node.input_size
        x_shape = (batch, 1, k) if node.layout else (1, batch, k)
        state_shape = (batch, D, p) if node.layout else (D, batch, p)
        shapes = {self.x_name: x_shape}
        shapes.update((feed, state_shape) for feed, _ in self.sources.values() if feed)
        constants = [c for _, c in self.sources.values() if c is not None]
        if batch == 0 or not self.accepts(shapes) or any(
                c.shape != state_shape or c.dtype != node.dtype for c in constants):
            return None
        binding = node.binding(batch)
        y = binding.y.transpose(2, 0, 1, 3) if node.layout else binding.y
        states = {name: view.transpose(1, 0, 2) if node.layout else view
                  for name, view in binding.states.items()}
        staged = [(feed, states[name]) for name, (feed, _) in self.sources.items() if feed]
        fixed = [(states[name], 0 if constant is None else constant)
                 for name, (feed, constant) in self.sources.items() if not feed]
        views = {"Y": y, **states}
        outputs = [(name, views[self.outputs[name]]) for name in self.wanted]
        return binding, x_shape, state_shape, staged, fixed, outputs
