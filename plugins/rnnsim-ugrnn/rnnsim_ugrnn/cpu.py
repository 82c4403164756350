"""The UGRNN recurrence on the CPU, a kernel template compiled by rnnsim's codegen.

``act0`` (the candidate's activation) and ``act1`` (the gate's) are bound by codegen to the
configured activations. ``ugrnn_unit``, listed in ``EQUATIONS``, is the cell's equations: codegen
inlines it here and compiles it as a device function for the CUDA template (``cuda.py``).
"""
import numpy as np

from rnnsim.kernels.cpu.rows import clipped

KERNELS = ("ugrnn_forward",)


def ugrnn_unit(zc, zg, h, clip, real, p0, p1):
    """One unit's h_t = g h_{t-1} + (1 - g) c, c = act0(zc), g = act1(zg), from the
    pre-activations zc, zg and h_{t-1} = ``h`` (``real``: the kernel's float type)."""
    c = real(act0(clipped(zc, clip), *p0))  # noqa: F821 (bound by codegen)
    g = real(act1(clipped(zg, clip), *p1))  # noqa: F821
    return g * h + (real(1.0) - g) * c


EQUATIONS = (ugrnn_unit,)


def ugrnn_forward(xp, U, h, out, lengths, reverse, clip, p0, p1):
    """Run every batch row of the recurrence.

    xp : (T, B, 2p) input projections [W_c; W_g] x_t + b; U : (2p, p) [U_c; U_g]; h : (B, p)
    initial states, overwritten with the final ones; out : (T, B, p) receives h_t, zero past a
    row's length; lengths : (B,) int64 steps of each row; reverse : run each row from its last
    step down to 0; clip : pre-activations clipped to [-clip, clip] (inf: none); p0, p1 : the
    activations' parameters.
    """
    T, B, p = out.shape
    real = xp.dtype.type
    state = np.empty(p, xp.dtype)
    z = np.empty(2 * p, xp.dtype)
    for b in range(B):
        n = lengths[b]
        state[:] = h[b]
        for s in range(n):
            t = n - 1 - s if reverse else s
            for i in range(2 * p):
                acc = xp[t, b, i]
                for j in range(p):
                    acc += U[i, j] * state[j]
                z[i] = acc
            for i in range(p):
                out[t, b, i] = ugrnn_unit(z[i], z[p + i], state[i], clip, real, p0, p1)
            state[:] = out[t, b]
        out[n:, b] = 0
        h[b] = state
