"""Dynamics of a layer's recurrence from analytic Jacobians: Lyapunov spectra, fixed and slow
points, and the growth of gradient norms over time.

A layer's update is a map ``s_t = F(s_{t-1}, d_t)`` of its state ``s`` and its drive ``d_t``,
the input projection the kernels compute for all steps at once (``W x_t + b``). The state is
``h`` for elman and gru cells, the reservoir state ``x`` for esn cells and the concatenation
``[h, c]`` (``hidden_size + units`` values) for an LSTM. :func:`layer_map` builds F in float64
NumPy from the network's own weights, together with its Jacobian ``dF/ds``: each cell owns its
map (``Cell.map_class``, in the cell's module; the shared base is ``cells.maps``), so this
module names no cell. Iterating F reproduces ``Network.run``.

Activations are plugins, plain scalar functions, so their derivatives are taken by central
differences (``cells.maps.value_and_slope``, about 6e-6): the error is about 1e-10 relative for
smooth activations and zero for piecewise-linear ones away from their kinks (within the step of
a kink it is the mean of the two slopes). Pre-activations clipped by ``clip`` have slope 0
outside the clip range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cells.maps import LayerMap
from .errors import ConfigError, InputError, ShapeError
from .progress import Stages, reporter
from .threads import with_one_blas_thread

# A fixed-point search stops once q is this small: the residual is at float64 rounding level.
Q_FLOOR = 1e-28
# A fixed point is stable when its Jacobian's eigenvalues lie this far inside the unit circle.
STABILITY_MARGIN = 1e-6
# Drawn starts of the fixed-point search: noise-driven steps, then settling steps per start.
NOISY_STEPS = 20
SETTLE_STEPS = 25
# Levenberg-Marquardt iterations of the fixed-point search (its default ``max_iter``).
FIXED_POINT_ITERATIONS = 50


def layer_map(net, layer: int = 0, direction: int = 0) -> LayerMap:
    """The update map F of ``net.layers[layer]``; ``direction`` 1 is a bidirectional layer's
    reverse direction."""
    if not 0 <= layer < len(net.layers):
        raise InputError(f"layer {layer} does not exist: the network has {len(net.layers)} "
                         f"layer(s), numbered from 0.")
    cell = net.layers[layer]
    if direction not in range(cell.directions):
        raise InputError(f"layer {layer} has {cell.directions} direction(s); direction "
                         f"{direction} does not exist (0 forward, 1 reverse).")
    if cell.map_class is None:
        raise ConfigError(f"network.layers[{layer}].cell: cell '{cell.name}' has no dynamics "
                          "map (its plugin sets no Cell.map_class), so it cannot be analysed.")
    return cell.map_class(cell, net.layer_params(layer), cell.suffixes[direction])


def layer_outputs(net, x, layers: int | None = None) -> list[np.ndarray]:
    """Each layer's outputs (T, D*hidden_size) for one sequence ``x`` (T, k), run by the
    network's own kernels from zero states; only the first ``layers`` layers when given."""
    x = np.ascontiguousarray(_sequence(net, x)[:, None], dtype=net.dtype)
    outputs = []
    for i, cell in enumerate(net.layers[:layers]):
        x = cell.run(net.layer_params(i), x, cell.zero_states(1, net.dtype))[0]
        outputs.append(x[:, 0])
    return outputs


