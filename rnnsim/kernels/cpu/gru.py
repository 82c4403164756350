"""GRU recurrence (gates r, z, n).

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(W_n x + b_n + r * (U_n h + bn)); without it the
reset is applied before the recurrent matmul: n = act0(W_n x + b_n + U_n (r * h) + bn). With
``clip`` the pre-activations of r, z and n are clipped to [-clip, clip] (ONNX).

Each step runs panel by panel (``tiles``): a register tile of [x_t h_{t-1}] [W U]^T for a few
batch rows and one panel's units of the gates, then those units' nonlinearities. With
``reset_after`` the tile keeps n's input and recurrent parts apart; without it a second pass
tiles [x_t, r * h_{t-1}] with [W_n U_n].
"""
from rnnsim.kernels.cpu import rows, tiles

KERNELS = ("gru_forward",)
HALVES = 2  # sub-panels per panel: P packed with gates=3 (reset_after) or 2 (r, z), nr=6 or 4
N_GATE = 2  # with reset_after, gate n's recurrent part goes to an extra gate of the tile


def gru_forward(first, last, x, P, Pn, bias, bn, h, out, lengths, reset_after, reverse, clip,
                p0, p1):
    """Run the recurrence for batch rows first..last-1.

    x : (T, B, k) inputs; P : [W U] (3p, k + p) packed with gates=3, nr=6 with ``reset_after``,
    else the rows of r and z packed with gates=2, nr=4; Pn : the rows of n packed with gates=1,
    nr=2 without ``reset_after`` (0 panels with it); bias : (3, pp) input biases, pp = p padded
    to whole panels (``tiles.padded``); bn : (1, pp) recurrent bias of n; h : (B, p) initial
    states, overwritten with the final ones; out : (T, B, p) receives h_t, zero past a row's
    length; lengths : (B,) int64 steps of each row (<= T); reset_after : where the reset gate
    applies (see the module docstring); reverse : run each row from its last step down to 0;
    clip : np.inf for none; p0, p1 : the activations' parameters.
    """
    T, B, k = x.shape
    p = h.shape[1]
    padded = bias.shape[1]
    gates = 3 if reset_after else 2
    units = P.shape[2] // gates
    one = x.dtype.type(1.0)  # a literal 1.0 would compute float32 in float64
    n = last - first
    H = rows.buffer(x, n, k + padded)
    H_next = rows.buffer(x, n, k + padded)
    Z = rows.buffer(x, 0 if reset_after else n, padded)
    RH = rows.buffer(x, 0 if reset_after else n, k + padded)
    C = tiles.scratch(x, tiles.ROWS, 4 * units)
    results = tiles.scratch(x, 2, units)
    steps = rows.start_chunk(h, out, lengths, first, H, k)
    for s in range(steps):
        rows.load_inputs(x, H, lengths, first, s, reverse)
        for pan in range(P.shape[0]):
            u0 = pan * units
            r = 0
            while r < n:
                if reset_after:
                    tile = tiles.panel_tile(H, r, n, P, pan, C, k, 3, HALVES, 1, N_GATE)
                else:
                    tile = tiles.panel_tile(H, r, n, P, pan, C, k, 2, HALVES, 2, -1)
                for m in range(tile):
                    if s >= lengths[first + r + m]:
                        continue
                    h_row = H[r + m, k + u0:k + u0 + units]
                    if reset_after:
                        for i in range(units):  # branch-free, so that it vectorises
                            ar = act1(rows.clipped(C[m, i] + bias[0, u0 + i], clip),  # noqa: F821
                                      *p1)
                            az = act1(rows.clipped(C[m, units + i] + bias[1, u0 + i],  # noqa: F821
                                                   clip), *p1)
                            gn = rows.clipped(C[m, 2 * units + i] + bias[2, u0 + i] + ar
                                              * (C[m, 3 * units + i] + bn[0, u0 + i]), clip)
                            results[0, i] = (one - az) * act0(gn, *p0) + az * h_row[i]  # noqa: F821
                        rows.copy(results[0], H_next[r + m, k + u0:k + u0 + units])
                    else:
                        for i in range(units):
                            ar = act1(rows.clipped(C[m, i] + bias[0, u0 + i], clip),  # noqa: F821
                                      *p1)
                            results[0, i] = act1(rows.clipped(  # noqa: F821
                                C[m, units + i] + bias[1, u0 + i], clip), *p1)
                            results[1, i] = ar * h_row[i]
                        rows.copy(results[0], Z[r + m, u0:u0 + units])
                        rows.copy(results[1], RH[r + m, k + u0:k + u0 + units])
                r += tile
        if not reset_after:
            for r in range(n):
                rows.copy(H[r, :k], RH[r, :k])
            for pan in range(Pn.shape[0]):
                u0 = pan * units
                r = 0
                while r < n:
                    tile = tiles.panel_tile(RH, r, n, Pn, pan, C, k, 1, HALVES, 2, -1)
                    for m in range(tile):
                        if s >= lengths[first + r + m]:
                            continue
                        h_row = H[r + m, k + u0:k + u0 + units]
                        z_row = Z[r + m, u0:u0 + units]
                        for i in range(units):
                            gn = rows.clipped(C[m, i] + bias[2, u0 + i] + bn[0, u0 + i],
                                              clip)
                            results[0, i] = ((one - z_row[i]) * act0(gn, *p0)  # noqa: F821
                                             + z_row[i] * h_row[i])
                        rows.copy(results[0], H_next[r + m, k + u0:k + u0 + units])
                    r += tile
        rows.finish_step(H, H_next, out, lengths, first, s, reverse, k)
        H, H_next = H_next, H
    rows.store_states(H, h, first, k)
