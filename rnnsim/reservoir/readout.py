"""Readouts of reservoir states: the ridge regression ``Network.fit`` trains, scoring by
NRMSE, and the targets fed back under teacher forcing."""
from __future__ import annotations

import time

import numpy as np

from ..errors import ConfigError, InputError, ShapeError
from ..threads import with_one_blas_thread


@with_one_blas_thread
def ridge_regression(states: np.ndarray, targets: np.ndarray, ridge: float,
                     chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Readout weights minimising ||S W + b - Y||^2 + ridge ||W||^2, the bias unregularised.

    states : (n, N); targets : (n, m). Accumulates S^T S, S^T Y and the column sums in float64
    over chunks of rows (no copy of ``states``), centres them, and solves the N x N system,
    with BLAS on one thread: the same bits whatever the caller's BLAS threads (a sweep's
    process pool and a Dask worker differ there). Returns ``W`` (N, m) and ``b`` (m,) in float64.
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


def time_major(net, a: np.ndarray, unbatched: bool) -> np.ndarray:
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
    _check_fit_options(washout, ridge)
    target = _checked_target(net, y, tuple(np.shape(u)[:-1]), "target y", check_finite)
    teacher = target if has_feedback(net) else None
    result = net.run(u, teacher=teacher, check_finite=check_finite)
    unbatched = result.output.ndim == 2
    states = time_major(net, result.output, unbatched)
    target = time_major(net, target, unbatched)
    return _fit_head(net, states, target, washout, ridge)


def _check_fit_options(washout, ridge) -> None:
    if not (isinstance(washout, int) and washout >= 0) or not (ridge >= 0):
        raise InputError(f"washout must be an integer >= 0 and ridge >= 0; got washout="
                         f"{washout!r}, ridge={ridge!r}.")


def _fit_head(net, states: np.ndarray, target: np.ndarray, washout: int, ridge: float):
    """Fit the head on time-major ``states`` (T, [B,] N) and ``target`` (T, [B,] m) after
    ``washout`` steps; returns ``net``."""
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
    rest (with ``split``), and ``fit_seconds``. One sequence without output feedback is run
    once (the fit and the prediction share its states); with output feedback the scoring run
    is free: the head's own outputs are fed back."""
    start = time.perf_counter()
    if has_feedback(net) or np.ndim(u) != 2 or net.head is None:
        net.fit(u if split is None else u[:split], y if split is None else y[:split],
                washout=washout, ridge=ridge)
        scores = {"fit_seconds": time.perf_counter() - start}
        prediction = net.run(u).y
    else:
        # One sequence without feedback: the states of the training steps are the first
        # steps of the run over all of u, so one run serves the fit and the prediction.
        _check_fit_options(washout, ridge)
        target = _checked_target(net, y, tuple(np.shape(u)[:-1]), "target y", True)
        states = net.run(u).output
        end = len(states) if split is None else split
        _fit_head(net, states[:end], target[:end], washout, ridge)
        scores = {"fit_seconds": time.perf_counter() - start}
        prediction = net.head_forward(net.head_params(), states[:, None], None)[:, 0]
    target = np.asarray(y, np.float64).reshape(prediction.shape)
    end = len(target) if split is None else split
    scores["train_nrmse"] = nrmse(target[washout:end], prediction[washout:end])
    if split is not None:
        scores["test_nrmse"] = nrmse(target[split:], prediction[split:])
    return scores


def nrmse(y, prediction) -> float:
    """Root mean squared error over the standard deviation of ``y``."""
    y, prediction = np.asarray(y, np.float64), np.asarray(prediction, np.float64)
    if y.shape != prediction.shape:
        raise ShapeError(f"nrmse: y has shape {y.shape} but the prediction {prediction.shape}.")
    return float(np.sqrt(np.mean((y - prediction) ** 2)) / (np.std(y) or 1.0))


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
    return np.ascontiguousarray(time_major(net, target, unbatched), dtype=net.dtype)
