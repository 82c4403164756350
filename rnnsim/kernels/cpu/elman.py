"""Elman recurrence a_t = act0(W x_t + b + U a_{t-1}), W x_t + b precomputed for all steps."""
import numpy as np
from numba import prange

KERNELS = ("elman_forward",)


def elman_forward(xp, U, h, out, lengths, reverse, clip, p0):
    """Run the recurrence for every batch row.

    xp : (T, B, p) input projections W x_t + b; U : (p, p); h : (B, p) initial states, overwritten
    with the final ones; out : (T, B, p) receives a_t, zero past a row's length;
    lengths : (B,) int64 steps of each row (<= T); reverse : run each row from its last step down
    to 0; clip : pre-activations are clipped to [-clip, clip] (np.inf: no clipping);
    p0 : act0's parameters.
    """
    T, B, p = xp.shape
    clipping = clip < np.inf
    for b in prange(B):
        hb = h[b]
        L = lengths[b]
        for t in range(L, T):
            out[t, b, :] = 0.0
        for s in range(L):
            t = L - 1 - s if reverse else s
            for i in range(p):
                acc = xp[t, b, i]
                for j in range(p):
                    acc += U[i, j] * hb[j]
                if clipping:
                    acc = min(max(acc, -clip), clip)
                out[t, b, i] = act0(acc, *p0)  # noqa: F821 (bound by codegen)
            for i in range(p):
                hb[i] = out[t, b, i]
