"""Lyapunov exponents of a leaky map s' = (1 - lr) s + lr act0(clip(d + W s)) (an esn layer;
an elman layer with lr = 1): the trajectory and its tangent vectors in one loop, the vectors
re-orthonormalised every step (Benettin's QR method, by Gram-Schmidt done twice).

The slope of act0 is the central difference of ``cells.maps.value_and_slope``, so that the
exponents are those of the NumPy maps (``rnnsim.dynamics``) up to rounding (reassociation
may take (z + e) - (z - e) as 2e: a relative 1e-11 in a slope).
"""
import math

import numpy as np

from rnnsim.kernels.cpu.esn import leaky_unit

KERNELS = ("leaky_lyapunov",)
EQUATIONS = (leaky_unit,)  # the step of the esn kernels, with this module's act0


def leaky_lyapunov(drives, w, lr, s, vectors, start, warmup, clip, fd_step, total, p0):
    """Run steps start..start+T-1 (T = len(drives)) from state ``s`` (n,) and tangent vectors
    ``vectors`` (k, n), orthonormal rows, both updated in place.

    drives : (T, n) d_t; w : (n, n); lr : (n,) leak rates; clip : pre-activations beyond
    [-clip, clip] are clipped, with slope 0 (np.inf: none); fd_step : the relative step of the
    central differences; total : (k,) receives the logs of the stretches of the steps from
    ``warmup`` on (-inf for a collapsed direction); p0 : act0's parameters. Returns 0, or the
    1-based step (counted from 0, not from ``start``) where the state left the float64 range.
    """
    T, n = drives.shape
    k = vectors.shape[0]
    new = np.empty(n)
    moved = np.empty((k, n))
    for t in range(T):
        for i in range(n):
            z = drives[t, i]
            for j in range(n):
                z += w[i, j] * s[j]
            inside = abs(z) <= clip
            if not inside:
                z = clip if z > 0 else -clip
            e = fd_step * max(1.0, abs(z))
            up = z + e
            down = z - e
            slope = 0.0
            if inside:
                slope = (act0(up, *p0) - act0(down, *p0)) / (up - down)  # noqa: F821
            new[i] = leaky_unit(z, s[i], lr[i], 1.0 - lr[i], p0)
            gain = lr[i] * slope
            for c in range(k):
                acc = 0.0
                for j in range(n):
                    acc += w[i, j] * vectors[c, j]
                moved[c, i] = (1.0 - lr[i]) * vectors[c, i] + gain * acc
        finite = True
        for i in range(n):
            s[i] = new[i]
            finite = finite and math.isfinite(new[i])
        if not finite:
            return start + t + 1
        for c in range(k):
            for _ in range(2):
                for prior in range(c):
                    dot = 0.0
                    for i in range(n):
                        dot += vectors[prior, i] * moved[c, i]
                    for i in range(n):
                        moved[c, i] -= dot * vectors[prior, i]
            norm = 0.0
            for i in range(n):
                norm += moved[c, i] * moved[c, i]
            norm = math.sqrt(norm)
            if start + t >= warmup:
                total[c] += math.log(norm) if norm > 0.0 else -math.inf
            scale = 1.0 / norm if norm > 0.0 else 0.0
            for i in range(n):
                vectors[c, i] = moved[c, i] * scale
    return 0
