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

from .cells.maps import FD_STEP, LayerMap
from .errors import ConfigError, InputError, ShapeError
from .progress import Stages, reporter
from .threads import with_one_blas_thread

# A fixed-point search stops once q is this small: the residual is at float64 rounding level.
Q_FLOOR = 1e-28
# A fixed point is stable when its Jacobian's eigenvalues lie this far inside the unit circle.
STABILITY_MARGIN = 1e-6
# Drawn starts of the fixed-point search: noise-driven steps per start, and the noise-free
# steps half of them settle for.
NOISY_STEPS = 20
SETTLE_STEPS = 25
# The Lyapunov spectrum's tangent vectors go through at most QR_EVERY_MAX steps between two
# re-orthonormalisations, and fewer once their log stretches spread over more than QR_SPREAD
# (a condition number of e^QR_SPREAD leaves ~9 of float64's 16 digits to the smallest
# stretch); whole Jacobians are formed for up to JACOBIAN_CHUNK_BYTES of steps at once.
QR_EVERY_MAX = 16
QR_SPREAD = 16.0
JACOBIAN_CHUNK_BYTES = 1 << 20
# Up to this many exponents, maps of the leaky form run compiled (kernels/cpu/tangent.py:
# Gram-Schmidt every step costs n k^2, LAPACK's QR does better above), KERNEL_STEPS a call.
KERNEL_EXPONENTS = 16
KERNEL_STEPS = 1024
# Levenberg-Marquardt iterations of the fixed-point search (its default ``max_iter``), and its
# other defaults: tol, slow_tol, merge and noise of ``find_fixed_points``.
FIXED_POINT_ITERATIONS = 50
FIXED_TOL, SLOW_TOL, MERGE, START_NOISE = 1e-10, 1e-6, 1e-3, 0.1


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
    return fmap, _drives(fmap, inputs, direction)


def _drives(fmap: LayerMap, inputs: np.ndarray, direction: int) -> np.ndarray:
    """The drives (T, m) of the layer's inputs (T, input_size), in the direction's order."""
    return fmap.drive(inputs[::-1] if direction == 1 else inputs)


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
                      h0=None, progress=None) -> np.ndarray:
    """The ``k`` largest Lyapunov exponents (nats per step), sorted descending, by the QR
    (Benettin) method: k tangent vectors are pushed through the Jacobians along the
    trajectory and re-orthonormalised; the logs of the diagonal of R are averaged after
    ``warmup``. The vectors go through up to ``QR_EVERY_MAX`` steps between two
    re-orthonormalisations while the stretches they pick up stay within ``QR_SPREAD``
    (their condition number below e^QR_SPREAD), every step otherwise: the exponents are
    those of a QR every step, up to rounding.

    x : one input sequence (T, k_in) driving the network, or None for zero input over
        ``warmup + steps`` steps (the autonomous dynamics)
    k : how many exponents (default: all, the state size n)
    seed : seeds the initial tangent vectors, and the initial state (uniform in [-1, 1])
        unless ``h0`` (n,) gives it
    Exponents of directions the map collapses exactly (a zero slope) are -inf.
    progress : None, ``progress(steps_done, steps)`` or a tqdm-compatible bar
    """
    if x is None:
        x = np.zeros((warmup + steps, net.input_size))
    fmap, drives = _driven(net, x, layer, direction)
    return _spectrum(fmap, drives, warmup, k, seed, h0, progress)


