"""GRU recurrence on the GPU (gates r, z, n), W x_t + b precomputed for all steps.

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(xn + r * (U_n h + bn)); without it the reset
applies before the recurrent matmul, n = act0(xn + U_n (r * h) + bn), which needs every
unit's r * h: a second phase of the step, after a barrier. ``clip`` as in the CPU kernel.
"""
from numba import cuda

from rnnsim.kernels.cpu.gru import gru_gates, gru_state
from rnnsim.kernels.cpu.rows import clipped
from rnnsim.kernels.cuda.common import (block_units, clear_padding, load_inputs, load_rows,
                                        load_state, recurrent_sums, stage_columns, step_time,
                                        store_final)

KERNELS = ("gru_forward",)
EQUATIONS = (clipped, gru_gates, gru_state)


def gru_forward(xp, Ut, bn, h, out, scratch, lengths, steps, reset_after, reverse, clip,
                units_per_block, stage, p0, p1):
    """Run the recurrence of every batch row in one launch (layout: the package docstring).

    xp : (T, B, 3p) input projections; Ut : (3, p, p), Ut[g, j, i] = U[g*p + i, j]; bn : (p,)
    recurrent bias of n; h : (B, p) initial states, overwritten with the final ones;
    out : (T, B, p) receives h_t, zero past a row's length; scratch : (2, B, p) holds r * h and
    z between the two phases of a step without ``reset_after``; lengths : (B,) int64;
    steps : max(lengths); reset_after, reverse, clip : as in the CPU kernel;
    units_per_block : units each block owns; stage : the block's columns of Ut in shared
    memory. Shared memory: (ROWS*p (2*ROWS*p without reset_after) + stage*3*p*units_per_block)
    values.
    p0, p1 : the activations' parameters.
    """
    T, B, G = xp.shape
    p = G // 3
    real = xp.dtype.type
    u0, nu = block_units(units_per_block, p)
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    width = ROWS * p  # noqa: F821
    reset_width = 0 if reset_after else width
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:width]
    rhs = shared[width:width + reset_width]
    Us = shared[width + reset_width:]
    z = cuda.local.array(3 * ROWS, xp.dtype)  # noqa: F821 (gate g of row r at g*ROWS + r)
    if stage:
        stage_columns(Ut, Us, u0, nu)
    clear_padding(out, lengths, b0, ROWS, u0, nu)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            load_inputs(xp, lengths, reverse, s, b0, ROWS, i, p, 3, z)  # noqa: F821
            for r in range(ROWS):  # noqa: F821
                z[2 * ROWS + r] = bn[i]  # noqa: F821 (n's recurrent part: U_n h + bn)
            recurrent_sums(Ut, Us, stage, hs, i, l, nu, ROWS, 0,  # noqa: F821
                           3 if reset_after else 2, z)
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    t = step_time(s, lengths[b], reverse)
                    reset, update = gru_gates(z[r], z[ROWS + r], clip, real, p1)  # noqa: F821
                    if reset_after:
                        n = xp[t, b, 2 * p + i] + reset * z[2 * ROWS + r]  # noqa: F821
                        out[t, b, i] = gru_state(n, update, hs[r * p + i], clip, real, p0)
                    else:
                        scratch[0, b, i] = reset * hs[r * p + i]
                        scratch[1, b, i] = update
        if not reset_after:
            step_barrier()  # noqa: F821 (every unit's r * h is in scratch[0])
            load_rows(scratch[0], lengths, s, b0, ROWS, rhs)  # noqa: F821
            for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
                i = u0 + l
                xn = xp[:, :, 2 * p:]
                load_inputs(xn, lengths, reverse, s, b0, ROWS, i, p, 1, z)  # noqa: F821
                for r in range(ROWS):  # noqa: F821
                    z[r] += bn[i]
                recurrent_sums(Ut, Us, stage, rhs, i, l, nu, ROWS, 2, 1, z)  # noqa: F821
                for r in range(ROWS):  # noqa: F821
                    b = b0 + r
                    if b < B and s < lengths[b]:
                        out[step_time(s, lengths[b], reverse), b, i] = gru_state(
                            z[r], scratch[1, b, i], hs[r * p + i], clip, real, p0)
        step_barrier()  # noqa: F821
    store_final(h, out, lengths, reverse, b0, ROWS, u0, nu)  # noqa: F821
