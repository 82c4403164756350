"""Elman recurrence a_t = act0(W x_t + b + U a_{t-1}).

Each step runs panel by panel (``tiles``): a register tile of [x_t a_{t-1}] [W U]^T for a few
batch rows and one panel's units, then their activation.
"""
from rnnsim.kernels.cpu import rows, tiles

KERNELS = ("elman_forward",)
HALVES = 4  # sub-panels per panel: P packed with gates=1, nr=4


def elman_forward(first, last, x, P, bias, h, out, lengths, reverse, clip, p0):
    """Run the recurrence for batch rows first..last-1.

    x : (T, B, k) inputs; P : [W U] (p, k + p) packed with gates=1, nr=4 (``tiles``);
    bias : (1, pp) biases, pp = p padded to whole panels (``tiles.padded``); h : (B, p) initial
    states, overwritten with the final ones; out : (T, B, p) receives a_t, zero past a row's
    length; lengths : (B,) int64 steps of each row (<= T); reverse : run each row from its last
    step down to 0; clip : pre-activations are clipped to [-clip, clip] (np.inf: no clipping);
    p0 : act0's parameters.
    """
    T, B, k = x.shape
    padded = bias.shape[1]
    units = P.shape[2]
    n = last - first
    H = rows.buffer(x, n, k + padded)
    H_next = rows.buffer(x, n, k + padded)
    C = tiles.scratch(x, tiles.ROWS, units)
    results = tiles.scratch(x, 1, units)
    steps = rows.start_chunk(h, out, lengths, first, H, k)
    for s in range(steps):
        rows.load_inputs(x, H, lengths, first, s, reverse)
        for pan in range(P.shape[0]):
            u0 = pan * units
            r = 0
            while r < n:
                tile = tiles.panel_tile(H, r, n, P, pan, C, k, 1, HALVES, HALVES, -1)
                for m in range(tile):
                    if s >= lengths[first + r + m]:
                        continue
                    for i in range(units):  # branch-free, so that it vectorises
                        results[0, i] = act0(rows.clipped(C[m, i] + bias[0, u0 + i], clip),  # noqa: F821
                                             *p0)
                    rows.copy(results[0], H_next[r + m, k + u0:k + u0 + units])
                r += tile
        rows.finish_step(H, H_next, out, lengths, first, s, reverse, k)
        H, H_next = H_next, H
    rows.store_states(H, h, first, k)