def _sequence(net, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.ndim != 2 or x.shape[1] != net.input_size or not len(x):
        raise ShapeError(f"input x has shape {x.shape} and dtype {x.dtype}; the dynamics follow "
                         f"one sequence: expected real numbers of shape (T, {net.input_size}) "
                         "(timesteps, input_size), T >= 1. Pass x[:, b] for sequence b of a "
                         "(T, B, k) batch.")
    if not np.isfinite(x).all():
        raise InputError("input x holds NaN/inf values; clean it before analysing.")
    return x


def _driven(net, x, layer: int, direction: int) -> tuple[LayerMap, np.ndarray]:
    """The layer's map and its drives (T, m) for the network input ``x`` (T, k), in the order
    the direction runs (reversed in time for direction 1)."""
    fmap = layer_map(net, layer, direction)
    inputs = np.asarray(_sequence(net, x), np.float64) if layer == 0 else \
        layer_outputs(net, x, layer)[-1].astype(np.float64)
    return fmap, fmap.drive(inputs[::-1] if direction == 1 else inputs)


def _initial(fmap: LayerMap, h0) -> np.ndarray:
    if h0 is None:
        return np.zeros(fmap.size)
    s0 = np.asarray(h0, np.float64)
    if s0.shape != (fmap.size,):
        raise ShapeError(f"h0 has shape {s0.shape}; expected ({fmap.size},), the layer's state"
                         " (for an LSTM h and c concatenated).")
    return s0


def trajectory(net, x, layer: int = 0, h0=None, direction: int = 0) -> np.ndarray:
    """The states s_1..s_T (T, n) float64 of layer ``layer`` on one sequence ``x`` (T, k),
    from ``h0`` (n,) (default zeros, as ``Network.run``), computed by iterating F."""
    fmap, drives = _driven(net, x, layer, direction)
    return fmap.run(_initial(fmap, h0), drives)


def jacobians(net, x, layer: int = 0, h0=None, direction: int = 0) -> np.ndarray:
    """dF/ds along the trajectory of ``x`` (T, k): (T, n, n) float64, entry t the Jacobian of
    the step that produces s_{t+1} from s_t (s_0 = ``h0``, default zeros).

    The state of an LSTM layer is [h, c] (n = hidden_size + units), of the others h.
    """
    fmap, drives = _driven(net, x, layer, direction)
    s0 = _initial(fmap, h0)
    states = fmap.run(s0, drives)
    return fmap.jacobian(np.vstack([s0[None], states[:-1]]), drives)


@with_one_blas_thread
def lyapunov_spectrum(net, x=None, steps: int = 1000, warmup: int = 100, layer: int = 0,
                      k: int | None = None, seed: int = 0, direction: int = 0,
                      progress=None) -> np.ndarray:
    """The ``k`` largest Lyapunov exponents (nats per step), sorted descending, by the QR
    (Benettin) method: k tangent vectors are pushed through the Jacobians and
    re-orthonormalised every step; the logs of the diagonal of R are averaged after ``warmup``.

    x : one input sequence (T, k_in) driving the network, or None for zero input over
        ``warmup + steps`` steps (the autonomous dynamics)
    k : how many exponents (default: all, the state size n)
    seed : seeds the initial state (uniform in [-1, 1]) and the initial tangent vectors
    Exponents of directions the map collapses exactly (a zero slope) are -inf.
    progress : None, ``progress(steps_done, steps)`` or a tqdm-compatible bar
    """
    if x is None:
        x = np.zeros((warmup + steps, net.input_size))
    fmap, drives = _driven(net, x, layer, direction)
    n = fmap.size
    k = n if k is None else k
    if not 1 <= k <= n:
        raise InputError(f"k = {k} exponents: choose 1 to the state size {n}.")
    if len(drives) <= warmup:
        raise InputError(f"the input has {len(drives)} steps, not more than the warm-up of "
                         f"{warmup}; give a longer input or a shorter warm-up.")
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1.0, 1.0, n)
    basis = np.linalg.qr(rng.standard_normal((n, k)))[0]
    total = np.zeros(k)
    report = reporter(progress)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for t, d in enumerate(drives):
            basis, r = np.linalg.qr(fmap.jvp(s, d, basis))
            s = fmap(s, d)
            if not np.isfinite(s).all():
                raise InputError(f"the state left the float64 range at step {t + 1}: the "
                                 "trajectory diverges. Use fewer steps, or a network whose "
                                 "states stay bounded.")
            if t >= warmup:
                total += np.log(np.abs(np.diagonal(r)))
            if report is not None:
                report(t + 1, len(drives))
    return np.sort(total / (len(drives) - warmup))[::-1]


def largest_lyapunov(net, x=None, steps: int = 1000, warmup: int = 100, layer: int = 0,
                     seed: int = 0, direction: int = 0) -> float:
    """The largest Lyapunov exponent (nats per step); see :func:`lyapunov_spectrum`."""
    return float(lyapunov_spectrum(net, x, steps, warmup, layer, 1, seed, direction)[0])


