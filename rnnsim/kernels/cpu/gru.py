"""GRU recurrence (gates r, z, n).

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(W_n x + b_n + r * (U_n h + bn)); without it the
reset is applied before the recurrent matmul: n = act0(W_n x + b_n + U_n (r * h) + bn). With
``clip`` the pre-activations of r, z and n are clipped to [-clip, clip] (ONNX).

Each step runs panel by panel (``tiles``): a register tile of [x_t h_{t-1}] [W U]^T for a few
batch rows and one panel's units of the gates, then those units' nonlinearities. Without
``reset_after`` a second pass tiles [x_t, r * h_{t-1}] with [W_n U_n].
"""
import numpy as np
from numba import prange

from rnnsim.kernels.cpu import rows, tiles

KERNELS = ("gru_forward",)
GATES = 3
VECTORS = 3  # vectors per panel row with reset_after: one per gate (gates=3, nr=3)
SPLIT_VECTORS = 2  # without: r and z (gates=2, nr=2), then n (gates=1, nr=2)


def gru_forward(x, P, Pn, bias, bn, h, out, lengths, reset_after, reverse, clip, chunks, p0, p1):
    """Run the recurrence for every batch row.

    x : (T, B, k) inputs; P : [W U] (3p, k + p) packed with gates=3, nr=3 with
    ``reset_after``, else the rows of r and z packed with gates=2, nr=2; Pn : the rows of n
    packed with gates=1, nr=2 without ``reset_after`` (0 panels with it); bias : (3p,) input
    biases; bn : (p,) recurrent bias of n; h : (B, p) initial states, overwritten with the final
    ones; out : (T, B, p) receives h_t, zero past a row's length; lengths : (B,) int64 steps of
    each row (<= T); reset_after : where the reset gate applies (see the module docstring);
    reverse : run each row from its last step down to 0; clip : np.inf for none; chunks :
    batch-row chunks (threads); p0, p1 : the activations' parameters.
    """
    T, B, k = x.shape
    p = bn.size
    gates = GATES if reset_after else 2
    units = P.shape[2] // gates
    n_units = Pn.shape[2]
    clipping = clip < np.inf
    for chunk in prange(chunks):
        first, last = rows.chunk_bounds(B, chunks, chunk)
        n = last - first
        H = np.empty((n, k + p), x.dtype)
        H_next = np.empty((n, k + p), x.dtype)
        Z = np.empty((0 if reset_after else n, p), x.dtype)
        RH = np.zeros((0 if reset_after else n, k + p), x.dtype)
        C = np.empty((tiles.ROWS, P.shape[2] + units), x.dtype)
        steps = rows.start_chunk(h, out, lengths, first, H, k)
        for s in range(steps):
            rows.load_inputs(x, H, lengths, first, s, reverse)
            for pan in range(P.shape[0]):
                u0 = pan * units
                width = units if p - u0 > units else p - u0
                r = 0
                while r < n:
                    if reset_after:  # n's input part apart, in C's vector 3
                        tile = tiles.row_tile(H, r, n, P, pan, C, VECTORS, k, 2)
                    else:
                        tile = tiles.row_tile(H, r, n, P, pan, C, SPLIT_VECTORS, k, -1)
                    for m in range(tile):
                        if s >= lengths[first + r + m]:
                            continue
                        h_row = H[r + m, k:]
                        for i in range(width):
                            u = u0 + i
                            gr = C[m, i] + bias[u]
                            gz = C[m, units + i] + bias[p + u]
                            if clipping:
                                gr = rows.clipped(gr, clip)
                                gz = rows.clipped(gz, clip)
                            ar = act1(gr, *p1)  # noqa: F821 (bound by codegen)
                            az = act1(gz, *p1)  # noqa: F821
                            if reset_after:
                                gn = (C[m, 2 * units + i] + bias[2 * p + u]
                                      + ar * (C[m, 3 * units + i] + bn[u]))
                                if clipping:
                                    gn = rows.clipped(gn, clip)
                                H_next[r + m, k + u] = ((1.0 - az) * act0(gn, *p0)  # noqa: F821
                                                        + az * h_row[u])
                            else:
                                Z[r + m, u] = az
                                RH[r + m, k + u] = ar * h_row[u]
                    r += tile
            if not reset_after:
                for r in range(n):
                    rows.copy(H[r, :k], RH[r, :k])
                for pan in range(Pn.shape[0]):
                    u0 = pan * n_units
                    width = n_units if p - u0 > n_units else p - u0
                    r = 0
                    while r < n:
                        tile = tiles.row_tile(RH, r, n, Pn, pan, C, SPLIT_VECTORS, k, -1)
                        for m in range(tile):
                            if s >= lengths[first + r + m]:
                                continue
                            for i in range(width):
                                u = u0 + i
                                gn = C[m, i] + bias[2 * p + u] + bn[u]
                                if clipping:
                                    gn = rows.clipped(gn, clip)
                                az = Z[r + m, u]
                                H_next[r + m, k + u] = ((1.0 - az) * act0(gn, *p0)  # noqa: F821
                                                        + az * H[r + m, k + u])
                        r += tile
            rows.finish_step(H, H_next, out, lengths, first, s, reverse, k)
            H, H_next = H_next, H
        rows.store_states(H, h, first, k)
