"""Reservoir computing: ridge readouts, generation, ensembles and analysis of echo-state nets.

``Network.fit`` delegates to :func:`fit`. Sparse recurrent weights and spectral radii live in
:mod:`rnnsim.sparse`.
"""
from __future__ import annotations


import time

import numpy as np

from .errors import ConfigError, InputError, ShapeError
from .results import RunResult, State
from .sparse import spectral_radius

def ridge_regression(states: np.ndarray, targets: np.ndarray, ridge: float,
                     chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Readout weights minimising ||S W + b - Y||^2 + ridge ||W||^2, the bias unregularised.

    states : (n, N); targets : (n, m). Accumulates S^T S, S^T Y and the column sums in float64
    over chunks of rows (no copy of ``states``), centres them, and solves the N x N system.
    Returns ``W`` (N, m) and ``b`` (m,) in float64.
    """
    n, N = states.shape
    m = targets.shape[1]
    gram, cross = np.zeros((N, N)), np.zeros((N, m))
    s_sum, y_sum = np.zeros(N), np.zeros(m)
    for start in range(0, n, chunk):
        s = states[start:start + chunk].astype(np.float64, copy=False)
        y = targets[start:start + chunk].astype(np.float64, copy=False)
        gram += s.T @ s
        cross += s.T @ y
        s_sum += s.sum(axis=0)
        y_sum += y.sum(axis=0)
    s_mean, y_mean = s_sum / n, y_sum / n
    gram -= n * np.outer(s_mean, s_mean)
    cross -= n * np.outer(s_mean, y_mean)
    gram.flat[:: N + 1] += ridge
    try:
        w = np.linalg.solve(gram, cross)
    except np.linalg.LinAlgError:
        raise InputError(f"the ridge system ({N} states, {n} samples) is singular; use a "
                         "positive ridge (--ridge) or more samples after the washout.") from None
    return w, y_mean - s_mean @ w


def _time_major(net, a: np.ndarray, unbatched: bool) -> np.ndarray:
    """(T, B, ...) from the user's layout of ``a``."""
    if unbatched:
        return a[:, None]
    return a.swapaxes(0, 1) if net.config.network.batch_first else a


def fit(net, u, y, washout: int = 0, ridge: float = 1e-6, check_finite: bool = True):
    """Train the ridge head of ``net`` on inputs ``u`` and targets ``y``; returns ``net``.

    u : (T, k), (T, B, k) or (B, T, k) with batch_first, as for ``Network.run``
    y : the same layout with the head's units as last axis; (T,) or (T, B) when units = 1
    washout : leading steps of every sequence left out of the regression
    ridge : the L2 penalty on W_out (never on b_out)

    With output feedback the states come from teacher forcing: y[t-1] is fed back at step t
    (y[-1] = 0), as reservoirpy does with ``reservoir <<= readout``.
    """
    if net.head is None:
        raise ConfigError("network.head: fit trains a ridge readout; add `head: {name: ridge, "
                          "units: <outputs>}` to the config.")
    if not (isinstance(washout, int) and washout >= 0) or not (ridge >= 0):
        raise InputError(f"washout must be an integer >= 0 and ridge >= 0; got washout="
                         f"{washout!r}, ridge={ridge!r}.")
    target = _checked_target(net, y, tuple(np.shape(u)[:-1]), "target y", check_finite)
    teacher = target if has_feedback(net) else None
    result = net.run(u, teacher=teacher, check_finite=check_finite)
    unbatched = result.output.ndim == 2
    states = _time_major(net, result.output, unbatched)
    target = _time_major(net, target, unbatched)
    T = states.shape[0]
    if washout >= T:
        raise InputError(f"washout = {washout} leaves no step of the {T} to fit; use a "
                         "smaller washout or a longer input.")
    kept = np.ascontiguousarray(states[washout:])
    fitted = net.head.fit(kept.reshape(-1, kept.shape[-1]),
                          np.ascontiguousarray(target[washout:]).reshape(-1, net.head.units),
                          ridge)
    for name, value in fitted.items():
        net.params[f"head.{name}"] = np.ascontiguousarray(value, dtype=net.dtype)
    return net


def fit_and_score(net, u, y, split: int | None = None, washout: int = 0,
                  ridge: float = 1e-6) -> dict:
    """Fit the ridge head on the first ``split`` steps of (u, y) (all of them without), run on
    all of ``u`` and score: ``train_nrmse`` over steps washout..split, ``test_nrmse`` over the
    rest (with ``split``), and ``fit_seconds``. With output feedback the run is free: the
    head's own outputs are fed back."""
    start = time.perf_counter()
    net.fit(u if split is None else u[:split], y if split is None else y[:split],
            washout=washout, ridge=ridge)
    scores = {"fit_seconds": time.perf_counter() - start}
    prediction = net.run(u).y
    target = np.asarray(y, np.float64).reshape(prediction.shape)
    end = len(target) if split is None else split
    scores["train_nrmse"] = nrmse(target[washout:end], prediction[washout:end])
    if split is not None:
        scores["test_nrmse"] = nrmse(target[split:], prediction[split:])
    return scores


def has_feedback(net) -> bool:
    """Whether the top layer of ``net`` receives the head's output (esn ``feedback``)."""
    return bool(net.layers[-1].feedback_size)


def _checked_target(net, y, lead: tuple, name: str, check_finite: bool) -> np.ndarray:
    """``y`` as float64 of shape ``lead + (head.units,)``; the last axis may be left out when
    the head has one output."""
    units = net.head.units
    try:
        target = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} cannot be read as an array of numbers: {exc}.") from None
    if units == 1 and target.shape == lead:
        target = target[..., None]
    if target.shape != lead + (units,):
        raise ShapeError(f"{name} has shape {np.shape(y)}; expected {lead + (units,)} (the "
                         f"input's steps and sequences, head.units = {units} outputs).")
    if check_finite and not np.isfinite(target).all():
        raise InputError(f"{name} holds NaN/inf values; clean it first.")
    return target


