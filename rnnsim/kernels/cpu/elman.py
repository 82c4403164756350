"""Elman recurrence a_t = act0(W x_t + b + U a_{t-1}), W x_t + b precomputed for all steps."""
from numba import prange

KERNELS = ("elman_forward",)


def elman_forward(xp, U, h0, out, reverse, p0):
    """Run the recurrence for every batch row.

    xp : (T, B, p) input projections W x_t + b; U : (p, p); h0 : (B, p) initial states;
    out : (T, B, p) receives a_t; reverse : run from t = T-1 down to 0; p0 : act0's parameters.
    """
    T, B, p = xp.shape
    for b in prange(B):
        h = h0[b].copy()
        for s in range(T):
            t = T - 1 - s if reverse else s
            for i in range(p):
                acc = xp[t, b, i]
                for j in range(p):
                    acc += U[i, j] * h[j]
                out[t, b, i] = act0(acc, *p0)  # noqa: F821 (bound by codegen)
            for i in range(p):
                h[i] = out[t, b, i]
