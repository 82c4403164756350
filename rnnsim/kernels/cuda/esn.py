"""Leaky echo-state recurrence on the GPU, x_t = keep*x_{t-1} + lr*act0(W x_{t-1} + z_t), dense
or CSR W.

``z`` holds the input projections W_in u_t + b on entry and the states x_t on return. Each
batch row b runs the weights of ensemble member ``member[b]``, so many reservoirs with
different weights run in one launch. With ROWS > 1 the rows of a block share the weights of
``member[b0]`` (the caller uses ROWS = 1 for an ensemble).
"""
from numba import cuda

from rnnsim.kernels.cpu.esn import leaky_unit
from rnnsim.kernels.cuda.common import (block_units, clear_padding, load_inputs, load_state,
                                        recurrent_sums, stage_columns, store_final)

KERNELS = ("esn_dense", "esn_csr")
EQUATIONS = (leaky_unit,)


@cuda.jit(device=True)
def advance(z, hs, lr, keep, lengths, s, b0, m, i, acc, p0):
    """z[s, b, i] = x_t of unit i for the block's active rows, from its sums ``acc``."""
    B, N = z.shape[1], z.shape[2]
    for r in range(acc.shape[0]):
        b = b0 + r
        if b < B and s < lengths[b]:
            z[s, b, i] = leaky_unit(acc[r], hs[r * N + i], lr[m, i], keep[m, i], p0)


def esn_dense(z, h, Wt, lr, keep, member, lengths, steps, units_per_block, stage, p0):
    """z : (T, B, N) in/out, zero past a row's length; h : (B, N) initial states, overwritten
    with the final ones; Wt : (M, N, N), Wt[m, j, i] = W_m[i, j]; lr, keep = 1-lr : (M, N);
    member : (B,) int64; lengths : (B,) int64; steps : max(lengths); units_per_block : units
    each block owns; stage : the block's columns of Wt[member[b0]] in shared memory. Shared
    memory: (ROWS*N + stage*N*units_per_block) values. p0 : act0's parameters."""
    T, B, N = z.shape
    u0, nu = block_units(units_per_block, N)
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821 (ROWS and step_barrier are bound per variant)
    m = member[b0]
    shared = cuda.shared.array(0, z.dtype)
    hs = shared[:ROWS * N]  # noqa: F821
    Ws = shared[ROWS * N:]  # noqa: F821
    acc = cuda.local.array(ROWS, z.dtype)  # noqa: F821
    if stage:
        stage_columns(Wt[m:m + 1], Ws, u0, nu)
    clear_padding(z, lengths, b0, ROWS, u0, nu)  # noqa: F821
    for s in range(steps):
        load_state(h, z, lengths, False, s, b0, ROWS, hs)  # noqa: F821
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            load_inputs(z, lengths, False, s, b0, ROWS, i, N, 1, acc)  # noqa: F821
            recurrent_sums(Wt[m:m + 1], Ws, stage, hs, i, l, nu, ROWS, 0, 1, acc)  # noqa: F821
            advance(z, hs, lr, keep, lengths, s, b0, m, i, acc, p0)
        step_barrier()  # noqa: F821
    store_final(h, z, lengths, False, b0, ROWS, u0, nu)  # noqa: F821


def esn_csr(z, h, data, indices, indptr, lr, keep, member, lengths, steps, units_per_block, p0):
    """Like ``esn_dense`` with W in CSR form, read through the cache (never staged):
    data, indices : (nnz,) of all members; indptr : (M, N+1) int64 offsets into them.
    Shared memory: ROWS*N values."""
    T, B, N = z.shape
    u0, nu = block_units(units_per_block, N)
    b0 = cuda.blockIdx.y * ROWS  # noqa: F821
    m = member[b0]
    hs = cuda.shared.array(0, z.dtype)
    acc = cuda.local.array(ROWS, z.dtype)  # noqa: F821
    clear_padding(z, lengths, b0, ROWS, u0, nu)  # noqa: F821
    for s in range(steps):
        load_state(h, z, lengths, False, s, b0, ROWS, hs)  # noqa: F821
        for l in range(cuda.threadIdx.x, nu, cuda.blockDim.x):
            i = u0 + l
            load_inputs(z, lengths, False, s, b0, ROWS, i, N, 1, acc)  # noqa: F821
            for k in range(indptr[m, i], indptr[m, i + 1]):
                w = data[k]
                j = indices[k]
                for r in range(ROWS):  # noqa: F821
                    acc[r] += w * hs[r * N + j]
            advance(z, hs, lr, keep, lengths, s, b0, m, i, acc, p0)
        step_barrier()  # noqa: F821
    store_final(h, z, lengths, False, b0, ROWS, u0, nu)  # noqa: F821