def teacher_signal(net, teacher, T: int, B: int, unbatched: bool,
                   check_finite: bool) -> np.ndarray:
    """``Network.run``'s ``teacher`` checked and laid out time-major: (T, B, m) in net's dtype."""
    if not has_feedback(net):
        raise ConfigError("run: teacher forcing feeds targets back into a layer with output "
                          "feedback; add `feedback: true` to the top esn layer (with a ridge "
                          "head), or leave teacher out.")
    lead = (T,) if unbatched else (B, T) if net.config.network.batch_first else (T, B)
    target = _checked_target(net, teacher, lead, "teacher", check_finite)
    return np.ascontiguousarray(_time_major(net, target, unbatched), dtype=net.dtype)


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
    h = np.asarray(state.h[0], dtype=net.dtype) if len(state.h) == 1 else np.zeros(0)
    if h.shape not in ((1, N),) and (h.ndim != 3 or h.shape[::2] != (1, N)):
        raise ShapeError(f"generate: state.h[0] has shape {h.shape}; expected (1, {N}) or "
                         f"(1, B, {N}). Use a State of this network.")
    unbatched = h.ndim == 2
    h0 = np.ascontiguousarray(h[:, None] if unbatched else h)
    B = h0.shape[1]
    head = {k[5:]: v for k, v in net.params.items() if k.startswith("head.")}
    want = (m,) if unbatched else (B, m)
    if y0 is None and layer.feedback_size:
        fed = state.c[0] if len(state.c) == 1 else None
        if fed is None or np.shape(fed) != (1,) + want:
            raise ShapeError(f"generate: state.c[0] (the fed-back output) has shape "
                             f"{np.shape(fed)}; expected {(1,) + want}. Use a State of this "
                             "network.")
        y0 = np.asarray(fed)[0]
    elif y0 is None:
        y0 = net.head.forward(head, h0[0]).reshape(want)
    y0 = np.asarray(y0, dtype=net.dtype)
    if y0.shape != want:
        raise ShapeError(f"generate: y0 has shape {y0.shape}; expected {want}, one output "
                         "per sequence.")
    params = {**layer_params(net, 0), **{f"head.{k}": v for k, v in head.items()}}
    z, h, y = layer.generate(params, h0, np.ascontiguousarray(y0.reshape(1, B, m)),
                             int(steps))
    outputs = net.head.forward(head, z)
    final_c = y if layer.feedback_size else None
    if unbatched:
        return RunResult(z[:, 0], (h[:, 0],), outputs[:, 0],
                         (None if final_c is None else final_c[:, 0],))
    if net.config.network.batch_first:
        z, outputs = np.ascontiguousarray(z.swapaxes(0, 1)), outputs.swapaxes(0, 1)
    return RunResult(z, (h,), outputs, (final_c,))


def nrmse(y, prediction) -> float:
    """Root mean squared error over the standard deviation of ``y``."""
    y, prediction = np.asarray(y, np.float64), np.asarray(prediction, np.float64)
    if y.shape != prediction.shape:
        raise ShapeError(f"nrmse: y has shape {y.shape} but the prediction {prediction.shape}.")
    return float(np.sqrt(np.mean((y - prediction) ** 2)) / (np.std(y) or 1.0))


