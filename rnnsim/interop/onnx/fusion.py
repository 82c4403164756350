"""Recurrences written out step by step (an unrolled ``MatMul/Add/Tanh`` chain, a loop over an
``LSTMCell`` or ``GRUCell``) recognised as an Elman, LSTM or GRU cell repeated T times and run
as one kernel call.

A step is found by its shape: an Elman step ends in ``Tanh``/``Relu`` of a pre-activation that
reads the previous step's output; an LSTM step ends in ``h = sigmoid(o) * tanh(c)`` with
``c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)``; a GRU step has ``n = tanh(n_x + sigmoid(r)
* n_h)`` and ends where the arithmetic on ``n``, ``z`` and the previous state does.
Everything between the step's inputs (the step input ``x_t``, the previous states) and its
pre-activations must be affine: its weights are read by running those nodes on unit inputs,
and the step is fused only if its nodes, run on random inputs, then agree with the cell's
formula. Steps must repeat the same nodes and
weights, their inner tensors must not be read elsewhere, and no step input may depend on a
fused step (a decoder feeding its output back is left alone). Whatever is not fused runs node
by node, as before; a fused run whose inputs do not have the shapes seen at load runs the
original nodes too.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import numpy as np

from .load import FLOAT_TYPES, Node
from .recurrent import ACTIVATIONS, RECURRENT, bind_activation, build_cell

# The cells a fused recurrence runs on: those of ONNX's RNN and LSTM nodes.
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


@dataclass
class FusedRecurrence:
    """A chain of steps run as one kernel call; ``nodes`` the originals, run when the inputs
    do not have the shapes the fusion assumed."""

    cell: str  # the rnnsim cell (that of ONNX's RNN, LSTM or GRU node)
    activation: str
    steps: int
    input_size: int
    hidden_size: int
    dtype: np.dtype
    params: dict
    nodes: list[Node]
    node_names: tuple[str, str]
    where: str
    kernel: object
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    sliced: bool = False   # reads X (T', B, k) from ``offset`` on, not one input per step
    offset: int = 0
    whole: bool = False    # X was split into the steps: T' must be T
    stacked: bool = False  # also writes the steps' outputs stacked, (T, B, p)

    def __call__(self, inputs: list, values: dict) -> tuple:
        T, k, p = self.steps, self.input_size, self.hidden_size
        xs, states = (inputs[:1], inputs[1:]) if self.sliced else (inputs[:T], inputs[T:])
        B = states[0].shape[0] if getattr(states[0], "ndim", 0) == 2 else -1
        if not all(isinstance(v, np.ndarray) and v.dtype == self.dtype for v in inputs) \
                or any(s.shape != (B, p) for s in states) or not (
                    xs[0].ndim == 3 and xs[0].shape[0] >= self.offset + T
                    and (xs[0].shape[0] == T or not self.whole)
                    and xs[0].shape[1:] == (B, k) if self.sliced
                    else all(x.shape == (B, k) for x in xs)):
            return self._unfused(inputs, values)
        x = (np.ascontiguousarray(xs[0][self.offset:self.offset + T]) if self.sliced
             else np.stack(xs))
        h = np.array(states[0], order="C")
        extra = {"c": np.array(states[1], order="C")} if self.cell == LSTM.cell else {}
        out = self.kernel.run_direction(self.params, "", x, h, np.full(B, T, np.int64), False,
                                        **extra)
        return (tuple(out) + ((extra["c"],) if extra else ())
                + ((out.copy(),) if self.stacked else ()))

    def _unfused(self, inputs: list, values: dict) -> tuple:
        local = dict(values)
        local.update(zip(self.inputs, inputs))
        for node in self.nodes:
            results = node.run([local[n] if n else None for n in node.inputs], local)
            local.update((n, v) for n, v in zip(node.outputs, results) if n)
        return tuple(local[name] for name in self.outputs)

    def describe(self) -> dict:
        return {"cell": self.cell, "activation": self.activation, "steps": self.steps,
                "input_size": self.input_size, "hidden_size": self.hidden_size,
                "dtype": str(self.dtype), "nodes": len(self.nodes),
                "reads_sequence": self.sliced, "writes_sequence": self.stacked,
                "first_node": self.node_names[0], "last_node": self.node_names[1]}


def fuse(nodes: list[Node], constants: dict, shapes: dict, outputs: list[str],
         origin: str) -> list:
    """Replace, in ``nodes`` (in place), each recognised chain of steps by one fused node;
    return the ``FusedRecurrence`` of each. ``shapes``: tensor name -> (dtype, dims) known
    before a run; ``outputs``: the graph's outputs (a step's inner tensor must not be one)."""
    fused = []
    for find in (_lstm_steps, _gru_steps, _elman_steps):
        while True:  # after each fusion, look again in the rewritten node list
            graph = Graph(nodes, constants)
            for chain in _chains(graph, find(graph)):
                found = _fuse_chain(graph, chain, shapes, origin)
                if found is not None and _replace(nodes, graph, set(outputs), *found):
                    fused.append(found[1])
                    break
            else:
                break
    return fused


# ---- finding steps -------------------------------------------------------------------------

def _elman_steps(graph: Graph) -> list[Step]:
    steps = []
    for node in graph.nodes:
        if node.op in ELMAN_ACTIVATIONS:
            steps.append(Step(ELMAN, (), (node.outputs[0],), (node.inputs[0],)))
    return steps


def _lstm_steps(graph: Graph) -> list[Step]:
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


def _gru_steps(graph: Graph) -> list[Step]:
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


def _chains(graph: Graph, steps: list[Step]) -> list[list[Step]]:
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


def _complete(graph: Graph, chain: list[Step]) -> list[Step] | None:
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


# ---- weights -------------------------------------------------------------------------------

def _fuse_chain(graph: Graph, chain: list[Step], shapes: dict, origin: str):
    """A FusedRecurrence for ``chain`` (or, when its first step differs from the others, for
    the rest), with the chain's completed steps; None if it is not one."""
    completed = _complete(graph, chain)
    if completed is None and len(chain) > MIN_STEPS:
        completed = _complete(graph, chain[1:])
    if completed is None:
        return None
    chain = completed
    step = chain[0]
    k = _width(shapes, step.x)
    p = _width(shapes, step.states_in[0])
    dtype = shapes.get(step.x, (None,))[0]
    if k is None or p is None or dtype not in FLOAT_TYPES:
        return None
    op, cell = step.op, step.op.cell
    try:
        weights = _probe(graph, step, k, p, dtype)
        if weights is None:
            return None
        params = dict(zip(("W", "U", "b"), weights))
        if op is GRU:  # the candidate's recurrent part stays inside r * (...): PyTorch's form
            params = {"W": params["W"][:3 * p], "U": np.concatenate(
                [params["U"][:2 * p], params["U"][3 * p:]]), "b": params["b"][:3 * p],
                "bn": params["b"][3 * p:]}
        activation = (ELMAN_ACTIVATIONS[graph.nodes[graph.producer[step.states_out[0]]].op]
                      if op is ELMAN else "tanh")
        if not _agrees(graph, step, activation, params, dtype):
            return None
        first, last = graph.nodes[chain[0].nodes[0]].name, graph.nodes[chain[-1].nodes[-1]].name
        where = f"{origin}: fused {cell} steps '{first}'..'{last}'"
        names = ([activation] if op is ELMAN else  # ONNX's defaults, in kernel order
                 [ACTIVATIONS[op.activations[slot].lower()][0] for slot in op.activation_slots])
        kernel = build_cell(cell, p, k, [bind_activation(name, where) for name in names],
                            {"reset_after": True} if op is GRU else {}, where)
    except Exception:  # noqa: BLE001 (any failure of a probe means: not a recurrence
        return None    # rnnsim runs as one; the nodes run as they are)
    params = {key: np.ascontiguousarray(value) for key, value in params.items()}
    for value in params.values():
        value.flags.writeable = False
    nodes = [graph.nodes[i] for s in chain for i in s.nodes]
    return chain, FusedRecurrence(cell, activation, len(chain), k, p, dtype, params, nodes,
                                  (first, last), where, kernel)


