"""One timestep of a graph around recurrent nodes, resolved once per input-shape signature.

With the shapes of the feeds fixed, the nodes that read only shapes and constants (Shape,
Gather and Slice of a shape, Concat, arithmetic on them, ConstantOfShape...) give the same
values on every call: ``resolve`` runs them once. What is left between the feeds, the
recurrent nodes and the wanted outputs must only move values (Transpose, Reshape, Squeeze,
Slice..., ``load.MOVES_VALUES``). Those chains are run once on index arrays standing for the
values (every feed and every recurrent node's outputs numbered in one index space), so that
whatever a chain does, its result is a ``Gather`` of one source's values. A graph that is
anything else for these shapes (an operator computing on values, more than one timestep, a
``sequence_lens`` input, weights computed by the graph, an operator that fails) resolves to
None: the node-by-node path then runs, and names the problem if there is one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .load import MOVES_VALUES, Node
from .reference import RANDOM_OPS

# Operators whose output depends on their input's shape alone.
SHAPE_OPS = frozenset({"Shape", "Size"})

# Operators whose output is a selection of their first input's values (of all inputs' for
# Concat); the other inputs (shapes, axes, indices) must be constants.
SELECTS = MOVES_VALUES - SHAPE_OPS

# Feeds holding more values than this are not resolved (a one-step call is far smaller; the
# index arrays of a whole sequence would cost memory, and Python's time is small beside it).
MAX_VALUES = 1 << 20


@dataclass(frozen=True)
class Gather:
    """Values moved from one source: ``source`` is a feed's name or the index of a ``Step``
    (whose values are its Y (1, D, B, p), then each state (D, B, p), in the binding's layout
    and in C order, one after the other); ``index`` (int64, the result's shape) holds the
    positions of the result's values among the source's."""

    source: str | int
    index: np.ndarray


@dataclass(frozen=True)
class Pieces:
    """Values gathered from several sources into one array of ``shape`` and ``dtype``:
    ``parts`` holds for each source a ``Gather`` (of 1-D index) and the flat positions in
    the result its values go to."""

    shape: tuple
    dtype: np.dtype
    parts: list[tuple[Gather, np.ndarray]]


@dataclass(frozen=True)
class Step:
    """One timestep of a recurrent node (a ``RecurrentNode`` with constant weights) for
    ``batch`` sequences: its input ``x`` (B, k) and its initial ``states`` by name ('h',
    'c'), each a ``Gather``, ``Pieces`` or constant values (D, B, p) (zeros when the node
    has none)."""

    node: Any
    batch: int
    x: Gather | Pieces
    states: dict[str, Gather | Pieces | np.ndarray]


@dataclass(frozen=True)
class Resolved:
    """The graph's call for one input-shape signature: the ``steps`` in order, each wanted
    output as a ``Gather``, ``Pieces`` or constant values, and the float feeds whose values
    the steps' inputs do not all read (``unread``: their finiteness is checked apart)."""

    steps: list[Step]
    outputs: list[tuple[str, Gather | Pieces | np.ndarray]]
    unread: list[str]


class _Space:
    """The index space: each source's values numbered one after another."""

    def __init__(self):
        self.bases: list[int] = []
        self.sources: list[tuple[str | int, int]] = []  # (source, size)

    def add(self, source: str | int, shape: tuple) -> np.ndarray:
        base = self.bases[-1] + self.sources[-1][1] if self.bases else 0
        size = math.prod(shape)
        self.bases.append(base)
        self.sources.append((source, size))
        return np.arange(base, base + size, dtype=np.int64).reshape(shape)

    def gather(self, index: np.ndarray, dtype: np.dtype) -> Gather | Pieces:
        """How to read the values at ``index``: from one source, or in pieces."""
        flat = index.reshape(-1)
        which = np.searchsorted(self.bases, flat, side="right") - 1
        if flat.size and which.min() == which.max():
            return Gather(self.sources[which[0]][0], index - self.bases[which[0]])
        parts = []
        for source in np.unique(which):
            where = np.flatnonzero(which == source)
            parts.append((Gather(self.sources[source][0], flat[where] - self.bases[source]),
                          where))
        return Pieces(index.shape, dtype, parts)


def resolve(nodes: list[Node], recurrent_of: dict, constants: dict,
            feeds: dict[str, tuple[tuple, np.dtype]], wanted: tuple[str, ...]) \
        -> Resolved | None:
    """The call of ``nodes`` (in graph order) on feeds of the given (shape, dtype) by name
    for the ``wanted`` outputs, or None (see the module). ``recurrent_of``: id of a
    recurrent node's ``Node`` -> its ``RecurrentNode``; ``constants``: tensor name -> value."""
    if sum(math.prod(shape) for shape, _ in feeds.values()) > MAX_VALUES:
        return None
    space = _Space()
    data = {name: space.add(name, shape) for name, (shape, _) in feeds.items()}
    dtypes = {name: dtype for name, (_, dtype) in feeds.items()}
    values = dict(constants)
    steps: list[Step] = []
    for node in nodes:
        if any(name in data for name in node.implicit):
            return None
        moved = [i for i, name in enumerate(node.inputs) if name in data]
        recurrent = recurrent_of.get(id(node))
        if recurrent is not None:
            step = _step(recurrent, values, data, dtypes, space, len(steps))
            if step is None:
                return None
            steps.append(step)
        elif not moved:
            if node.op in RANDOM_OPS or not _fold(node, values):
                return None
        elif node.op in SHAPE_OPS:
            if not _fold(node, values, data):
                return None
        elif node.op in SELECTS and (moved == [0] or node.op == "Concat" and len(moved) == len(
                [name for name in node.inputs if name])):
            kinds = {dtypes[node.inputs[i]] for i in moved}
            results = _run(node, [data.get(name, values.get(name)) if name else None
                                  for name in node.inputs], values)
            if len(kinds) > 1 or results is None:
                return None
            for name, result in zip(node.outputs, results):
                if name:
                    data[name], dtypes[name] = np.asarray(result), next(iter(kinds))
        else:
            return None
    outputs = []
    for name in wanted:
        value = space.gather(data[name], dtypes[name]) if name in data else values.get(name)
        if not isinstance(value, (Gather, Pieces, np.ndarray)):
            return None
        outputs.append((name, value))
    return Resolved(steps, outputs, _unread(steps, feeds))


def _run(node: Node, inputs: list, values: dict) -> tuple | None:
    """The node's outputs, or None when it fails."""
    try:
        return tuple(node.run(inputs, values))
    except Exception:  # noqa: BLE001 (the node-by-node path names the problem)
        return None


def _fold(node: Node, values: dict, data: dict | None = None) -> bool:
    """Run a node of constants (or of shapes: ``data``'s index arrays stand for the values)
    into ``values``; False when it fails or, computing on values, makes NaN or inf (which
    the node-by-node path reports)."""
    data = data or {}
    results = _run(node, [data.get(name, values.get(name)) if name else None
                          for name in node.inputs], values)
    if results is None:
        return False
    for name, result in zip(node.outputs, results):
        if name:
            result = np.asarray(result) if isinstance(result, (np.ndarray, np.generic)) \
                else result
            if (isinstance(result, np.ndarray) and result.dtype.kind == "f"
                    and not node.moves_values and not np.isfinite(result).all()):
                return False
            values[name] = result
    return True


def _step(recurrent, values: dict, data: dict, dtypes: dict, space: _Space, index: int) \
        -> Step | None:
    """The ``Step`` of a recurrent node whose X comes from the feeds or earlier steps, for
    one timestep; its outputs join ``data`` as the step's source. None when it is not that."""
    roles = dict(zip(recurrent.spec.inputs, recurrent.node.inputs))
    X = data.get(roles["X"])
    D, p, k, dtype = (recurrent.directions, recurrent.hidden_size, recurrent.input_size,
                      recurrent.dtype)
    if (recurrent.params is None or roles.get("sequence_lens") or X is None
            or dtypes[roles["X"]] != dtype or X.ndim != 3 or X.shape[2] != k):
        return None
    x = X.transpose(1, 0, 2) if recurrent.layout else X  # (T, B, k)
    T, B = x.shape[:2]
    if T != 1 or B == 0:
        return None
    shape = (B, D, p) if recurrent.layout else (D, B, p)
    states: dict[str, Gather | np.ndarray] = {}
    for name in recurrent.state_names:
        tensor = roles.get(f"initial_{name}")
        if not tensor:
            states[name] = np.zeros((D, B, p), dtype)
            continue
        value = data.get(tensor, values.get(tensor))
        if (not isinstance(value, np.ndarray) or value.shape != shape
                or (dtypes[tensor] if tensor in data else value.dtype) != dtype):
            return None
        value = value.transpose(1, 0, 2) if recurrent.layout else value
        states[name] = (space.gather(value, dtype) if tensor in data
                        else np.ascontiguousarray(value))
    x_gather = space.gather(x.reshape(B, k), dtype)
    size = D * B * p
    made = space.add(index, (size * (1 + len(states)),))
    Y = made[:size].reshape(1, D, B, p)
    finals = [made[size * (1 + i):size * (2 + i)].reshape(D, B, p) for i in range(len(states))]
    if recurrent.layout:
        Y, finals = Y.transpose(2, 0, 1, 3), [final.transpose(1, 0, 2) for final in finals]
    for name, value in zip(recurrent.node.outputs, [Y, *finals]):
        if name:
            data[name], dtypes[name] = value, dtype
    return Step(recurrent, B, x_gather, states)


def _unread(steps: list[Step], feeds: dict) -> list[str]:
    """The float feeds not every value of which a step's input reads."""
    read = {name: np.zeros(math.prod(shape), bool) for name, (shape, dtype) in feeds.items()
            if dtype.kind == "f"}
    for step in steps:
        for value in [step.x, *step.states.values()]:
            parts = value.parts if isinstance(value, Pieces) else [(value, None)]
            for gather, _ in parts:
                if isinstance(gather, Gather) and gather.source in read:
                    read[gather.source][gather.index.ravel()] = True
    return [name for name, seen in read.items() if not seen.all()]
