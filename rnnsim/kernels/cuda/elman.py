"""Elman recurrence on the GPU: a_t = act0(W x_t + b + U a_{t-1}), W x_t + b precomputed."""
from numba import cuda

from rnnsim.kernels.cpu.elman import elman_unit
from rnnsim.kernels.cpu.rows import clipped
from rnnsim.kernels.cuda.common import (block_units, clear_padding, load_inputs, load_state,
                                        recurrent_sums, stage_columns, step_time, store_final)

KERNELS = ("elman_forward",)
EQUATIONS = (clipped, elman_unit)


def elman_forward(xp, Ut, h, out, lengths, steps, reverse, clip, units_per_block, stage, p0):
    """Run the recurrence of every batch row in one launch (layout: the package docstring).

    xp : (T, B, p) input projections; Ut : (1, p, p), Ut[0, j, i] = U[i, j]; h : (B, p) initial
    states, overwritten with the final ones; out : (T, B, p) receives a_t, zero past a row's
    length; lengths : (B,) int64 steps of each row (<= T); steps : max(lengths); reverse : run
    each row from its last step down to 0; clip : pre-activations clipped to [-clip, clip]
    (inf: none); units_per_block : units each block owns; stage : the block's columns of Ut
    in shared memory. Shared memory: (ROWS*p + stage*p*units_per_block) values.
    p0 : act0's parameters.
    """
    T, B, p = xp.shape
    real = xp.dtype.type
    u0, nu = block_units(units_per_block, p)
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:ROWS * p]  # noqa: F821
    Us = shared[ROWS * p:]  # noqa: F821
    acc = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    if stage:
        stage_columns(Ut, Us, u0, nu)
    clear_padding(out, lengths, b0, ROWS, u0, nu)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            load_inputs(xp, lengths, reverse, s, b0, ROWS, i, p, 1, acc)  # noqa: F821
            recurrent_sums(Ut, Us, stage, hs, i, l, nu, ROWS, 0, 1, acc)  # noqa: F821
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    out[step_time(s, lengths[b], reverse), b, i] = elman_unit(acc[r], clip, real,
                                                                              p0)
        step_barrier()  # noqa: F821
    store_final(h, out, lengths, reverse, b0, ROWS, u0, nu)  # noqa: F821
