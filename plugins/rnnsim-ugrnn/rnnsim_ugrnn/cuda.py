"""The UGRNN recurrence on the GPU (numba.cuda), a kernel template compiled by rnnsim's codegen.

Laid out as rnnsim's own CUDA kernels: blocks own ``units_per_block`` units of ``ROWS`` batch
rows; each step reads the previous outputs of every unit (``load_state``) and ends at
``step_barrier`` (a block or grid barrier, bound per variant with ``ROWS``).
"""
import math

from numba import cuda

from rnnsim.kernels.cuda.common import (clear_padding, load_state, stage_columns, step_time,
                                        store_final)

KERNELS = ("ugrnn_forward",)


def ugrnn_forward(xp, Ut, h, out, lengths, steps, reverse, clip, units_per_block, stage, p0, p1):
    """xp : (T, B, 2p) input projections; Ut : (2, p, p), Ut[g, j, i] = U[g*p + i, j]; h : (B,
    p) initial states, overwritten with the final ones; out : (T, B, p); lengths, steps,
    reverse, clip as on the CPU; stage : the block's columns of Ut in shared memory."""
    T, B, p = out.shape
    u0 = cuda.blockIdx.x * units_per_block
    nu = min(units_per_block, p - u0)
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    clipping = clip < math.inf
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:ROWS * p]  # noqa: F821
    Us = shared[ROWS * p:]  # noqa: F821
    zc = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    zg = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    if stage:
        stage_columns(Ut, Us, u0, nu)
    clear_padding(out, lengths, b0, ROWS, u0, nu)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        cuda.syncthreads()
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                zc[r] = 0
                zg[r] = 0
                if b < B and s < lengths[b]:
                    t = step_time(s, lengths[b], reverse)
                    zc[r] = xp[t, b, i]
                    zg[r] = xp[t, b, p + i]
            for j in range(p):
                wc = Us[j * nu + l] if stage else Ut[0, j, i]
                wg = Us[(p + j) * nu + l] if stage else Ut[1, j, i]
                for r in range(ROWS):  # noqa: F821
                    zc[r] += wc * hs[r * p + j]
                    zg[r] += wg * hs[r * p + j]
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    a, e = zc[r], zg[r]
                    if clipping:
                        a = min(max(a, -clip), clip)
                        e = min(max(e, -clip), clip)
                    c = act0(a, *p0)  # noqa: F821 (bound by codegen)
                    g = act1(e, *p1)  # noqa: F821
                    out[step_time(s, lengths[b], reverse), b, i] = g * hs[r * p + i] + (1 - g) * c
        step_barrier()  # noqa: F821
    store_final(h, out, lengths, reverse, b0, ROWS, u0, nu)  # noqa: F821