def mackey_glass(timesteps: int, tau: int = 17, beta: float = 0.2, gamma: float = 0.1,
                 n: float = 10.0, dt: float = 1.0, x0: float = 1.2, seed: int = 0,
                 substeps: int = 10) -> np.ndarray:
    """The Mackey-Glass series dx/dt = beta x(t-tau) / (1 + x(t-tau)^n) - gamma x(t).

    Integrated with RK4 at ``dt / substeps`` and sampled every ``dt``; the history before t = 0
    is ``x0`` plus a small seeded perturbation. Returns ``(timesteps, 1)`` float64.
    """
    h = dt / substeps
    lag = int(round(tau / h))
    rng = np.random.default_rng(seed)
    total = timesteps * substeps + 1
    x = np.empty(lag + total)
    x[: lag + 1] = x0 + 0.01 * rng.standard_normal(lag + 1)

    def deriv(xt, xlag):
        return beta * xlag / (1.0 + xlag ** n) - gamma * xt

    for i in range(lag, lag + total - 1):
        a, b = x[i - lag], x[i - lag + 1]
        mid = 0.5 * (a + b)
        k1 = deriv(x[i], a)
        k2 = deriv(x[i] + 0.5 * h * k1, mid)
        k3 = deriv(x[i] + 0.5 * h * k2, mid)
        k4 = deriv(x[i] + h * k3, b)
        x[i + 1] = x[i] + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + substeps:: substeps][:timesteps, None].copy()


def memory_capacity(net, max_delay: int | None = None, timesteps: int = 2000,
                    washout: int = 200, ridge: float = 1e-8, seed: int = 0) -> float:
    """Jaeger's memory capacity: sum over delays d of corr(u[t-d], its ridge estimate)^2.

    The network is driven by i.i.d. U(-1, 1) input on every feature; the readouts (one per
    delay 1..max_delay, default min(2N, 200)) are fitted on the top layer's states.
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=(timesteps + washout, net.input_size))
    states = net.run(u.astype(net.dtype)).output
    width = states.shape[-1]
    max_delay = max_delay or min(2 * width, 200)
    delays = np.arange(1, max_delay + 1)
    rows = np.arange(washout, timesteps + washout)
    targets = u[rows[:, None] - delays[None, :], 0]
    w, b = ridge_regression(states[rows], targets, ridge)
    estimate = states[rows].astype(np.float64) @ w + b
    corr = [np.corrcoef(targets[:, d], estimate[:, d])[0, 1] for d in range(max_delay)]
    return float(np.nansum(np.square(corr)))


def echo_state_check(net, u, trials: int = 4, seed: int = 0) -> dict:
    """Run ``u`` (T, k) from ``trials`` random initial states in one batch; do they converge?

    Returns the largest distance between the trials' states at the first and last step, their
    ratio, and ``holds`` (the final distance is below 1e-6 of the first, or 1e-9 absolute).
    """
    u = np.asarray(u)
    if u.ndim != 2:
        raise ShapeError(f"echo_state_check takes one sequence u of shape (T, k); got {u.shape}.")
    x = np.repeat(u[:, None, :], trials, axis=1)
    if net.config.network.batch_first:
        x = x.swapaxes(0, 1)
    rng = np.random.default_rng(seed)
    h0 = [rng.uniform(-1, 1, (layer.directions, trials, layer.hidden_size))
          for layer in net.layers]
    out = _time_major(net, net.run(x, h0=h0).output, False).astype(np.float64)

    def spread(states):
        return float(np.max(np.linalg.norm(states - states[:1], axis=-1)))

    first, last = spread(out[0]), spread(out[-1])
    holds = last <= max(1e-6 * first, 1e-9)
    return {"initial_distance": first, "final_distance": last,
            "ratio": last / first if first else 0.0, "holds": bool(holds)}


def layer_params(net, index: int) -> dict[str, np.ndarray]:
    """Layer ``index``'s parameters under their short names (``W.data``, ``Win``, ``b``)."""
    prefix = f"layers.{index}."
    return {k[len(prefix):]: v for k, v in net.params.items() if k.startswith(prefix)}


def recurrent_matrix(net, index: int = 0):
    """The recurrent weights of esn layer ``index``: a dense (N, N) array or a ``CSR``."""
    return net.layers[index].recurrent_matrix(layer_params(net, index))


def analyze(net, u=None, y=None, washout: int = 0, ridge: float = 1e-6) -> dict:
    """Spectral radii of every layer with a leak rate, memory capacity, echo-state check, NRMSE.

    With ``u`` (T, k) the echo-state check runs on it (else on seeded noise); with ``y`` too,
    the ridge head is fitted on (u, y) and its NRMSE reported.
    """
    layers = []
    for i, layer in enumerate(net.layers):
        if not layer.reservoir:
            continue
        w = recurrent_matrix(net, i)
        layers.append({"layer": i, "units": layer.units,
                       "spectral_radius": spectral_radius(w),
                       "effective_spectral_radius": spectral_radius(w, layer.leak_rate())})
    probe = u if u is not None else np.random.default_rng(0).uniform(
        -1, 1, (500, net.input_size))
    report = {"layers": layers, "memory_capacity": memory_capacity(net),
              "echo_state": echo_state_check(net, np.asarray(probe, dtype=net.dtype))}
    if y is not None:
        fit(net, u, y, washout=washout, ridge=ridge)
        prediction = net.run(u).y
        target = np.asarray(y, np.float64).reshape(prediction.shape)
        report["nrmse"] = nrmse(target[washout:], prediction[washout:])
    return report
