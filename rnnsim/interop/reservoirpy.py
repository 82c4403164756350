"""Run reservoirpy (0.4) echo-state networks on rnnsim's kernels: a chain of ``Reservoir``
nodes, optionally read out by a ``Ridge`` (trained or not) that may feed back into the top
reservoir (``ridge << reservoir`` or ``ESN(feedback=True)``).

reservoirpy folds its input scaling into ``Win`` and, with feedback, keeps the fed-back
columns in ``Win`` after the input's (its node input is [u_t, y_{t-1}]): rnnsim's ``Win`` and
``Wfb`` are those two column blocks, with ``input_scaling`` and the feedback scaling 1. ``lr``
is the leak rate, the bias a vector (a scalar bias is repeated), a sparse ``W`` stays sparse.
Ridge's ``Wout`` (N, m) is the ridge head's ``W`` transposed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..config import parse
from ..errors import ConfigError
from ..network import Network


def _activations() -> dict:
    """reservoirpy activation function -> rnnsim activation name."""
    from reservoirpy import activationsfunc as fn

    return {fn.tanh: "tanh", np.tanh: "tanh", fn.sigmoid: "sigmoid", fn.relu: "relu",
            fn.identity: "identity", fn.softplus: "softplus"}


def _dense(value) -> np.ndarray:
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value, np.float64)


def _chain(model: Any) -> tuple[list, Any, bool]:
    """(reservoirs in order, the Ridge or None, whether the Ridge feeds back)."""
    from reservoirpy.nodes import Reservoir, Ridge

    nodes = list(getattr(model, "nodes", [model]))
    edges = list(getattr(model, "edges", []))
    for node in nodes:
        if type(node) not in (Reservoir, Ridge):
            raise ConfigError(f"reservoirpy node '{node.name or type(node).__name__}' "
                              f"({type(node).__name__}) has no rnnsim equivalent; rnnsim imports "
                              "a chain of Reservoir nodes and a Ridge readout (an Input node "
                              "comes from input_to_readout, which rnnsim's ridge head cannot "
                              "do).")
    direct = [(a, b) for a, delay, b in edges if delay == 0]
    delayed = [(a, delay, b) for a, delay, b in edges if delay != 0]
    order, ridges = [], [n for n in nodes if type(n) is Ridge]
    current = next((n for n in nodes if not any(b is n for _, b in direct)), None)
    while current is not None:
        order.append(current)
        following = [b for a, b in direct if a is current]
        if len(following) > 1 or (following and following[0] in order):
            break
        current = following[0] if following else None
    if len(order) != len(nodes) or len(direct) != len(nodes) - 1 or len(ridges) > 1 \
            or (ridges and order[-1] is not ridges[0]):
        raise ConfigError("the reservoirpy model is not a chain Reservoir >> ... >> Reservoir "
                          "(>> Ridge): rnnsim imports stacked reservoirs read out by at most "
                          "one Ridge (input_to_readout and other branches are not supported).")
    ridge = ridges[0] if ridges else None
    reservoirs = order[:-1] if ridge is not None else order
    feedback = False
    for sender, delay, receiver in delayed:
        if not (sender is ridge and receiver is reservoirs[-1] and delay == 1):
            raise ConfigError(f"reservoirpy feedback '{sender.name}' -> '{receiver.name}' with "
                              f"delay {delay} is not supported: rnnsim feeds the Ridge's "
                              "previous output back into the top reservoir only (delay 1).")
        feedback = True
    return reservoirs, ridge, feedback


def _reservoir(node, fed_back: int, where: str) -> tuple[dict, dict, int]:
    """(rnnsim layer config, its parameters, input size) of one Reservoir."""
    if not getattr(node, "initialized", False) or callable(node.W) or callable(node.Win):
        raise ConfigError(f"{where}: the reservoir is not initialized (its weights are not "
                          "drawn yet); run it once or call initialize(x) first.")
    activation = _activations().get(node.activation)
    if activation is None:
        raise ConfigError(f"{where}: activation {getattr(node.activation, '__name__', '?')!r} "
                          "has no rnnsim equivalent; supported: tanh, sigmoid, relu, identity, "
                          "softplus.")
    n = int(node.units)
    win = _dense(node.Win)
    k = win.shape[1] - fed_back
    bias = _dense(node.bias).reshape(-1)
    lr = np.asarray(node.lr, np.float64).reshape(-1)
    layer = {"cell": "esn", "units": n, "activation": activation,
             "leak_rate": float(lr[0]) if lr.size == 1 else lr.tolist()}
    params = {"Win": win[:, :k], "b": np.broadcast_to(bias, (n,)).copy()}
    if fed_back:
        layer["feedback"] = {"scaling": 1.0}
        params["Wfb"] = win[:, k:]
    if hasattr(node.W, "tocsr"):
        w = node.W.tocsr().astype(np.float64)
        w.sort_indices()
        layer["sparse"] = True
        params.update({"W.data": w.data, "W.indices": w.indices, "W.indptr": w.indptr})
    else:
        params["W"] = _dense(node.W)
    return layer, params, k


def from_reservoirpy(model: Any, dtype: str = "float64") -> Network:
    """A ``Network`` from a reservoirpy ``Reservoir``, or a model of stacked Reservoirs read
    out by a ``Ridge`` (``reservoir >> ridge``, ``ESN(...)``), with output feedback
    (``reservoir << ridge``) if it has it.

    ``net.run(u).output`` equals the top reservoir's states and ``.y`` the Ridge's output,
    as ``model.run(u)`` gives them from zero states (``model.reset()``). An untrained Ridge
    becomes a ridge head of zeros, for ``net.fit``; it needs its ``output_dim``.
    """
    reservoirs, ridge, feedback = _chain(model)
    outputs = None
    if ridge is not None:
        outputs = ridge.output_dim if ridge.output_dim is not None else (
            None if ridge.Wout is None or callable(ridge.Wout) else np.shape(ridge.Wout)[1])
        if outputs is None:
            raise ConfigError(f"reservoirpy Ridge '{ridge.name}' does not know its output size "
                              "yet: train it, or create it with output_dim=.")
    layers, params, input_size = [], {}, None
    for i, node in enumerate(reservoirs):
        top = i == len(reservoirs) - 1
        layer, found, k = _reservoir(node, outputs if feedback and top else 0,
                                     f"reservoirpy Reservoir '{node.name}'")
        input_size = k if input_size is None else input_size
        layers.append(layer)
        params.update({f"layers.{i}.{name}": value for name, value in found.items()})
    network = {"input_size": int(input_size), "dtype": dtype, "layers": layers}
    if ridge is not None:
        network["head"] = {"name": "ridge", "units": int(outputs)}
        trained = ridge.Wout is not None and not callable(ridge.Wout)
        params["head.W"] = (_dense(ridge.Wout).T if trained
                            else np.zeros((outputs, layers[-1]["units"])))
        params["head.b"] = (_dense(ridge.bias).reshape(-1) if trained and ridge.bias is not None
                            and not callable(ridge.bias) else np.zeros(outputs))
    return Network(parse({"network": network}), params)
