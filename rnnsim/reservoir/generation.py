"""Closed-loop generation: an echo-state forecaster fed its own outputs."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, InputError, ShapeError
from ..results import RunResult, State


def generate(net, steps: int, state=None, y0=None):
    """Run ``net`` in closed loop for ``steps`` steps: the ridge head's output y_{t-1} is the
    next input u_t, and with output ``feedback`` it is fed back through W_fb as well.

    net : one esn layer and a ridge head with head.units = input_size (a one-step-ahead
        forecaster), trained with ``fit``
    state : where to start, e.g. ``net.run(u_warmup).state``; default: zeros, one sequence
    y0 : the first input y_{-1}, (m,) or (B, m); default: the state's fed-back output with
        feedback, else the head's output on the state's h (the forecast its run ended with)
    Returns a ``RunResult``: output (steps, [B,] N) the states, y (steps, [B,] m) the generated
    series, and ``.state`` to continue (with ``run``, ``step`` or ``generate``).
    """
    layer = net.layers[0]
    if len(net.layers) != 1 or not layer.reservoir or net.head is None or \
            not net.head.linear_readout:
        raise ConfigError("generate: closed-loop generation needs one esn layer and a ridge "
                          "head; run the stack step by step with net.step instead.")
    if net.head.units != net.input_size:
        raise ConfigError(f"generate: the head's {net.head.units} outputs become the next "
                          f"input, which has input_size = {net.input_size} features; make "
                          "head.units equal input_size. For output feedback alone, run on a "
                          "zero input: net.run(np.zeros((steps, k)), h0=state).")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"generate: steps must be a positive integer, got {steps!r}.")
    state = net.initial_state() if state is None else state
    if not isinstance(state, State):
        raise InputError(f"generate: state must be a State (RunResult.state or "
                         f"net.initial_state(batch)), got {type(state).__name__}.")
    N, m = layer.units, net.head.units
    h = np.asarray(state.h[0], dtype=net.dtype) if len(state.layers) == 1 else np.zeros(0)
    if h.shape not in ((1, N),) and (h.ndim != 3 or h.shape[::2] != (1, N)):
        raise ShapeError(f"generate: state.h[0] has shape {h.shape}; expected (1, {N}) or "
                         f"(1, B, {N}). Use a State of this network.")
    unbatched = h.ndim == 2
    h0 = np.ascontiguousarray(h[:, None] if unbatched else h)
    B = h0.shape[1]
    head = {k[5:]: v for k, v in net.params.items() if k.startswith("head.")}
    want = (m,) if unbatched else (B, m)
    if y0 is None and layer.feedback_size:
        fed = state.layers[0].get("y")
        if fed is None or np.shape(fed) != (1,) + want:
            raise ShapeError(f"generate: the state's fed-back output y has shape "
                             f"{np.shape(fed)}; expected {(1,) + want}. Use a State of this "
                             "network.")
        y0 = np.asarray(fed)[0]
    elif y0 is None:
        y0 = net.head.forward(head, h0[0]).reshape(want)
    y0 = np.asarray(y0, dtype=net.dtype)
    if y0.shape != want:
        raise ShapeError(f"generate: y0 has shape {y0.shape}; expected {want}, one output "
                         "per sequence.")
    params = {**net.layer_params(0), **{f"head.{k}": v for k, v in head.items()}}
    z, h, y = layer.generate(params, h0, np.ascontiguousarray(y0.reshape(1, B, m)),
                             int(steps))
    outputs = net.head.forward(head, z)
    final = {"h": h, **({"y": y} if layer.feedback_size else {})}
    if unbatched:
        return RunResult(z[:, 0], ({n: s[:, 0] for n, s in final.items()},), outputs[:, 0])
    if net.config.network.batch_first:
        z, outputs = np.ascontiguousarray(z.swapaxes(0, 1)), outputs.swapaxes(0, 1)
    return RunResult(z, (final,), outputs)
