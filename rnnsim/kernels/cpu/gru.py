"""GRU recurrence (gates r, z, n), W x_t + b precomputed for all steps.

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(xn + r * (U_n h + bn)); without it the reset
is applied before the recurrent matmul: n = act0(xn + U_n (r * h) + bn). With ``clip`` the
pre-activations of r, z and n are clipped to [-clip, clip] (ONNX).
"""
import numpy as np
from numba import prange

KERNELS = ("gru_forward",)


def gru_forward(xp, U, bn, h, out, lengths, reset_after, reverse, clip, p0, p1):
    """Run the recurrence for every batch row.

    xp : (T, B, 3p) input projections; U : (3p, p); bn : (p,) recurrent bias of n;
    h : (B, p) initial states, overwritten with the final ones; out : (T, B, p) receives h_t,
    zero past a row's length; lengths : (B,) int64 steps of each row (<= T); reset_after : where
    the reset gate applies (see the module docstring); reverse : run each row from its last step
    down to 0; clip : np.inf for none; p0, p1 : the activations' parameters.
    """
    T, B, G = xp.shape
    p = G // 3
    rows = G if reset_after else 2 * p
    clipping = clip < np.inf
    for b in prange(B):
        hb = h[b]
        L = lengths[b]
        for t in range(L, T):
            out[t, b, :] = 0.0
        a = xp[0, b].copy()
        rh = hb.copy()
        for s in range(L):
            t = L - 1 - s if reverse else s
            for i in range(rows):
                acc = U[i, 0] * hb[0]
                for j in range(1, p):
                    acc += U[i, j] * hb[j]
                a[i] = acc
            for i in range(2 * p):
                acc = xp[t, b, i] + a[i]
                if clipping:
                    acc = min(max(acc, -clip), clip)
                a[i] = act1(acc, *p1)  # noqa: F821 (bound by codegen)
            if reset_after:
                for i in range(p):
                    a[2 * p + i] = xp[t, b, 2 * p + i] + a[i] * (a[2 * p + i] + bn[i])
            else:
                for i in range(p):
                    rh[i] = a[i] * hb[i]
                for i in range(p):
                    acc = xp[t, b, 2 * p + i] + bn[i]
                    for j in range(p):
                        acc += U[2 * p + i, j] * rh[j]
                    a[2 * p + i] = acc
            for i in range(p):
                n = a[2 * p + i]
                if clipping:
                    n = min(max(n, -clip), clip)
                z = a[p + i]
                hb[i] = (1.0 - z) * act0(n, *p0) + z * hb[i]  # noqa: F821
                out[t, b, i] = hb[i]
