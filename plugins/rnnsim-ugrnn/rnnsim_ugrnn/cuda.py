"""The UGRNN recurrence on the GPU (numba.cuda), a kernel template compiled by rnnsim's codegen.

Laid out as rnnsim's own CUDA kernels, from the device functions of
``rnnsim.kernels.cuda.common``: blocks own ``units_per_block`` units of ``ROWS`` batch rows
(``start_block``); each step reads the previous outputs of every unit (``load_state``), sums
each unit's pre-activations (``unit_sums``), applies the CPU template's equations
(``ugrnn_unit``) and ends at ``step_barrier`` (a block or grid barrier, bound per variant with
``ROWS``).
"""
from numba import cuda

from rnnsim.kernels.cpu.rows import clipped
from rnnsim.kernels.cuda.common import (load_state, start_block, step_time, store_final,
                                        unit_sums)
from rnnsim_ugrnn.cpu import ugrnn_unit

KERNELS = ("ugrnn_forward",)
EQUATIONS = (clipped, ugrnn_unit)


def ugrnn_forward(xp, Ut, h, out, lengths, steps, reverse, clip, units_per_block, stage, p0, p1):
    """xp : (T, B, 2p) input projections; Ut : (2, p, p), Ut[g, j, i] = U[g*p + i, j]; h : (B,
    p) initial states, overwritten with the final ones; out : (T, B, p); lengths, steps,
    reverse, clip as on the CPU; stage : the block's columns of Ut in shared memory."""
    T, B, p = out.shape
    real = xp.dtype.type
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:ROWS * p]  # noqa: F821 (ROWS and step_barrier are bound per variant)
    Us = shared[ROWS * p:]  # noqa: F821
    z = cuda.local.array(2 * ROWS, xp.dtype)  # noqa: F821 (gate g of row r at g*ROWS + r)
    u0, nu, b0 = start_block(Ut, Us, stage, out, lengths, units_per_block, ROWS)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            unit_sums(xp, Ut, Us, stage, hs, lengths, reverse, s, b0,
                      ROWS, i, l, nu, 2, z)  # noqa: F821
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    out[step_time(s, lengths[b], reverse), b, i] = ugrnn_unit(
                        z[r], z[ROWS + r], hs[r * p + i], clip, real, p0, p1)  # noqa: F821
        step_barrier()  # noqa: F821
    store_final(h, out, lengths, reverse, b0, ROWS, u0, nu)  # noqa: F821
