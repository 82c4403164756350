"""The weights of a step read by running its nodes on unit inputs, checked against the
cell's formula on random ones, and the fused recurrence built from them."""
from __future__ import annotations

import numpy as np

from ..load import FLOAT_TYPES
from ..recurrent import ACTIVATIONS, bind_activation, build_cell
from .recurrence import FusedRecurrence
from .steps import ELMAN, ELMAN_ACTIVATIONS, GRU, LSTM, MIN_STEPS, Graph, Step, complete


def fuse_chain(graph: Graph, chain: list[Step], shapes: dict, origin: str):
    """A FusedRecurrence for ``chain`` (or, when its first step differs from the others, for
    the rest), with the chain's completed steps; None if it is not one."""
    completed = complete(graph, chain)
    if completed is None and len(chain) > MIN_STEPS:
        completed = complete(graph, chain[1:])
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
