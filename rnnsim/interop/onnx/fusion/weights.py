"""The weights of a step read by running its nodes on unit inputs, checked against a step of
the cell on random ones, and the fused recurrence built from them."""
from __future__ import annotations

import numpy as np

from ..load import FLOAT_TYPES, run_nodes
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
        first, last = graph.nodes[chain[0].nodes[0]].name, graph.nodes[chain[-1].nodes[-1]].name
        where = f"{origin}: fused {cell} steps '{first}'..'{last}'"
        names = ([activation] if op is ELMAN else  # ONNX's defaults, in kernel order
                 [ACTIVATIONS[op.activations[slot].lower()][0] for slot in op.activation_slots])
        kernel = build_cell(cell, p, k, [bind_activation(name, where) for name in names],
                            {"reset_after": True} if op is GRU else {}, where)
        if not _agrees(graph, step, kernel, params, dtype):
            return None
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
    """The tensors after the step's nodes ran on ``feeds`` (and the graph's constants)."""
    return run_nodes([graph.nodes[index] for index in step.nodes], {**graph.constants, **feeds})


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


def _agrees(graph: Graph, step: Step, cell, params: dict, dtype) -> bool:
    """The step's nodes on random inputs against one step of ``cell`` (the kernel the fused
    recurrence runs) with the weights read."""
    rng = np.random.default_rng(0)
    B, k, p = 3, params["W"].shape[1], params["U"].shape[1]
    x = rng.standard_normal((B, k)).astype(dtype)
    h = rng.uniform(-1, 1, (B, p)).astype(dtype)
    feeds = {step.x: x, step.states_in[0]: h}
    states = {"h": h.copy()}
    if step.op is LSTM:
        c = h if step.states_in[1] == step.states_in[0] else \
            rng.standard_normal((B, p)).astype(dtype)
        feeds[step.states_in[1]] = c
        states["c"] = c.copy()
    cell.run_direction(params, "", x[None], states["h"], np.ones(B, np.int64), False,
                       **{name: value for name, value in states.items() if name != "h"})
    values = _run_step(graph, step, feeds)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    return all(isinstance(values.get(name), np.ndarray) and values[name].shape == want.shape
               and np.allclose(values[name], want, rtol=tol, atol=tol)
               for name, want in zip(step.states_out, states.values()))