@with_one_blas_thread
def gradient_norms(net, x, layer: int = 0, h0=None, direction: int = 0, ord=2,
                   horizon: int | None = None, progress=None) -> np.ndarray:
    """||d s_T / d s_t|| for t = 0..T-1 along the trajectory of ``x`` (T, k): (T,) float64.

    Entry t is the norm (``ord`` as in ``numpy.linalg.norm``: 2, the spectral norm, or
    'fro') of the product of the Jacobians of steps t+1..T: how much a change of the state
    s_t still moves the last state s_T. Decay with T - t means vanishing gradients, growth
    exploding ones. With ``horizon`` only the last ``horizon`` entries are computed (the rest
    are NaN): each entry costs a product of two n x n matrices and, for ord 2, an SVD.
    progress : None, ``progress(entries_done, entries)`` or a tqdm-compatible bar
    """
    fmap, drives = _driven(net, x, layer, direction)
    s0 = _initial(fmap, h0)
    T = len(drives)
    previous = np.vstack([s0[None], fmap.run(s0, drives)[:-1]])
    norms = np.full(T, np.nan)
    product = np.eye(fmap.size)
    report = reporter(progress)
    first = max(T - (horizon or T), 0)
    for t in range(T - 1, first - 1, -1):
        product = product @ fmap.jacobian(previous[t], drives[t])
        norms[t] = np.linalg.norm(product, ord)
        if report is not None:
            report(T - t, T - first)
    return norms


@dataclass(frozen=True)
class FixedPoint:
    """A fixed (q <= tol) or slow point s* of F found by :func:`find_fixed_points`.

    state : (n,) float64; q : 1/2 |F(s*) - s*|^2; eigenvalues : (n,) complex, of dF/ds at s*,
    by decreasing modulus; stable : every |eigenvalue| < 1 (by a margin, see
    ``find_fixed_points``); kind : 'fixed' or 'slow'.
    """

    state: np.ndarray
    q: float
    eigenvalues: np.ndarray
    stable: bool
    kind: str


@with_one_blas_thread
def find_fixed_points(net, x_const=None, starts=32, seed: int = 0, tol: float = 1e-12,
                      slow_tol: float = 1e-6, max_iter: int = FIXED_POINT_ITERATIONS, merge: float = 1e-3,
                      layer: int = 0, direction: int = 0, progress=None) -> list[FixedPoint]:
    """Fixed and slow points of a layer under a constant input (Sussillo and Barak 2013).

    q(s) = 1/2 |F(s) - s|^2 is minimised from every start by Levenberg-Marquardt steps with
    the analytic Jacobian. Points with q <= ``tol`` are fixed points, those with
    q <= ``slow_tol`` slow points; the rest are dropped. Points closer than
    ``merge * (1 + max|s|)`` in every coordinate count as one (near a non-hyperbolic point,
    an eigenvalue on the unit circle, q is flat and the starts stop apart). A point is stable
    when every |eigenvalue| < 1 - ``STABILITY_MARGIN``, the accuracy of the slopes.

    x_const : the layer's input held constant, (input_size,) of that layer; default zeros.
        Configured esn noise is left out.
    starts : how many starts to draw, or an array (S, n) of start states. Drawn start i is
        the state of a run from a random state (uniform in [-1, 1]) driven for
        ``NOISY_STEPS`` steps by the constant input plus standard-normal noise on every drive
        (d_t = W x + b), then left to settle for ``i * SETTLE_STEPS`` noise-free steps: the
        early starts lie where driven trajectories go, the late ones near the attractors.
    progress : None, ``progress(iterations_done, max_iter)`` or a tqdm-compatible bar
    Returns the distinct points: fixed points first (by their largest |coordinate|), then
    slow points by q.
    """
    fmap = layer_map(net, layer, direction)
    size = fmap.layer.input_size
    u = np.zeros(size) if x_const is None else np.asarray(x_const, np.float64)
    if u.shape != (size,):
        raise ShapeError(f"x_const has shape {u.shape}; expected ({size},), the input of "
                         f"layer {layer}.")
    d = fmap.drive(u[None], noise=False)[0]
    rng = np.random.default_rng(seed)
    if np.ndim(starts) == 0:
        if int(starts) < 1:
            raise InputError(f"starts = {starts}: give at least one start.")
        s0 = _draw_starts(fmap, d, int(starts), rng)
    else:
        s0 = np.asarray(starts, np.float64)
        if s0.ndim != 2 or s0.shape[1] != fmap.size:
            raise ShapeError(f"starts has shape {s0.shape}; expected (S, {fmap.size}) start "
                             "states, or a number of starts to draw.")
    points, q = _minimise_q(fmap, d, s0, max_iter, reporter(progress))
    found: list[FixedPoint] = []
    for i in np.argsort(q):
        if not q[i] <= slow_tol:
            break
        s = points[i]
        if any(np.max(np.abs(s - p.state)) <= merge * (1 + np.max(np.abs(p.state)))
               for p in found):
            continue
        eig = np.linalg.eigvals(fmap.jacobian(s, d))
        eig = eig[np.argsort(-np.abs(eig), kind="stable")]
        found.append(FixedPoint(s.copy(), float(q[i]), eig,
                                bool(np.all(np.abs(eig) < 1 - STABILITY_MARGIN)),
                                "fixed" if q[i] <= tol else "slow"))
    return sorted(found, key=lambda p: (p.kind != "fixed", 0.0 if p.kind == "fixed" else p.q,
                                        float(np.max(np.abs(p.state)))))


