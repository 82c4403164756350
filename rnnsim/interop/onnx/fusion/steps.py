"""Finding the steps of a recurrence written out node by node: who makes and reads each
tensor (``Graph``), the step patterns of Elman, LSTM and GRU cells, their chains, and what
each step reads and holds."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..load import Node
from ..recurrent import RECURRENT

# The cells a fused recurrence runs on: those of ONNX's RNN, LSTM and GRU nodes.
ELMAN, LSTM, GRU = RECURRENT["RNN"], RECURRENT["LSTM"], RECURRENT["GRU"]
ELMAN_ACTIVATIONS = {"Tanh": "tanh", "Relu": "relu"}
# Nodes an input projection may pass through between x_t and the recurrent part.
PROJECTIONS = frozenset({"MatMul", "Gemm", "Add", "Sub", "Mul", "Split"})
ELEMENTWISE = frozenset({"Add", "Sub", "Mul"})
MIN_STEPS = 2


@dataclass
class Step:
    """One step of a recurrence of ``op``'s cell: its state inputs and outputs, input, nodes
    and pre-activations (Elman: one; LSTM: i, f, g, o; GRU: r, z, and the candidate's input
    and recurrent parts)."""

    op: object
    states_in: tuple[str, ...]
    states_out: tuple[str, ...]
    pre: tuple[str, ...]
    x: str = ""
    nodes: list[int] = field(default_factory=list)


class Graph:
    """Who produces and who reads each tensor of a node list."""

    def __init__(self, nodes: list[Node], constants: dict):
        self.nodes = nodes
        self.constants = constants
        self.producer = {name: i for i, node in enumerate(nodes) for name in node.outputs if name}
        self.readers: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            for name in node.inputs + node.implicit:
                if name:
                    self.readers.setdefault(name, []).append(i)

    def made_by(self, name: str, *ops: str) -> Node | None:
        index = self.producer.get(name)
        node = None if index is None else self.nodes[index]
        return node if node is not None and node.op in ops else None

    def dynamic_inputs(self, node: Node) -> list[str]:
        return [name for name in node.inputs if name and name not in self.constants]

    def depends(self, outputs, sources) -> set[int]:
        """Indices of the nodes between ``sources`` and ``outputs``: ancestors of ``outputs``
        that read one of ``sources`` directly or through each other (walked without
        recursion: unrolled graphs are deep)."""
        sources = set(sources)
        ancestors, todo = set(), [self.producer.get(n) for n in outputs if n not in sources]
        while todo:
            index = todo.pop()
            if index is None or index in ancestors:
                continue
            ancestors.add(index)
            todo += [self.producer.get(n) for n in self.dynamic_inputs(self.nodes[index])
                     if n not in sources]
        found = set()
        for index in sorted(ancestors):  # node order is topological: inputs come first
            if any(n in sources or self.producer.get(n) in found
                   for n in self.dynamic_inputs(self.nodes[index])):
                found.add(index)
        return found


def elman_steps(graph: Graph) -> list[Step]:
    steps = []
    for node in graph.nodes:
        if node.op in ELMAN_ACTIVATIONS:
            steps.append(Step(ELMAN, (), (node.outputs[0],), (node.inputs[0],)))
    return steps


def lstm_steps(graph: Graph) -> list[Step]:
    """h = sigmoid(o) * tanh(c), c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)."""
    steps = []
    for node in graph.nodes:
        if node.op != "Mul":
            continue
        pair = _split(graph, node.inputs, "Sigmoid", "Tanh")
        if pair is None:
            continue
        (o, tanh_c) = pair
        c = tanh_c.inputs[0]
        add = graph.made_by(c, "Add")
        if add is None:
            continue
        terms = [graph.made_by(name, "Mul") for name in add.inputs]
        if None in terms:
            continue
        for forget, update in (terms, terms[::-1]):
            gate_g = _split(graph, update.inputs, "Sigmoid", "Tanh")
            gate_f = [graph.made_by(name, "Sigmoid") for name in forget.inputs]
            if gate_g is None or gate_f.count(None) != 1:
                continue
            f = gate_f[0] or gate_f[1]
            c_prev = forget.inputs[gate_f.index(None)]
            i, g = gate_g
            steps.append(Step(LSTM, (c_prev,), (node.outputs[0], c),
                              (i.inputs[0], f.inputs[0], g.inputs[0], o.inputs[0])))
            break
    return steps


def gru_steps(graph: Graph) -> list[Step]:
    """n = tanh(n_x + sigmoid(r) * n_h), and the one tensor the step's elementwise arithmetic
    on n leaves it by (h = (1 - z) * n + z * h_prev in any spelling), where z is the other
    sigmoid that arithmetic reads."""
    steps = []
    for node in graph.nodes:
        add = graph.made_by(node.inputs[0], "Add") if node.op == "Tanh" else None
        if add is None or len(add.inputs) != 2:
            continue
        muls = [graph.made_by(name, "Mul") for name in add.inputs]
        for mul, n_x in ((muls[0], add.inputs[1]), (muls[1], add.inputs[0])):
            gates = [graph.made_by(name, "Sigmoid") for name in mul.inputs] if mul else []
            if gates.count(None) != 1:
                continue
            r = gates[0] or gates[1]
            n_h = mul.inputs[gates.index(None)]
            exits, sigmoids = _elementwise_closure(graph, node.outputs[0])
            sigmoids.discard(r.outputs[0])
            if len(exits) == 1 and len(sigmoids) == 1:
                z = graph.made_by(sigmoids.pop(), "Sigmoid")
                steps.append(Step(GRU, (), (exits.pop(),),
                                  (r.inputs[0], z.inputs[0], n_x, n_h)))
            break
    return steps


def _elementwise_closure(graph: Graph, start: str) -> tuple[set, set]:
    """From ``start`` down through Add/Sub/Mul up to the first tensors read by anything else
    (or read by nothing): those exits, and the Sigmoid outputs the arithmetic leading to them
    reads (found walking back from the exits through Add/Sub/Mul, up to tensors that other
    nodes read too: the previous state, projections)."""
    exits, todo, seen = set(), [start], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        readers = [graph.nodes[i] for i in graph.readers.get(name, [])]
        if name != start and (not readers or any(r.op not in ELEMENTWISE for r in readers)):
            exits.add(name)
            continue  # the step's output: what reads it belongs to the next step
        todo += [reader.outputs[0] for reader in readers]
    sigmoids, todo, seen = set(), list(exits), set()
    while todo:
        name = todo.pop()
        node = graph.made_by(name, *ELEMENTWISE)
        if name in seen or node is None:
            continue
        seen.add(name)
        for other in graph.dynamic_inputs(node):
            if graph.made_by(other, "Sigmoid") is not None:
                sigmoids.add(other)
            elif all(graph.nodes[i].op in ELEMENTWISE for i in graph.readers.get(other, [])):
                todo.append(other)
    return exits, sigmoids


def _split(graph: Graph, names, first: str, second: str):
    """The producers of the two ``names`` as (``first`` op, ``second`` op), in either order."""
    if len(names) != 2:
        return None
    a, b = (graph.made_by(name, first, second) for name in names)
    if a is None or b is None or {a.op, b.op} != {first, second}:
        return None
    return (a, b) if a.op == first else (b, a)


def chains(graph: Graph, steps: list[Step]) -> list[list[Step]]:
    """Steps linked into chains: a step's previous state is the output of the step before
    (the hidden state for Elman, the cell state for LSTM); each chain's first step takes the
    tensor in the place where the later steps read the previous hidden state."""
    by_output = {step.states_out[-1]: step for step in steps}
    previous = {}
    for step in steps:
        if step.states_in:  # LSTM: c_prev names the step before
            before = by_output.get(step.states_in[0])
        else:  # Elman: the one step output among the nearest ones the pre-activation reads
            before = _nearest(graph, step.pre[0], by_output)
        if before is not None:
            previous[id(step)] = before
    followers = {id(b) for b in previous.values()}
    chains = []
    for step in steps:
        if id(step) in followers:
            continue
        chain = [step]
        while id(chain[-1]) in previous:
            chain.append(previous[id(chain[-1])])
        chain.reverse()
        if len(chain) >= MIN_STEPS:
            chains.append(chain)
    return chains


def _nearest(graph: Graph, name: str, by_output: dict):
    """The single step output that ``name`` reads without passing another step's output."""
    found, seen, todo = set(), set(), [name]
    while todo:
        tensor = todo.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor in by_output and tensor != name:
            found.add(tensor)
            continue
        index = graph.producer.get(tensor)
        if index is not None:
            todo.extend(graph.dynamic_inputs(graph.nodes[index]))
    return by_output[found.pop()] if len(found) == 1 else None