def _width(shapes: dict, name: str) -> int | None:
    dims = shapes.get(name, (None, None))[1]
    if dims is None or len(dims) != 2 or not isinstance(dims[1], int) or dims[1] <= 0:
        return None
    return dims[1]


def _run_step(graph: Graph, step: Step, feeds: dict) -> dict:
    values = dict(graph.constants)
    values.update(feeds)
    for index in step.nodes:
        node = graph.nodes[index]
        results = node.run([values[n] if n else None for n in node.inputs], values)
        values.update((n, v) for n, v in zip(node.outputs, results) if n)
    return values


def _probe(graph: Graph, step: Step, k: int, p: int, dtype):
    """W (G*p, k), U (G*p, p), b (G*p,) of the step's pre-activations, read on unit inputs:
    row 0 zeros, rows 1..k the unit inputs, rows k+1..k+p the unit states."""
    n = 1 + k + p
    x = np.zeros((n, k), dtype)
    x[1:k + 1] = np.eye(k, dtype=dtype)
    h = np.zeros((n, p), dtype)
    h[k + 1:] = np.eye(p, dtype=dtype)
    feeds = {step.x: x}
    if len(step.states_in) > 1:  # the cell state does not enter the pre-activations
        feeds[step.states_in[1]] = np.zeros((n, p), dtype)
    feeds[step.states_in[0]] = h  # (one tensor may start both states, as torch's zeros)
    values = _run_step(graph, step, feeds)
    blocks = []
    for name in step.pre:
        value = values.get(name)
        if not isinstance(value, np.ndarray) or value.shape != (n, p):
            return None
        blocks.append(value)
    pre = np.concatenate(blocks, axis=1).astype(dtype)  # (n, G*p)
    b = pre[0]
    W = np.ascontiguousarray((pre[1:k + 1] - b).T)
    U = np.ascontiguousarray((pre[k + 1:] - b).T)
    return W, U, np.ascontiguousarray(b)


