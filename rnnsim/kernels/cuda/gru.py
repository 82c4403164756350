"""GRU recurrence on the GPU (gates r, z, n), W x_t + b precomputed for all steps.

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(xn + r * (U_n h + bn)); without it the reset
applies before the recurrent matmul, n = act0(xn + U_n (r * h) + bn), which needs every
unit's r * h: a second phase of the step, after a barrier. ``clip`` as in the CPU kernel.
"""
import math

from numba import cuda

from rnnsim.kernels.cuda.common import (clear_padding, load_rows, load_state, stage_columns,
                                        step_time, store_final)

KERNELS = ("gru_forward",)


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
    clipping = clip < math.inf
    u0 = cuda.blockIdx.x * units_per_block
    nu = min(units_per_block, p - u0)
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    width = ROWS * p  # noqa: F821
    reset_width = 0 if reset_after else width
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:width]
    rhs = shared[width:width + reset_width]
    Us = shared[width + reset_width:]
    ar = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    az = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    an = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    if stage:
        stage_columns(Ut, Us, u0, nu)
    clear_padding(out, lengths, b0, ROWS, u0, nu)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        cuda.syncthreads()
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            for r in range(ROWS):  # noqa: F821
                ar[r] = 0
                az[r] = 0
                an[r] = 0
            for j in range(p):
                if stage:
                    wr = Us[j * nu + l]
                    wz = Us[(p + j) * nu + l]
                    wn = Us[(2 * p + j) * nu + l]
                else:
                    wr = Ut[0, j, i]
                    wz = Ut[1, j, i]
                    wn = Ut[2, j, i]
                for r in range(ROWS):  # noqa: F821
                    hv = hs[r * p + j]
                    ar[r] += wr * hv
                    az[r] += wz * hv
                    if reset_after:
                        an[r] += wn * hv
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    t = step_time(s, lengths[b], reverse)
                    gr = xp[t, b, i] + ar[r]
                    gz = xp[t, b, p + i] + az[r]
                    if clipping:
                        gr = min(max(gr, -clip), clip)
                        gz = min(max(gz, -clip), clip)
                    reset = act1(gr, *p1)  # noqa: F821 (bound by codegen)
                    update = act1(gz, *p1)  # noqa: F821
                    if reset_after:
                        n = xp[t, b, 2 * p + i] + reset * (an[r] + bn[i])
                        if clipping:
                            n = min(max(n, -clip), clip)
                        out[t, b, i] = (
                            (1.0 - update) * act0(n, *p0) + update * hs[r * p + i])  # noqa: F821
                    else:
                        scratch[0, b, i] = reset * hs[r * p + i]
                        scratch[1, b, i] = update
        if not reset_after:
            step_barrier()  # noqa: F821 (every unit's r * h is in scratch[0])
            load_rows(scratch[0], lengths, s, b0, ROWS, rhs)  # noqa: F821
            cuda.syncthreads()
            for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
                i = u0 + l
                for r in range(ROWS):  # noqa: F821
                    b = b0 + r
                    an[r] = 0
                    if b < B and s < lengths[b]:
                        an[r] = xp[step_time(s, lengths[b], reverse), b, 2 * p + i] + bn[i]
                for j in range(p):
                    w = Us[(2 * p + j) * nu + l] if stage else Ut[2, j, i]
                    for r in range(ROWS):  # noqa: F821
                        an[r] += w * rhs[r * p + j]
                for r in range(ROWS):  # noqa: F821
                    b = b0 + r
                    if b < B and s < lengths[b]:
                        n = an[r]
                        if clipping:
                            n = min(max(n, -clip), clip)
                        update = scratch[1, b, i]
                        out[step_time(s, lengths[b], reverse), b, i] = (
                            (1.0 - update) * act0(n, *p0) + update * hs[r * p + i])  # noqa: F821
        step_barrier()  # noqa: F821
    store_final(h, out, lengths, reverse, b0, ROWS, u0, nu)  # noqa: F821
