"""Elman recurrence a_t = act0(W x_t + b + U a_{t-1}).

Each step runs panel by panel (``tiles``): a register tile of [x_t a_{t-1}] [W U]^T for a few
batch rows and one panel's units, then their activation.
"""
import numpy as np
from numba import prange

from rnnsim.kernels.cpu import rows, tiles

KERNELS = ("elman_forward",)
VECTORS = 2  # vectors per panel row (packed with gates=1, nr=2)


def elman_forward(x, P, bias, h, out, lengths, reverse, clip, chunks, p0):
    """Run the recurrence for every batch row.

    x : (T, B, k) inputs; P : [W U] (p, k + p) packed with gates=1, nr=2 (``tiles``);
    bias : (p,); h : (B, p) initial states, overwritten with the final ones; out : (T, B, p)
    receives a_t, zero past a row's length; lengths : (B,) int64 steps of each row (<= T);
    reverse : run each row from its last step down to 0; clip : pre-activations are clipped to
    [-clip, clip] (np.inf: no clipping); chunks : batch-row chunks (threads); p0 : act0's
    parameters.
    """
    T, B, k = x.shape
    p = bias.size
    units = P.shape[2]
    clipping = clip < np.inf
    for chunk in prange(chunks):
        first, last = rows.chunk_bounds(B, chunks, chunk)
        n = last - first
        H = np.empty((n, k + p), x.dtype)
        H_next = np.empty((n, k + p), x.dtype)
        C = np.empty((tiles.ROWS, units), x.dtype)
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
                        for i in range(width):
                            acc = C[m, i] + bias[u0 + i]
                            if clipping:
                                acc = rows.clipped(acc, clip)
                            H_next[r + m, k + u0 + i] = act0(acc, *p0)  # noqa: F821
                    r += tile
            rows.finish_step(H, H_next, out, lengths, first, s, reverse, k)
            H, H_next = H_next, H
        rows.store_states(H, h, first, k)