def _agrees(graph: Graph, step: Step, activation: str, params: dict, dtype) -> bool:
    """The step's nodes on random inputs against the cell's formula with the weights read."""
    rng = np.random.default_rng(0)
    W, U, b = params["W"], params["U"], params["b"]
    B, k, p = 3, W.shape[1], U.shape[1]
    x = rng.standard_normal((B, k)).astype(dtype)
    h = rng.uniform(-1, 1, (B, p)).astype(dtype)
    feeds = {step.x: x, step.states_in[0]: h}
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    xw, hu = x.astype(np.float64) @ W.T, h.astype(np.float64) @ U.T
    if step.op is LSTM:
        c = rng.standard_normal((B, p)).astype(dtype)
        if step.states_in[1] == step.states_in[0]:
            c = h
        feeds[step.states_in[1]] = c
        i, f, g, o = np.split(xw + hu + b, 4, axis=1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        expected = [sigmoid(o) * np.tanh(c_new), c_new]
    elif step.op is GRU:
        r, z, n_x = np.split(xw + b, 3, axis=1)
        u_r, u_z, u_n = np.split(hu, 3, axis=1)
        r, z = sigmoid(r + u_r), sigmoid(z + u_z)
        n = np.tanh(n_x + r * (u_n + params["bn"]))
        expected = [(1 - z) * n + z * h]
    else:
        z = xw + hu + b
        expected = [np.tanh(z) if activation == "tanh" else np.maximum(z, 0)]
    values = _run_step(graph, step, feeds)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    return all(isinstance(values.get(name), np.ndarray) and values[name].shape == want.shape
               and np.allclose(values[name], want, rtol=tol, atol=tol)
               for name, want in zip(step.states_out, expected))


# ---- rewriting the node list ---------------------------------------------------------------

def _replace(nodes: list[Node], graph: Graph, graph_outputs: set, chain: list[Step],
             fused: FusedRecurrence) -> bool:
    """Put one node running ``fused`` in place of the chain's nodes, if nothing else reads
    their inner tensors and the node list stays in topological order; False if not. Where
    the steps' inputs are the time slices of one tensor X (Split, Slice or Gather on axis 0,
    then Squeeze) the node reads X itself; where their outputs are stacked into one tensor
    (Unsqueeze on axis 0, then Concat) it writes that tensor too."""
    inner = {i for step in chain for i in step.nodes}
    outputs = [step.states_out[0] for step in chain]
    if fused.cell == LSTM.cell:
        outputs.append(chain[-1].states_out[1])
    xs = [step.x for step in chain]
    if not _only_read_by(graph, inner, inner, set(outputs), graph_outputs):
        return False
    source = _time_slices(graph, xs, graph_outputs, inner)
    if source is not None:
        x_name, fused.offset, slicing = source
        inputs, inner = [x_name], inner | slicing
        fused.whole = any(graph.nodes[i].op == "Split" for i in slicing)
    else:
        inputs = xs
    stack = _stacked(graph, outputs[:len(chain)], graph_outputs)
    if stack is not None:
        outputs.append(stack[0])
        inner |= stack[1]
    inputs += list(chain[0].states_in)
    fused.inputs, fused.outputs, fused.stacked = inputs, outputs, stack is not None
    fused.sliced = source is not None
    fused.nodes = [nodes[i] for i in sorted(inner)]
    node = Node(f"{fused.node_names[0]}..{fused.node_names[1]}", f"Fused{fused.cell.title()}",
                tuple(inputs), tuple(outputs), {}, fused)
    kept = [n for i, n in enumerate(nodes) if i not in inner] + [node]
    ordered = _topological(kept)
    if ordered is None:
        return False
    nodes[:] = ordered
    return True


def _only_read_by(graph: Graph, made_by: set, readers: set, allowed: set,
                  graph_outputs: set) -> bool:
    """No tensor the ``made_by`` nodes make, but those ``allowed``, is read by other nodes
    than ``readers`` or is a graph output."""
    return not any(name and name not in allowed and (name in graph_outputs or any(
        r not in readers for r in graph.readers.get(name, [])))
        for index in made_by for name in graph.nodes[index].outputs)


def _axis0(graph: Graph, node: Node, slot: int = 1) -> bool:
    """``node``'s axes (attribute, or constant input ``slot``) are exactly [0]."""
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > slot and node.inputs[slot] in graph.constants:
        axes = graph.constants[node.inputs[slot]]
    return axes is not None and [int(a) for a in np.asarray(axes).reshape(-1)] == [0]


def _time_index(graph: Graph, name: str):
    """(X, t, nodes) if tensor ``name`` is X[t] for a constant t >= 0 on axis 0, else None."""
    squeeze = graph.made_by(name, "Squeeze", "Gather")
    if squeeze is None:
        return None
    if squeeze.op == "Gather":
        t = graph.constants.get(squeeze.inputs[1])
        if squeeze.attrs.get("axis", 0) != 0 or t is None or np.ndim(t) != 0 or t < 0:
            return None
        return squeeze.inputs[0], int(t), {graph.producer[name]}
    if not _axis0(graph, squeeze):
        return None
    one = squeeze.inputs[0]
    part = graph.made_by(one, "Split", "Slice")
    if part is None:
        return None
    nodes = {graph.producer[name], graph.producer[one]}
    if part.op == "Split":
        sizes = part.attrs.get("split")
        if sizes is None and len(part.inputs) > 1 and part.inputs[1] in graph.constants:
            sizes = graph.constants[part.inputs[1]]
        if part.attrs.get("axis", 0) != 0 or (sizes is not None and any(
                int(v) != 1 for v in np.asarray(sizes).reshape(-1))):
            return None
        if sizes is None and part.attrs.get("num_outputs", len(part.outputs)) != len(part.outputs):
            return None
        return part.inputs[0], part.outputs.index(one), nodes
    bounds = [graph.constants.get(n) for n in part.inputs[1:]]
    if len(bounds) < 3 or any(b is None for b in bounds[:3]) or not _axis0(graph, part, 3):
        return None
    start, end = (int(np.asarray(b).reshape(-1)[0]) for b in bounds[:2])
    step = 1 if len(bounds) < 4 or bounds[3] is None else int(np.asarray(bounds[3]).reshape(-1)[0])
    return (part.inputs[0], start, nodes) if start >= 0 and end == start + 1 and step == 1 \
        else None


def _time_slices(graph: Graph, xs: list[str], graph_outputs: set, inner: set):
    """(X, first t, slicing nodes) if the step inputs are X[t0], X[t0+1]... and the slicing
    nodes feed nothing else; else None."""
    found = [_time_index(graph, name) for name in xs]
    if None in found or len({x for x, _, _ in found}) != 1:
        return None
    start = found[0][1]
    if [t for _, t, _ in found] != list(range(start, start + len(xs))):
        return None
    slicing = set().union(*(nodes for _, _, nodes in found))
    if not _only_read_by(graph, slicing, slicing | inner, set(), graph_outputs):
        return None
    split = [graph.nodes[i] for i in slicing if graph.nodes[i].op == "Split"]
    if split and (len(split) != 1 or start != 0 or len(split[0].outputs) != len(xs)):
        return None  # a Split's outputs must be the steps' inputs, all of them
    return found[0][0], start, slicing


def _stacked(graph: Graph, hs: list[str], graph_outputs: set):
    """(Y, nodes) if Y = Concat(Unsqueeze(h_t, axis 0) for every step, in order), else None."""
    unsqueezes = []
    for h in hs:
        readers = [graph.nodes[i] for i in graph.readers.get(h, [])
                   if graph.nodes[i].op == "Unsqueeze" and _axis0(graph, graph.nodes[i])]
        if len(readers) != 1:
            return None
        unsqueezes.append(readers[0])
    names = [u.outputs[0] for u in unsqueezes]
    concat = {i for name in names for i in graph.readers.get(name, [])}
    if len(concat) != 1:
        return None
    node = graph.nodes[concat.pop()]
    if node.op != "Concat" or node.attrs.get("axis") != 0 or list(node.inputs) != names \
            or any(name in graph_outputs for name in names):
        return None
    return node.outputs[0], {graph.producer[name] for name in names} | {graph.producer[
        node.outputs[0]]}


def _topological(nodes: list[Node]) -> list[Node] | None:
    """``nodes`` in an order where each reads only what came before, the earliest ready node
    first (so an ordered list stays as it is); None if a node waits on itself."""
    producer = {name: i for i, node in enumerate(nodes) for name in node.outputs if name}
    waits = [0] * len(nodes)
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for before in {producer[n] for n in node.inputs + node.implicit if n in producer}:
            waits[i] += 1
            readers.setdefault(before, []).append(i)
    ready = [i for i, count in enumerate(waits) if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        i = heapq.heappop(ready)
        ordered.append(nodes[i])
        for reader in readers.get(i, []):
            waits[reader] -= 1
            if waits[reader] == 0:
                heapq.heappush(ready, reader)
    return ordered if len(ordered) == len(nodes) else None
