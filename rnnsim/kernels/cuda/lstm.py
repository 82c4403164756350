"""LSTM recurrence on the GPU (gates i, f, g, o), W x_t + b precomputed for all steps.

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t), an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``), ``clip`` and
``input_forget`` (f = 1 - i) as in the CPU kernel.
"""
from numba import cuda

from rnnsim.kernels.cpu.lstm import lstm_unit
from rnnsim.kernels.cpu.rows import clipped
from rnnsim.kernels.cuda.common import (block_units, clear_padding, load_inputs, load_rows,
                                        load_state, recurrent_sums, stage_columns, step_time,
                                        store_final)

KERNELS = ("lstm_forward",)
EQUATIONS = (clipped, lstm_unit)


def lstm_forward(xp, Ut, P, Rt, h, c, out, y, lengths, steps, reverse, clip, input_forget,
                 units_per_block, outputs_per_block, stage, p0, p1, p2):
    """Run the recurrence of every batch row in one launch (layout: the package docstring).

    xp : (T, B, 4p) input projections; Ut : (4, q, p), Ut[g, j, i] = U[g*p + i, j], q = p or
    proj_size; P : (3, p) peepholes for i, f, o (zeros without); Rt : (p, q) the projection
    transposed, Rt[j, i] = R[i, j], or (0, q) without; h : (B, q) and c : (B, p) initial
    states, overwritten with the final ones; out : (T, B, q) receives h_t, zero past a row's
    length; y : (B, p) scratch for o * act0(c_t) when projecting; lengths : (B,) int64;
    steps : max(lengths); reverse, clip, input_forget : as in the CPU kernel;
    units_per_block : cell units each block owns; outputs_per_block : columns of h_t each
    block projects; stage : the block's columns of Ut in shared memory. Shared memory:
    (ROWS*q + ROWS*p (projecting) + stage*4*q*units_per_block) values.
    p0, p1, p2 : the activations' parameters.
    """
    T, B, G = xp.shape
    p = G // 4
    q = Ut.shape[1]
    real = xp.dtype.type
    project = Rt.shape[0] > 0
    u0, nu = block_units(units_per_block, p)
    o0 = cuda.blockIdx.x * outputs_per_block if project else u0
    no = max(0, min(outputs_per_block, q - o0)) if project else nu
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    width = ROWS * q  # noqa: F821
    projected = ROWS * p if project else 0  # noqa: F821
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:width]
    ys = shared[width:width + projected]
    Us = shared[width + projected:]
    z = cuda.local.array(4 * ROWS, xp.dtype)  # noqa: F821 (gate g of row r at g*ROWS + r)
    hp = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    if stage:
        stage_columns(Ut, Us, u0, nu)
    clear_padding(out, lengths, b0, ROWS, o0, no)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            load_inputs(xp, lengths, reverse, s, b0, ROWS, i, p, 4, z)  # noqa: F821
            recurrent_sums(Ut, Us, stage, hs, i, l, nu, ROWS, 0, 4, z)  # noqa: F821
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    ci, value = lstm_unit(z[r], z[ROWS + r], z[2 * ROWS + r],  # noqa: F821
                                          z[3 * ROWS + r], P[0, i], P[1, i], P[2, i],  # noqa: F821
                                          c[b, i], clip, input_forget, real, p0, p1, p2)
                    c[b, i] = ci
                    if project:
                        y[b, i] = value
                    else:
                        out[step_time(s, lengths[b], reverse), b, i] = value
        if project:
            step_barrier()  # noqa: F821 (every unit's o * act0(c_t) is in y)
            load_rows(y, lengths, s, b0, ROWS, ys)  # noqa: F821
            for l in range(cuda.threadIdx.x, no, cuda.blockDim.x):
                i = o0 + l
                for r in range(ROWS):  # noqa: F821
                    hp[r] = 0
                for j in range(p):
                    w = Rt[j, i]
                    for r in range(ROWS):  # noqa: F821
                        hp[r] += w * ys[r * p + j]
                for r in range(ROWS):  # noqa: F821
                    b = b0 + r
                    if b < B and s < lengths[b]:
                        out[step_time(s, lengths[b], reverse), b, i] = hp[r]
        step_barrier()  # noqa: F821
    store_final(h, out, lengths, reverse, b0, ROWS, o0, no)  # noqa: F821