def complete(graph: Graph, chain: list[Step]) -> list[Step] | None:
    """The steps with their state inputs, input ``x`` and nodes filled in; None if a step is
    not a recurrence on one input or the steps differ."""
    chain = [replace(step) for step in chain]
    for before, step in zip(chain, chain[1:]):
        step.states_in = (before.states_out[0],) + step.states_in
    first, second = chain[0], chain[1]
    h_prev = _matching_input(graph, first, second)
    if h_prev is None:
        return None
    first.states_in = (h_prev,) + first.states_in
    signature = None
    for step in chain:
        inner = graph.depends(step.states_out, step.states_in)
        outside = {name for i in inner for name in graph.dynamic_inputs(graph.nodes[i])
                   if graph.producer.get(name) not in inner and name not in step.states_in}
        xs = {_behind_projection(graph, name, inner) for name in outside}
        if len(xs) != 1:
            return None
        step.x = xs.pop()
        step.nodes = sorted(inner)
        mine = _signature(graph, step)
        if signature is not None and mine != signature:
            return None
        signature = mine
    return chain


def _behind_projection(graph: Graph, name: str, inner: set) -> str:
    """Walk from ``name`` back through affine nodes with constant weights to the tensor they
    project (``inner`` collects the nodes passed)."""
    while True:
        index = graph.producer.get(name)
        node = None if index is None else graph.nodes[index]
        if node is None or node.op not in PROJECTIONS or len(graph.dynamic_inputs(node)) != 1:
            return name
        inner.add(index)
        name = graph.dynamic_inputs(node)[0]


