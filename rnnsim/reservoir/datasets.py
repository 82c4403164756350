"""Benchmark series of reservoir computing."""
from __future__ import annotations

import functools

import numpy as np


def mackey_glass(timesteps: int, tau: int = 17, beta: float = 0.2, gamma: float = 0.1,
                 n: float = 10.0, dt: float = 1.0, x0: float = 1.2, seed: int = 0,
                 substeps: int = 10) -> np.ndarray:
    """The Mackey-Glass series dx/dt = beta x(t-tau) / (1 + x(t-tau)^n) - gamma x(t).

    Integrated with RK4 at ``dt / substeps`` and sampled every ``dt``; the history before t = 0
    is ``x0`` plus a small seeded perturbation. Returns ``(timesteps, 1)`` float64, a fresh
    copy of a series kept per process (a sweep's points ask for the same one again and again).
    """
    return _integrated(int(timesteps), tau, beta, gamma, n, dt, x0, seed, substeps).copy()


@functools.lru_cache(maxsize=8)
def _integrated(timesteps, tau, beta, gamma, n, dt, x0, seed, substeps) -> np.ndarray:
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
    series = x[lag + substeps:: substeps][:timesteps, None].copy()
    series.flags.writeable = False
    return series