def _draw_starts(fmap: LayerMap, d: np.ndarray, count: int, rng) -> np.ndarray:
    """``count`` start states: see ``find_fixed_points``."""
    s = rng.uniform(-1.0, 1.0, (count, fmap.size))
    for _ in range(NOISY_STEPS):
        s = fmap(s, d + rng.standard_normal((count, d.size)))
    starts = s.copy()
    for i in range(1, count):
        for _ in range(SETTLE_STEPS):
            s = fmap(s, d)
        starts[i] = s[i]
    return starts


def _minimise_q(fmap: LayerMap, d: np.ndarray, s: np.ndarray, max_iter: int, report=None):
    """Levenberg-Marquardt on q(s) = 1/2 |r|^2, r = F(s, d) - s, for all starts at once.

    Each start keeps its own damping mu: a step that lowers q is taken and mu shrinks,
    otherwise mu grows. A start stops at q <= Q_FLOOR, when a step lowers q by less than a
    relative 1e-10 (a minimum of q with q > 0: a slow point), when its steps no longer move
    it, or when mu exceeds 1e12. Returns the final states (S, n) and their q (S,);
    ``report(iterations_done, max_iter)`` follows the iterations.
    """
    s = s.copy()
    r = fmap(s, d) - s
    q = 0.5 * np.sum(r * r, axis=-1)
    mu = np.full(len(s), 1e-3)
    active = np.isfinite(q)
    eye = np.eye(fmap.size)
    for iteration in range(max_iter):
        if report is not None:
            report(iteration, max_iter)
        active &= q > Q_FLOOR
        if not active.any():
            break
        a = np.flatnonzero(active)
        jr = fmap.jacobian(s[a], d) - eye
        jt = np.swapaxes(jr, -1, -2)
        step = -np.linalg.solve(jt @ jr + mu[a, None, None] * eye, jt @ r[a][..., None])[..., 0]
        trial = s[a] + step
        r_trial = fmap(trial, d) - trial
        q_trial = 0.5 * np.sum(r_trial * r_trial, axis=-1)
        better = q_trial < q[a]
        settled = better & (q_trial > (1 - 1e-10) * q[a])
        won = a[better]
        s[won], r[won], q[won] = trial[better], r_trial[better], q_trial[better]
        mu[won] = np.maximum(0.3 * mu[won], 1e-12)
        mu[a[~better]] *= 10.0
        still = np.max(np.abs(step), axis=-1) <= 1e-14 * (1 + np.max(np.abs(s[a]), axis=-1))
        active[a[settled | still | (mu[a] > 1e12)]] = False
    if report is not None:
        report(max_iter, max_iter)
    return s, q


