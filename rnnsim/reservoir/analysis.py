"""Analyses of a reservoir: spectral radii, memory capacity, the echo-state property."""
from __future__ import annotations

import numpy as np

from ..errors import InputError, ShapeError
from ..sparse import spectral_radius
from .readout import fit, nrmse, ridge_regression, time_major


def memory_curve(net, max_delay: int | None = None, timesteps: int = 2000,
                 washout: int = 200, ridge: float = 1e-8, seed: int = 0,
                 test_fraction: float = 0.5) -> dict:
    """Jaeger's forgetting curve: for each delay d, corr(u[t-d], its ridge estimate)^2.

    The network is driven by i.i.d. U(-1, 1) input (seeded) on every feature; after
    ``washout`` steps, the readouts (one per delay 1..max_delay, default min(2N, 200), on the
    top layer's states, feature 0 as target) are fitted on the first ``1 - test_fraction`` of
    the ``timesteps`` steps and scored on the rest (held out; ``test_fraction=0`` scores
    in-sample, which overstates the capacity by about N / steps per delay).
    Returns {"delays": (D,) int, "r2": (D,) float, "capacity": sum of r2, "test_fraction",
    "train_steps", "test_steps"}.
    """
    if not 0 <= test_fraction < 1:
        raise InputError(f"test_fraction must be in [0, 1); got {test_fraction}.")
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=(timesteps + washout, net.input_size))
    states = net.run(u.astype(net.dtype)).output
    width = states.shape[-1]
    max_delay = max_delay or min(2 * width, 200)
    if washout < max_delay:
        raise InputError(f"max_delay {max_delay} needs a washout of at least {max_delay} steps "
                         f"(u[t - d] must exist); got washout {washout}.")
    delays = np.arange(1, max_delay + 1)
    rows = np.arange(washout, timesteps + washout)
    train = rows[:timesteps - int(round(test_fraction * timesteps))]
    test = rows[len(train):] if test_fraction else rows
    if len(train) < 2 or len(test) < 2:
        raise InputError(f"{timesteps} steps leave {len(train)} to fit and {len(test)} to score "
                         "the memory readouts; use more timesteps.")
    w, b = ridge_regression(states[train], u[train[:, None] - delays[None, :], 0], ridge)
    targets = u[test[:, None] - delays[None, :], 0]
    estimate = states[test].astype(np.float64) @ w + b
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.array([np.corrcoef(targets[:, d], estimate[:, d])[0, 1] ** 2
                       for d in range(max_delay)])
    r2 = np.nan_to_num(r2)
    return {"delays": delays, "r2": r2, "capacity": float(r2.sum()),
            "test_fraction": test_fraction, "train_steps": len(train),
            "test_steps": len(test)}


def memory_capacity(net, max_delay: int | None = None, timesteps: int = 2000,
                    washout: int = 200, ridge: float = 1e-8, seed: int = 0,
                    test_fraction: float = 0.5) -> float:
    """Jaeger's memory capacity, the sum of :func:`memory_curve` (held out by default)."""
    return memory_curve(net, max_delay, timesteps, washout, ridge, seed,
                        test_fraction)["capacity"]


def memory_options(net) -> dict:
    """The config's ``run.memory_capacity`` options as keyword arguments of memory_curve."""
    return net.config.run.memory_capacity.model_dump()


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
    out = time_major(net, net.run(x, h0=h0).output, False).astype(np.float64)

    def spread(states):
        return float(np.max(np.linalg.norm(states - states[:1], axis=-1)))

    first, last = spread(out[0]), spread(out[-1])
    holds = last <= max(1e-6 * first, 1e-9)
    return {"initial_distance": first, "final_distance": last,
            "ratio": last / first if first else 0.0, "holds": bool(holds), "steps": len(u)}


def recurrent_matrix(net, index: int = 0):
    """The recurrent weights of esn layer ``index``: a dense (N, N) array or a ``CSR``."""
    return net.layers[index].recurrent_matrix(net.layer_params(index))


def analyze(net, u=None, y=None, washout: int = 0, ridge: float = 1e-6,
            probe=None) -> dict:
    """Spectral radii of every layer with a leak rate, memory capacity, echo-state check, NRMSE.

    The echo-state check runs on ``probe`` (T, k), else on ``u`` (T, k), else on 500 steps of
    seeded U(-1, 1) noise; with ``y`` too, the ridge head is fitted on (u, y) and its NRMSE
    reported. The report's ``echo_state.steps`` says how long the probe was.
    """
    layers = []
    for i, layer in enumerate(net.layers):
        if not layer.reservoir:
            continue
        w = recurrent_matrix(net, i)
        radius, leak = spectral_radius(w), layer.leak_rate()
        effective = radius if np.all(leak == 1) else spectral_radius(w, leak)
        layers.append({"layer": i, "units": layer.units, "spectral_radius": radius,
                       "effective_spectral_radius": effective})
    probe = probe if probe is not None else u if u is not None else \
        np.random.default_rng(0).uniform(-1, 1, (500, net.input_size))
    curve = memory_curve(net, **memory_options(net))
    report = {"layers": layers, "memory_capacity": curve["capacity"],
              "memory_curve": {"delays": curve["delays"].tolist(), "r2": curve["r2"].tolist(),
                               "test_fraction": curve["test_fraction"]},
              "echo_state": echo_state_check(net, np.asarray(probe, dtype=net.dtype))}
    if y is not None:
        fit(net, u, y, washout=washout, ridge=ridge)
        prediction = net.run(u).y
        target = np.asarray(y, np.float64).reshape(prediction.shape)
        report["nrmse"] = nrmse(target[washout:], prediction[washout:])
    return report