def _matching_input(graph: Graph, first: Step, second: Step) -> str | None:
    """The tensor the first step reads where the second reads the first's hidden state: the
    same operator with the same constants, found among the first step's nodes."""
    h = first.states_out[0]
    readers = [graph.nodes[i] for i in graph.readers.get(h, [])
               if i in graph.depends(second.states_out, (h,) + second.states_in)]
    candidates = graph.depends(first.pre, _inputs_of(graph, first.pre))
    for reader in readers:
        slot = reader.inputs.index(h)
        for index in candidates:
            node = graph.nodes[index]
            if node.op == reader.op and node.attrs.keys() == reader.attrs.keys() and all(
                    (a in graph.constants) == (b in graph.constants)
                    and (a not in graph.constants or a == b or _same(graph, a, b))
                    for a, b in zip(node.inputs, reader.inputs) if a != node.inputs[slot]):
                if node.inputs[slot] not in graph.constants:
                    return node.inputs[slot]
    return None


def _inputs_of(graph: Graph, names) -> set[str]:
    """Every non-constant tensor feeding ``names`` that no node produces (graph inputs), plus
    every tensor produced: a source set reaching all ancestors."""
    sources, todo, seen = set(), list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        index = graph.producer.get(name)
        if index is None:
            sources.add(name)
        else:
            todo.extend(graph.dynamic_inputs(graph.nodes[index]))
    return sources


def _same(graph: Graph, a: str, b: str) -> bool:
    x, y = graph.constants[a], graph.constants[b]
    return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype \
        and x.shape == y.shape and np.array_equal(x, y)


def _signature(graph: Graph, step: Step) -> list:
    """What must repeat from step to step: operators, attributes, constants (by value)."""
    signature = []
    for index in step.nodes:
        node = graph.nodes[index]
        constants = tuple(_constant_key(graph.constants[n]) if n in graph.constants else None
                          for n in node.inputs)
        signature.append((node.op, repr(sorted(node.attrs.items(), key=lambda kv: kv[0])),
                          constants))
    return signature


def _constant_key(value) -> tuple:
    array = np.asarray(value)
    return (array.dtype.str, array.shape, array.tobytes())
