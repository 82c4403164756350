"""LSTM recurrence (gates i, f, g, o).

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t), an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``), and the ONNX options
``clip`` (gate pre-activations and the c_t fed to act0 clipped to [-clip, clip]) and
``input_forget`` (f = 1 - i).

Each step runs panel by panel (``tiles``): a register tile of [x_t h_{t-1}] [W U]^T for a few
batch rows and one panel's units of all four gates, then those units' gate nonlinearities.
"""
import numpy as np
from numba import prange

from rnnsim.kernels.cpu import rows, tiles

KERNELS = ("lstm_forward",)
GATES = 4
VECTORS = 4  # vectors per panel row: one per gate (packed with gates=4, nr=4)


def lstm_forward(x, P, bias, R, peep, h, c, out, lengths, reverse, clip, input_forget, chunks,
                 p0, p1, p2):
    """Run the recurrence for every batch row.

    x : (T, B, k) inputs; P : [W U] (4p, k + q) packed with gates=4, nr=4 (``tiles``), q = p or
    proj_size; bias : (4p,); R : the projection (q, p) packed with gates=1, nr=4 (0 panels
    without); peep : (3, p) peepholes for i, f, o, or (0, p) without; h : (B, q) and c : (B, p)
    initial states, overwritten with the final ones; out : (T, B, q) receives h_t, zero past a
    row's length; lengths : (B,) int64 steps of each row (<= T); reverse : run each row from its
    last step down to 0; clip : np.inf for none; input_forget : couple the forget gate to the
    input gate; chunks : batch-row chunks (threads); p0, p1, p2 : the activations' parameters.
    """
    T, B, k = x.shape
    p = bias.size // GATES
    q = h.shape[1]
    units = P.shape[2] // GATES
    outputs = R.shape[2]
    peephole = peep.shape[0] > 0
    project = R.shape[0] > 0
    clipping = clip < np.inf
    for chunk in prange(chunks):
        first, last = rows.chunk_bounds(B, chunks, chunk)
        n = last - first
        H = np.empty((n, k + q), x.dtype)
        H_next = np.empty((n, k + q), x.dtype)
        cs = c[first:last].copy()
        Y = np.empty((n if project else 0, p), x.dtype)
        C = np.empty((tiles.ROWS, P.shape[2]), x.dtype)
        steps = rows.start_chunk(h, out, lengths, first, H, k)
        for s in range(steps):
            rows.load_inputs(x, H, lengths, first, s, reverse)
            for pan in range(P.shape[0]):
                u0 = pan * units
                width = units if p - u0 > units else p - u0
                r = 0
                while r < n:
                    tile = tiles.row_tile(H, r, n, P, pan, C, VECTORS, k, -1)
                    for m in range(tile):
                        if s >= lengths[first + r + m]:
                            continue
                        c_row = cs[r + m]
                        y_row = Y[r + m] if project else H_next[r + m, k:]
                        for i in range(width):
                            u = u0 + i
                            gi = C[m, i] + bias[u]
                            gf = C[m, units + i] + bias[p + u]
                            gg = C[m, 2 * units + i] + bias[2 * p + u]
                            go = C[m, 3 * units + i] + bias[3 * p + u]
                            if peephole:
                                gi += peep[0, u] * c_row[u]
                                gf += peep[1, u] * c_row[u]
                            if clipping:
                                gi = rows.clipped(gi, clip)
                                gf = rows.clipped(gf, clip)
                                gg = rows.clipped(gg, clip)
                            ai = act1(gi, *p1)  # noqa: F821 (bound by codegen)
                            af = 1.0 - ai if input_forget else act1(gf, *p1)  # noqa: F821
                            ci = af * c_row[u] + ai * act2(gg, *p2)  # noqa: F821
                            if peephole:
                                go += peep[2, u] * ci
                            c_row[u] = ci
                            if clipping:
                                go = rows.clipped(go, clip)
                                ci = rows.clipped(ci, clip)
                            y_row[u] = act1(go, *p1) * act0(ci, *p0)  # noqa: F821
                    r += tile
            if project:
                for pan in range(R.shape[0]):
                    o0 = pan * outputs
                    width = outputs if q - o0 > outputs else q - o0
                    r = 0
                    while r < n:
                        tile = tiles.row_tile(Y, r, n, R, pan, C, VECTORS, 0, -1)
                        for m in range(tile):
                            for i in range(width):
                                H_next[r + m, k + o0 + i] = C[m, i]
                        r += tile
            rows.finish_step(H, H_next, out, lengths, first, s, reverse, k)
            H, H_next = H_next, H
        rows.store_states(H, h, first, k)
        for r in range(n):
            rows.copy(cs[r], c[first + r])