def _spectrum(fmap: LayerMap, drives: np.ndarray, warmup: int, k: int | None, seed: int,
              h0, progress, states: np.ndarray | None = None) -> np.ndarray:
    """``lyapunov_spectrum`` of the map ``fmap`` under ``drives`` (T, m); ``states``: the
    trajectory from ``h0``, when the caller has it."""
    n = fmap.size
    k = n if k is None else k
    if not 1 <= k <= n:
        raise InputError(f"k = {k} exponents: choose 1 to the state size {n}.")
    T = len(drives)
    if T <= warmup:
        raise InputError(f"the input has {T} steps, not more than the warm-up of "
                         f"{warmup}; give a longer input or a shorter warm-up.")
    rng = np.random.default_rng(seed)
    s0 = rng.uniform(-1.0, 1.0, n)
    if h0 is not None:
        s0 = _initial(fmap, h0)
    basis = np.linalg.qr(rng.standard_normal((n, k)))[0]
    form = fmap.leaky_form() if k <= KERNEL_EXPONENTS else None
    if form is not None:
        total = _leaky_spectrum(fmap, *form, drives, s0, basis, warmup, reporter(progress))
        return np.sort(total / (T - warmup))[::-1]
    if states is None:
        with np.errstate(over="ignore", invalid="ignore"):
            states = fmap.run(s0, drives)
    bad = np.flatnonzero(~np.isfinite(states).all(axis=-1))
    if len(bad):
        raise _diverged(bad[0] + 1)
    previous = np.vstack([s0[None], states[:-1]])
    # Whole Jacobians in chunks when the map forms them directly (dense, small enough),
    # else one Jacobian-vector product per step.
    chunk = max(1, JACOBIAN_CHUNK_BYTES // (8 * n * n)) if fmap.dense_jacobian else 0
    total, every, since = np.zeros(k), 1, 0
    report = reporter(progress)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for first in range(0, T, chunk or T):
            last = min(first + (chunk or T), T)
            jac = fmap.jacobian(previous[first:last], drives[first:last]) if chunk else None
            for t in range(first, last):
                basis = jac[t - first] @ basis if chunk else \
                    fmap.jvp(previous[t], drives[t], basis)
                since += 1
                if since < every and t + 1 != warmup and t + 1 != T:
                    continue
                if k == 1:  # a collapsed vector stays zero: -inf from then on
                    stretch = np.linalg.norm(basis, axis=0)
                    basis = basis / np.where(stretch > 0, stretch, 1.0)
                else:
                    basis, r = np.linalg.qr(basis)
                    stretch = np.abs(np.diagonal(r))
                logs = np.log(stretch)
                if t >= warmup:
                    total += logs
                every = _qr_interval(logs, every, since)
                since = 0
                if report is not None:
                    report(t + 1, T)
    return np.sort(total / (T - warmup))[::-1]


def _leaky_spectrum(fmap: LayerMap, w: np.ndarray, lr: np.ndarray, drives: np.ndarray,
                    s: np.ndarray, basis: np.ndarray, warmup: int, report) -> np.ndarray:
    """The summed log stretches (k,) of a map of the leaky form (``LayerMap.leaky_form``),
    compiled: the trajectory, the tangent vectors and their Gram-Schmidt every step in one
    loop, ``KERNEL_STEPS`` steps a call."""
    from .activations import compile_errors
    from .kernels import build

    act = fmap.layer.activations[0]
    kernel = build("tangent", [act.entry.fn]).leaky_lyapunov_serial
    clip = np.inf if fmap.clip is None else float(fmap.clip)
    s, vectors = s.copy(), np.ascontiguousarray(basis.T)
    total = np.zeros(len(vectors))
    T = len(drives)
    with compile_errors([act]):
        for first in range(0, T, KERNEL_STEPS):
            last = min(first + KERNEL_STEPS, T)
            bad = kernel(np.ascontiguousarray(drives[first:last]), w, lr, s, vectors, first,
                         warmup, clip, FD_STEP, total, act.kernel_args(np.float64))
            if bad:
                raise _diverged(bad)
            if report is not None:
                report(last, T)
    return total


def _diverged(step: int) -> InputError:
    return InputError(f"the state left the float64 range at step {step}: the trajectory "
                      "diverges. Use fewer steps, or a network whose states stay bounded.")


def _qr_interval(logs: np.ndarray, every: int, since: int) -> int:
    """Steps to the next re-orthonormalisation, from the log stretches of the last ``since``
    steps: doubled while their spread stays under half ``QR_SPREAD``, halved above it, one
    once a direction collapses or overflows."""
    if not np.isfinite(logs).all():
        return 1
    spread = float(np.max(logs) - np.min(logs)) * every / since if len(logs) > 1 else \
        abs(float(logs[0])) * every / since
    if spread < QR_SPREAD / 2:
        return min(2 * every, QR_EVERY_MAX)
    return max(every // 2, 1) if spread > QR_SPREAD else every


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
    return _gradient_norms(fmap, drives, s0, fmap.run(s0, drives), ord, horizon, progress)


def _gradient_norms(fmap: LayerMap, drives: np.ndarray, s0: np.ndarray, states: np.ndarray,
                    ord, horizon: int | None, progress) -> np.ndarray:
    """``gradient_norms`` along ``states`` (T, n), the trajectory from ``s0`` under
    ``drives``."""
    T = len(drives)
    previous = np.vstack([s0[None], states[:-1]])
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
    """A fixed or slow point s* of F found by :func:`find_fixed_points`.

    state : (n,) float64; q : 1/2 |F(s*) - s*|^2; residual : max |F(s*) - s*|;
    eigenvalues : (n,) complex, of dF/ds at s*, by decreasing modulus; index : how many of
    them lie outside the unit circle (unstable directions; 0 for an attractor, 1 for a
    saddle with one unstable direction); stable : every |eigenvalue| < 1 (by a margin, see
    ``find_fixed_points``); kind : 'fixed' or 'slow'.
    """

    state: np.ndarray
    q: float
    residual: float
    eigenvalues: np.ndarray
    index: int
    stable: bool
    kind: str


@with_one_blas_thread
def find_fixed_points(net, x_const=None, starts=32, seed: int = 0, tol: float = FIXED_TOL,
                      slow_tol: float = SLOW_TOL, max_iter: int = FIXED_POINT_ITERATIONS,
                      merge: float = MERGE, layer: int = 0, direction: int = 0,
                      trajectory=None, noise: float = START_NOISE,
                      progress=None) -> list[FixedPoint]:
    """Fixed and slow points of a layer under a constant input (Sussillo and Barak 2013).

    q(s) = 1/2 |F(s) - s|^2 is minimised from every start by Levenberg-Marquardt steps with
    the analytic Jacobian, then polished by Newton steps on F(s) - s = 0. A candidate is kept
    only inside the box of states the cell can reach (``LayerMap.bounds``: a gru state
    outside (-1, 1) where a saturated update gate makes q tiny is no fixed point). Points
    with max |F(s) - s| <= ``tol`` (1 + max|s|) are fixed points; the others with
    q <= ``slow_tol`` slow points; the rest are dropped. Points closer than
    ``merge * (1 + max|s|)`` in every coordinate count as one. A point is stable when every
    |eigenvalue| < 1 - ``STABILITY_MARGIN``, the accuracy of the slopes; its index counts
    the eigenvalues with modulus > 1 + ``STABILITY_MARGIN``.

    x_const : the layer's input held constant, (input_size,) of that layer; default zeros.
        Configured esn noise is left out.
    starts : how many starts to draw, or an array (S, n) of start states. Drawn starts are
        states of ``trajectory`` (T, n) (e.g. :func:`trajectory` of the driven network) at
        evenly spaced steps, or by default the ends of independent runs from random states
        (uniform in [-1, 1]) under the constant input with standard-normal noise on every
        drive for ``NOISY_STEPS`` steps. A third of them are then left to settle for
        ``SETTLE_STEPS`` noise-free steps (near the attractors), a third replaced by random
        mixtures (a weight per coordinate) of two of them (between attractors, where
        saddles lie), and all get Gaussian noise of ``noise`` times the states' RMS. The cost
        is linear in ``starts``.
    Whatever the starts, the origin and the state a noise-free run from the origin settles
    to are tried too.
    progress : None, ``progress(iterations_done, max_iter)`` or a tqdm-compatible bar
    Returns the distinct points: fixed points first (by their largest |coordinate|), then
    slow points by q.
    """
    return _fixed_points(layer_map(net, layer, direction), x_const, starts, seed, tol,
                         slow_tol, max_iter, merge, layer, trajectory, noise, progress)


def _fixed_points(fmap: LayerMap, x_const, starts, seed: int, tol: float = FIXED_TOL,
                  slow_tol: float = SLOW_TOL, max_iter: int = FIXED_POINT_ITERATIONS,
                  merge: float = MERGE, layer: int = 0, trajectory=None,
                  noise: float = START_NOISE, progress=None) -> list[FixedPoint]:
    """``find_fixed_points`` of the map ``fmap`` (of layer ``layer``, named in errors)."""
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
        s0 = _draw_starts(fmap, d, int(starts), rng, trajectory, noise)
    else:
        s0 = np.asarray(starts, np.float64)
        if s0.ndim != 2 or s0.shape[1] != fmap.size:
            raise ShapeError(f"starts has shape {s0.shape}; expected (S, {fmap.size}) start "
                             "states, or a number of starts to draw.")
    s0 = np.vstack([s0, _analytic_candidates(fmap, d)])
    points, q = _minimise_q(fmap, d, s0, max_iter, reporter(progress))
    points = _polish(fmap, d, points, q <= slow_tol)
    low, high = fmap.bounds()
    slack = 1e-9 * (1.0 + np.abs(points))
    inside = np.all((points >= low - slack) & (points <= high + slack), axis=-1)
    with np.errstate(over="ignore", invalid="ignore"):
        r = fmap(points, d) - points
        q = np.where(inside, 0.5 * np.sum(r * r, axis=-1), np.inf)
    residual = np.max(np.abs(r), axis=-1)
    found: list[FixedPoint] = []
    for i in np.argsort(q, kind="stable"):
        if not q[i] <= slow_tol:
            break
        s = points[i]
        if any(np.max(np.abs(s - p.state)) <= merge * (1 + np.max(np.abs(p.state)))
               for p in found):
            continue
        eig = np.linalg.eigvals(fmap.jacobian(s, d))
        eig = eig[np.argsort(-np.abs(eig), kind="stable")]
        fixed = residual[i] <= tol * (1 + np.max(np.abs(s)))
        found.append(FixedPoint(s.copy(), float(q[i]), float(residual[i]), eig,
                                int(np.sum(np.abs(eig) > 1 + STABILITY_MARGIN)),
                                bool(np.all(np.abs(eig) < 1 - STABILITY_MARGIN)),
                                "fixed" if fixed else "slow"))
    return sorted(found, key=lambda p: (p.kind != "fixed", 0.0 if p.kind == "fixed" else p.q,
                                        float(np.max(np.abs(p.state)))))


def fixed_point_arrays(points: list[FixedPoint], n: int) -> dict[str, np.ndarray]:
    """The points as arrays, for ``np.savez`` (``rnnsim analyze --fixed-points-out``):
    states (P, n), eigenvalues (P, n) complex, index, stable, q, residual (P,) and kind (P,)
    strings."""
    return {"states": np.array([p.state for p in points]).reshape(len(points), n),
            "eigenvalues": np.array([p.eigenvalues for p in points],
                                    np.complex128).reshape(len(points), n),
            "index": np.array([p.index for p in points], np.int64),
            "stable": np.array([p.stable for p in points], bool),
            "q": np.array([p.q for p in points], np.float64),
            "residual": np.array([p.residual for p in points], np.float64),
            "kind": np.array([p.kind for p in points], dtype="U5")}


def _draw_starts(fmap: LayerMap, d: np.ndarray, count: int, rng, trajectory,
                 noise: float) -> np.ndarray:
    """``count`` start states: see ``find_fixed_points``."""
    if trajectory is None:
        s = rng.uniform(-1.0, 1.0, (count, fmap.size))
        for _ in range(NOISY_STEPS):
            s = fmap(s, d + rng.standard_normal((count, d.size)))
        states = s
    else:
        states = np.asarray(trajectory, np.float64)
        if states.ndim != 2 or states.shape[1] != fmap.size or not len(states):
            raise ShapeError(f"trajectory has shape {states.shape}; expected (T, {fmap.size}),"
                             " states of the layer.")
        s = states[np.linspace(0, len(states) - 1, count).round().astype(int)].copy()
    settle = np.arange(count) % 3 == 1
    for _ in range(SETTLE_STEPS):
        s[settle] = fmap(s[settle], d)
    mixed = np.flatnonzero(np.arange(count) % 3 == 2)
    weight = rng.uniform(0.0, 1.0, (len(mixed), fmap.size))
    s[mixed] = weight * s[mixed] + (1 - weight) * s[rng.permutation(count)[:len(mixed)]]
    scale = noise * np.sqrt(np.mean(states * states))
    return s + scale * rng.standard_normal(s.shape)


def _analytic_candidates(fmap: LayerMap, d: np.ndarray) -> np.ndarray:
    """The origin, and where a noise-free run from it settles (the state at rest)."""
    rest = np.zeros(fmap.size)
    for _ in range(10 * SETTLE_STEPS):
        rest = fmap(rest, d)
    return np.vstack([np.zeros(fmap.size), rest])


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


def _polish(fmap: LayerMap, d: np.ndarray, s: np.ndarray, chosen: np.ndarray,
            steps: int = 20):
    """Newton steps on r(s) = F(s) - s for the ``chosen`` states: a step is taken while it
    lowers max|r|. Returns the states, polished where chosen."""
    s = s.copy()
    eye = np.eye(fmap.size)
    with np.errstate(over="ignore", invalid="ignore"):
        r = fmap(s, d) - s
        residual = np.max(np.abs(r), axis=-1)
        active = chosen & np.isfinite(residual)
        for _ in range(steps):
            a = np.flatnonzero(active & (residual > 0))
            if not len(a):
                break
            try:
                step = -np.linalg.solve(fmap.jacobian(s[a], d) - eye, r[a][..., None])[..., 0]
            except np.linalg.LinAlgError:
                break
            trial = s[a] + step
            r_trial = fmap(trial, d) - trial
            res_trial = np.max(np.abs(r_trial), axis=-1)
            better = res_trial < residual[a]
            won = a[better]
            s[won], r[won], residual[won] = trial[better], r_trial[better], res_trial[better]
            active[a[~better]] = False
    return s


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
    spectra = {}
    for (i, d, label), (fmap, drives) in zip(directions(net), _all_driven(net, x)):
        spectra[label] = _spectrum(fmap, drives, warmup, min(exponents, fmap.size), seed, None,
                                   stages.stage(len(x)))
    return spectra


def _all_driven(net, x) -> list[tuple[LayerMap, np.ndarray]]:
    """The map and drives of every layer and direction (in ``directions`` order), the inputs
    of the upper layers from one run of the network."""
    inputs = [np.asarray(_sequence(net, x), np.float64)] + \
        [out.astype(np.float64) for out in layer_outputs(net, x, len(net.layers) - 1)]
    driven = []
    for i, d, _ in directions(net):
        fmap = layer_map(net, i, d)
        driven.append((fmap, _drives(fmap, inputs[i], d)))
    return driven


@with_one_blas_thread
def analyze(net, x, warmup: int = 100, starts: int = 16, exponents: int = 10,
            horizon: int = 100, seed: int = 0, x_const=None, start_states=None,
            input_label: str = "the given input", progress=None) -> list[dict]:
    """The dynamics of every layer (and direction) as plain data, for ``rnnsim analyze``.

    Everything follows one trajectory: the input ``x`` (T, k) from one initial state per
    layer (uniform in [-1, 1], seeded by ``seed``). Along it: the ``exponents`` largest
    Lyapunov exponents after ``warmup`` steps; the spectral norms ||d s_T / d s_t|| for the
    last ``horizon`` steps with their growth per step (a least-squares fit of their logs);
    and the fixed and slow points under the constant input ``x_const`` (default zeros),
    searched from ``starts`` states of the trajectory plus noise (or the (S, n)
    ``start_states`` of layer 0), each with its coordinates, eigenvalues and index.
    ``input_label`` says in the report what ``x`` is. Non-finite numbers become None.
    progress : None, ``progress(done, total)`` or a tqdm-compatible bar; the work counted is
        the Lyapunov steps, the fixed-point iterations and the gradient-norm steps
    """
    rows = []
    rng = np.random.default_rng(seed)
    count = len(directions(net))
    lyapunov, search, back = len(x), FIXED_POINT_ITERATIONS, min(horizon, len(x))
    stages = Stages(reporter(progress), count * (lyapunov + search + back))
    for (i, direction, label), (fmap, drives) in zip(directions(net), _all_driven(net, x)):
        s0 = rng.uniform(-1.0, 1.0, fmap.size)
        with np.errstate(over="ignore", invalid="ignore"):  # a divergence: _spectrum says so
            path = fmap.run(s0, drives)
        spectrum = _spectrum(fmap, drives, warmup, min(exponents, fmap.size), seed, s0,
                             stages.stage(lyapunov), states=path)
        u = None if x_const is None or i else np.broadcast_to(
            np.asarray(x_const, np.float64), (net.input_size,))
        given = start_states if start_states is not None and i == 0 else None
        points = _fixed_points(fmap, u, starts if given is None else given, seed,
                               max_iter=search, layer=i, trajectory=path,
                               progress=stages.stage(search))
        norms = _gradient_norms(fmap, drives, s0, path, 2, horizon, stages.stage(back))
        by_lag = norms[::-1][:min(horizon, len(norms))]
        rows.append({
            "layer": i, "direction": ("forward", "reverse")[direction],
            "cell": net.layers[i].name, "state_size": fmap.size,
            "input": input_label, "steps": len(x),
            "initial_state": f"uniform(-1, 1), seed {seed}",
            "lyapunov": {"steps": len(x) - warmup, "warmup": warmup,
                         "exponents": [_finite(e) for e in spectrum],
                         "largest": _finite(spectrum[0])},
            "fixed_points": {
                "input": "zero" if u is None or not np.any(u) else [float(v) for v in u],
                "starts": starts if given is None else len(given), "points": [
                    {"kind": p.kind, "q": p.q, "residual": p.residual, "stable": p.stable,
                     "index": p.index, "spectral_radius": float(np.abs(p.eigenvalues[0])),
                     "max_abs_state": float(np.max(np.abs(p.state))),
                     "state": p.state.tolist(),
                     "eigenvalues": [[float(e.real), float(e.imag)] for e in p.eigenvalues]}
                    for p in points]},
            "gradient_norms": {"norm": "spectral", "by_lag": [_finite(v) for v in by_lag],
                               "growth_per_step": _growth(by_lag)},
        })
    return rows


def fixed_point_file(rows: list[dict]) -> dict[str, np.ndarray]:
    """The fixed points of :func:`analyze`'s rows as arrays for ``np.savez``: per layer and
    direction, ``layer{i}.{direction}.`` + states (P, n), eigenvalues (P, n) complex, index,
    stable, q, residual (P,) and kind (P,) strings."""
    arrays = {}
    for row in rows:
        prefix, n = f"layer{row['layer']}.{row['direction']}.", row["state_size"]
        points = [FixedPoint(np.array(p["state"]), p["q"], p["residual"],
                             np.array([complex(*e) for e in p["eigenvalues"]]), p["index"],
                             p["stable"], p["kind"]) for p in row["fixed_points"]["points"]]
        arrays.update({prefix + key: value
                       for key, value in fixed_point_arrays(points, n).items()})
    return arrays


def _finite(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def _growth(by_lag: np.ndarray) -> float | None:
    """exp of the slope of log(norm) against the lag, fitted where the norms are positive."""
    lags = np.arange(1, len(by_lag) + 1)
    good = np.isfinite(by_lag) & (by_lag > 0)
    if good.sum() < 2:
        return None
    return _finite(np.exp(np.polyfit(lags[good], np.log(by_lag[good]), 1)[0]))