def directions(net):
    """(layer index, direction, label) of every layer and direction: 'layer 1 (gru) reverse'."""
    return [(i, d, f"layer {i} ({cell.name})" + (" reverse" if d else ""))
            for i, cell in enumerate(net.layers) for d in range(cell.directions)]


@with_one_blas_thread
def lyapunov_spectra(net, x, warmup: int = 100, exponents: int = 10,
                     seed: int = 0, progress=None) -> dict[str, np.ndarray]:
    """The ``exponents`` largest Lyapunov exponents (at most the state size) of every layer
    and direction along the trajectory of ``x`` (T, k), by label (``directions``).

    progress : None, ``progress(steps_done, T * directions)`` or a tqdm-compatible bar
    """
    stages = Stages(reporter(progress), len(x) * len(directions(net)))
    return {label: lyapunov_spectrum(net, x, warmup=warmup, layer=i,
                                     k=min(exponents, layer_map(net, i, d).size), seed=seed,
                                     direction=d, progress=stages.stage(len(x)))
            for i, d, label in directions(net)}


@with_one_blas_thread
def analyze(net, x, warmup: int = 100, starts: int = 16, exponents: int = 10,
            horizon: int = 100, seed: int = 0, progress=None) -> list[dict]:
    """The dynamics of every layer (and direction) as plain data, for ``rnnsim analyze``.

    Along the trajectory of ``x`` (T, k): the ``exponents`` largest Lyapunov exponents after
    ``warmup`` steps and the spectral norms ||d s_T / d s_t|| for the last ``horizon`` steps
    with their growth per step (a least-squares fit of their logs); under zero input: the
    fixed and slow points found from ``starts`` starts. Non-finite numbers become None.
    progress : None, ``progress(done, total)`` or a tqdm-compatible bar; the work counted is
        the Lyapunov steps, the fixed-point iterations and the gradient-norm steps
    """
    rows = []
    count = len(directions(net))
    lyapunov, search, back = len(x), FIXED_POINT_ITERATIONS, min(horizon, len(x))
    stages = Stages(reporter(progress), count * (lyapunov + search + back))
    spectra = lyapunov_spectra(net, x, warmup=warmup, exponents=exponents, seed=seed,
                               progress=stages.stage(count * lyapunov))
    for i, direction, label in directions(net):
        spectrum = spectra[label]
        points = find_fixed_points(net, starts=starts, seed=seed, layer=i, direction=direction,
                                   max_iter=search, progress=stages.stage(search))
        norms = gradient_norms(net, x, layer=i, direction=direction, horizon=horizon,
                               progress=stages.stage(back))
        by_lag = norms[::-1][:min(horizon, len(norms))]
        rows.append({
            "layer": i, "direction": ("forward", "reverse")[direction],
            "cell": net.layers[i].name, "state_size": layer_map(net, i, direction).size,
            "lyapunov": {"steps": len(x) - warmup, "warmup": warmup,
                         "exponents": [_finite(e) for e in spectrum],
                         "largest": _finite(spectrum[0])},
            "fixed_points": {"input": "zero", "starts": starts, "points": [
                {"kind": p.kind, "q": p.q, "stable": p.stable,
                 "spectral_radius": float(np.abs(p.eigenvalues[0])),
                 "max_abs_state": float(np.max(np.abs(p.state)))} for p in points]},
            "gradient_norms": {"norm": "spectral", "by_lag": [_finite(v) for v in by_lag],
                               "growth_per_step": _growth(by_lag)},
        })
    return rows


def _finite(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def _growth(by_lag: np.ndarray) -> float | None:
    """exp of the slope of log(norm) against the lag, fitted where the norms are positive."""
    lags = np.arange(1, len(by_lag) + 1)
    good = np.isfinite(by_lag) & (by_lag > 0)
    if good.sum() < 2:
        return None
    return _finite(np.exp(np.polyfit(lags[good], np.log(by_lag[good]), 1)[0]))
