"""Leaky echo-state recurrence x_t = keep*x_{t-1} + lr*act0(W x_{t-1} + z_t), dense or CSR W.

``z`` holds the input projections W_in u_t + b (computed for all steps by one GEMM) on entry
and the states x_t on return. Each batch row b runs the weights of ensemble member
``member[b]``: one member for a plain batch, one row per member for an ensemble.
"""
from numba import prange

from rnnsim.kernels.options import GATHER_FASTMATH

KERNELS = ("esn_dense", "esn_csr")
KERNEL_OPTIONS = {"esn_csr": {"fastmath": GATHER_FASTMATH}}


def esn_dense(z, h, W, lr, keep, member, lengths, p0):
    """z : (T, B, N) in/out, zero past a row's length; h : (B, N) initial states, overwritten
    with the final ones; W : (M, N, N); lr, keep = 1-lr : (M, N); member : (B,) int64;
    lengths : (B,) int64 steps of each row (<= T); p0 : act0's parameters."""
    T, B, N = z.shape
    for b in prange(B):
        m = member[b]
        Wm = W[m]
        prev = h[b]
        for t in range(lengths[b], T):
            z[t, b, :] = 0.0
        for t in range(lengths[b]):
            row = z[t, b]
            for i in range(N):
                acc = row[i]
                for j in range(N):
                    acc += Wm[i, j] * prev[j]
                row[i] = keep[m, i] * prev[i] + lr[m, i] * act0(acc, *p0)  # noqa: F821
            prev = row
        h[b] = prev


def esn_csr(z, h, data, indices, indptr, lr, keep, member, lengths, p0):
    """Like ``esn_dense`` with W in CSR form: data, indices : (nnz,) of all members;
    indptr : (M, N+1) int64 offsets into them."""
    T, B, N = z.shape
    for b in prange(B):
        m = member[b]
        ptr = indptr[m]
        prev = h[b]
        for t in range(lengths[b], T):
            z[t, b, :] = 0.0
        for t in range(lengths[b]):
            row = z[t, b]
            for i in range(N):
                acc = row[i]
                for k in range(ptr[i], ptr[i + 1]):
                    acc += data[k] * prev[indices[k]]
                row[i] = keep[m, i] * prev[i] + lr[m, i] * act0(acc, *p0)  # noqa: F821
            prev = row
        h[b] = prev
