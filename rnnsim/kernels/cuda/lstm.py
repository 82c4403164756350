"""LSTM recurrence on the GPU (gates i, f, g, o), W x_t + b precomputed for all steps.

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t), an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``), ``clip`` and
``input_forget`` (f = 1 - i) as in the CPU kernel.
"""
import math

from numba import cuda

from rnnsim.kernels.cuda.common import (clear_padding, load_rows, load_state, stage_columns,
                                        step_time, store_final)

KERNELS = ("lstm_forward",)


def lstm_forward(xp, Ut, P, Rt, h, c, out, y, lengths, steps, reverse, clip, input_forget,
                 units_per_block, outputs_per_block, stage, p0, p1, p2):
    """Run the recurrence of every batch row in one launch (layout: the package docstring).

    xp : (T, B, 4p) input projections; Ut : (4, q, p), Ut[g, j, i] = U[g*p + i, j], q = p or
    proj_size; P : (3, p) peepholes for i, f, o, or (0, p) without; Rt : (p, q) the projection
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
    peephole = P.shape[0] > 0
    project = Rt.shape[0] > 0
    clipping = clip < math.inf
    u0 = cuda.blockIdx.x * units_per_block
    nu = min(units_per_block, p - u0)
    o0 = cuda.blockIdx.x * outputs_per_block if project else u0
    no = max(0, min(outputs_per_block, q - o0)) if project else nu
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    width = ROWS * q  # noqa: F821
    projected = ROWS * p if project else 0  # noqa: F821
    shared = cuda.shared.array(0, xp.dtype)
    hs = shared[:width]
    ys = shared[width:width + projected]
    Us = shared[width + projected:]
    zi = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    zf = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    zg = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    zo = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    hp = cuda.local.array(ROWS, xp.dtype)  # noqa: F821
    if stage:
        stage_columns(Ut, Us, u0, nu)
    clear_padding(out, lengths, b0, ROWS, o0, no)  # noqa: F821
    for s in range(steps):
        load_state(h, out, lengths, reverse, s, b0, ROWS, hs)  # noqa: F821
        cuda.syncthreads()
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                zi[r] = 0
                zf[r] = 0
                zg[r] = 0
                zo[r] = 0
                if b < B and s < lengths[b]:
                    t = step_time(s, lengths[b], reverse)
                    zi[r] = xp[t, b, i]
                    zf[r] = xp[t, b, p + i]
                    zg[r] = xp[t, b, 2 * p + i]
                    zo[r] = xp[t, b, 3 * p + i]
            for j in range(q):
                if stage:
                    wi = Us[j * nu + l]
                    wf = Us[(q + j) * nu + l]
                    wg = Us[(2 * q + j) * nu + l]
                    wo = Us[(3 * q + j) * nu + l]
                else:
                    wi = Ut[0, j, i]
                    wf = Ut[1, j, i]
                    wg = Ut[2, j, i]
                    wo = Ut[3, j, i]
                for r in range(ROWS):  # noqa: F821
                    hv = hs[r * q + j]
                    zi[r] += wi * hv
                    zf[r] += wf * hv
                    zg[r] += wg * hv
                    zo[r] += wo * hv
            for r in range(ROWS):  # noqa: F821
                b = b0 + r
                if b < B and s < lengths[b]:
                    gi = zi[r]
                    gf = zf[r]
                    gg = zg[r]
                    if peephole:
                        gi += P[0, i] * c[b, i]
                        gf += P[1, i] * c[b, i]
                    if clipping:
                        gi = min(max(gi, -clip), clip)
                        gf = min(max(gf, -clip), clip)
                        gg = min(max(gg, -clip), clip)
                    ai = act1(gi, *p1)  # noqa: F821 (bound by codegen)
                    af = 1.0 - ai if input_forget else act1(gf, *p1)  # noqa: F821
                    ci = af * c[b, i] + ai * act2(gg, *p2)  # noqa: F821
                    go = zo[r]
                    if peephole:
                        go += P[2, i] * ci
                    c[b, i] = ci
                    if clipping:
                        go = min(max(go, -clip), clip)
                    value = act1(go, *p1) * act0(ci, *p0)  # noqa: F821
                    if project:
                        y[b, i] = value
                    else:
                        out[step_time(s, lengths[b], reverse), b, i] = value
        if project:
            step_barrier()  # noqa: F821 (every unit's o * act0(c_t) is in y)
            load_rows(y, lengths, s, b0, ROWS, ys)  # noqa: F821
            cuda.syncthreads()
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
