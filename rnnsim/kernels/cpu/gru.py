"""GRU recurrence (gates r, z, n), W x_t + b precomputed for all steps.

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(xn + r * (U_n h + bn)); without it the reset
is applied before the recurrent matmul: n = act0(xn + U_n (r * h) + bn).
"""
from numba import prange

KERNELS = ("gru_forward",)


def gru_forward(xp, U, bn, h0, out, reset_after, reverse, p0, p1):
    """Run the recurrence for every batch row.

    xp : (T, B, 3p) input projections; U : (3p, p); bn : (p,) recurrent bias of n;
    h0 : (B, p) initial states; out : (T, B, p) receives h_t; reset_after : where the reset
    gate applies (see the module docstring); reverse : run from t = T-1 down to 0;
    p0, p1 : the activations' parameters.
    """
    T, B, G = xp.shape
    p = G // 3
    rows = G if reset_after else 2 * p
    for b in prange(B):
        h = h0[b].copy()
        a = xp[0, b].copy()
        rh = h.copy()
        for s in range(T):
            t = T - 1 - s if reverse else s
            for i in range(rows):
                acc = U[i, 0] * h[0]
                for j in range(1, p):
                    acc += U[i, j] * h[j]
                a[i] = acc
            if reset_after:
                for i in range(p):
                    r = act1(xp[t, b, i] + a[i], *p1)  # noqa: F821 (bound by codegen)
                    a[2 * p + i] = xp[t, b, 2 * p + i] + r * (a[2 * p + i] + bn[i])
            else:
                for i in range(p):
                    rh[i] = act1(xp[t, b, i] + a[i], *p1) * h[i]  # noqa: F821
                for i in range(p):
                    acc = xp[t, b, 2 * p + i] + bn[i]
                    for j in range(p):
                        acc += U[2 * p + i, j] * rh[j]
                    a[2 * p + i] = acc
            for i in range(p):
                z = act1(xp[t, b, p + i] + a[p + i], *p1)  # noqa: F821
                h[i] = (1.0 - z) * act0(a[2 * p + i], *p0) + z * h[i]  # noqa: F821
                out[t, b, i] = h[i]
