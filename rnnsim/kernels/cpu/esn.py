"""Leaky echo-state recurrence with optional output feedback, W dense or CSR.

    x_t = keep * x_{t-1} + lr * act0(W x_{t-1} + z_t + F y_{t-1}),   y_t = W_out x_t + b_out

``z`` holds the input projections W_in u_t + b (one GEMM for all steps) on entry and the states
x_t on return. Batch row b runs the weights of ensemble member ``member[b]``: one member for a
plain batch, one row per member for an ensemble. ``F`` (N x m) feeds the readout's previous
output back; with m = 0 (no feedback) its loops are empty.

Loop shapes (measured on a 2-core EPYC, see benchmarks/RESULTS.md):
- A CSR row is summed into four independent accumulators: one accumulator is a serial chain
  of fused multiply-adds (~4 cycles each); four keep the loads busy instead. Column indices
  are unsigned (uint16 below 65,536 units, else uint32) and offsets are cast to uint64, so that
  numba emits no negative-index wraparound in the inner loop.
- A dense W is applied in axpy form over its transpose (``WT[j] = W[:, j]``): the updates of a
  row's units are independent, so LLVM vectorises them without reassociating any sum
  ('reassoc' is off for this kernel: with it the CSR sums become slow AVX2 gathers).
- Many batch rows of one reservoir (``esn_batched``, CSR without feedback) go in blocks of
  ``tiles.block_rows`` rows whose states are kept unit-major: a nonzero is loaded once per
  block and multiplies two vector registers of the block's states, instead of once per row.
  The sums run in the same order as ``esn``'s, so a row gets the same bits either way.
- Batch rows are independent sequences: with as many rows as threads the parallel variant runs
  each row through all its steps on one thread, one parallel region per call. With fewer rows
  (B = 1) a large reservoir's units are split into the row chunks ``bounds`` instead, and the
  threads run the chunks of one step at a time: a fork/join per step (~1.2 µs with numba's
  OpenMP layer on an idle machine, far more when other processes hold the cores, so the cell
  times both ways on chunks of steps and keeps the faster; numba has no barrier to keep one
  parallel region across steps).
"""
import numba
import numpy as np
from numba import prange

from rnnsim.kernels.cpu import tiles
from rnnsim.kernels.options import GATHER_FASTMATH, JIT

KERNELS = ("esn", "esn_batched")
KERNEL_OPTIONS = {name: {"fastmath": GATHER_FASTMATH} for name in KERNELS}
ROW_JIT = {**JIT, "fastmath": GATHER_FASTMATH}


def leaky_unit(z, prev, lr, keep, p0):
    """One unit's x_t = keep x_{t-1} + lr act0(z) from its pre-activation z and x_{t-1} =
    ``prev`` (keep = 1 - lr)."""
    return keep * prev + lr * act0(z, *p0)  # noqa: F821 (bound by codegen)


EQUATIONS = (leaky_unit,)
# Called, not inlined, and never contracted to an FMA: otherwise the parallel variant of ``esn``
# rounds it differently from the serial one and from ``esn_batched`` (1 ulp in float64), and a
# row must get the same bits in every kernel. Its cost beside a step's sparse sums is small.
INLINE_EQUATIONS = False


@numba.njit(inline="always", **ROW_JIT)
def advance(z, h, WT, data, indices, indptr, lr, keep, F, y, t, b, mb, lo, hi, p0):
    """Units lo..hi of batch row b at step t: z[t, b, lo:hi] becomes x_t there."""
    zero = z.dtype.type(0)
    row = z[t, b]
    prev = h[b] if t == 0 else z[t - 1, b]
    for i in range(lo, hi):
        a0 = row[i]
        a1 = zero
        a2 = zero
        a3 = zero
        for o in range(y.shape[1]):
            a1 += F[mb, i, o] * y[b, o]
        k = np.uint64(indptr[mb, i])
        end = np.uint64(indptr[mb, i + 1])
        while k + np.uint64(4) <= end:
            a0 += data[k] * prev[indices[k]]
            a1 += data[k + np.uint64(1)] * prev[indices[k + np.uint64(1)]]
            a2 += data[k + np.uint64(2)] * prev[indices[k + np.uint64(2)]]
            a3 += data[k + np.uint64(3)] * prev[indices[k + np.uint64(3)]]
            k += np.uint64(4)
        while k < end:
            a0 += data[k] * prev[indices[k]]
            k += np.uint64(1)
        row[i] = (a0 + a1) + (a2 + a3)
    if WT.shape[1] > 0:
        Wm = WT[mb]
        for j in range(Wm.shape[0]):
            pj = prev[j]
            Wj = Wm[j]
            for i in range(lo, hi):
                row[i] += Wj[i] * pj
    for i in range(lo, hi):
        row[i] = leaky_unit(row[i], prev[i], lr[mb, i], keep[mb, i], p0)


@numba.njit(inline="always", **ROW_JIT)
def readout(z, Wout, bout, y, t, b, mb):
    """y[b] = W_out x_t + b_out for batch row b (nothing without feedback, m = 0)."""
    for o in range(y.shape[1]):
        acc = bout[mb, o]
        for j in range(z.shape[2]):
            acc += Wout[mb, o, j] * z[t, b, j]
        y[b, o] = acc


def esn(z, h, WT, data, indices, indptr, lr, keep, member, lengths, bounds, F, Wout, bout, y,
        p0):
    """Run every batch row for its ``lengths[b]`` steps.

    z : (T, B, N) in/out, zero past a row's length; h : (B, N) initial states, overwritten with
    the final ones; WT : (M, N, N) transposed dense weights, or (M, 0, 0) for CSR; data :
    (nnz,) CSR values of all members, indices : (nnz,) uint16|uint32 columns, indptr : (M, N+1)
    int64 offsets into them (all zero for dense); lr, keep = 1-lr : (M, N); member : (B,) int64;
    lengths : (B,) int64 steps of each row (<= T); bounds : (C+1,) int64 row chunks from 0 to
    N, C > 1 to split each step's units over the threads; F : (M, N, m) feedback weights (m =
    0: none); Wout : (M, m, N), bout : (M, m) the readout; y : (B, m) y_{-1} on entry, each
    row's last y on return; p0 : act0's parameters.
    """
    T, B, N = z.shape
    C = bounds.size - 1
    steps = clear_past(z, lengths)
    if C == 1:
        for b in prange(B):
            mb = member[b]
            for t in range(lengths[b]):
                advance(z, h, WT, data, indices, indptr, lr, keep, F, y, t, b, mb, 0, N, p0)
                readout(z, Wout, bout, y, t, b, mb)
    else:
        for t in range(steps):
            for task in prange(B * C):
                b = task // C
                if t < lengths[b]:
                    advance(z, h, WT, data, indices, indptr, lr, keep, F, y, t, b, member[b],
                            bounds[task - b * C], bounds[task - b * C + 1], p0)
            for b in range(B):
                if t < lengths[b]:
                    readout(z, Wout, bout, y, t, b, member[b])
    final_states(z, h, lengths)


def esn_batched(z, h, data, indices, indptr, lr, keep, lengths, S, p0):
    """``esn`` for many batch rows of one CSR reservoir without feedback, in blocks of
    ``tiles.block_rows`` rows (one thread each): the arguments as for ``esn`` (indptr (1, N+1),
    lr and keep (1, N)); S : (blocks, 2, N, rows per block) scratch for each block's states
    x_{t-1} and x_t, unit-major."""
    T, B, N = z.shape
    steps = clear_past(z, lengths)
    for blk in prange(S.shape[0]):
        width = tiles.block_rows(z)
        first = blk * width
        rows = min(width, B - first)
        prev = S[blk, 0]
        nxt = S[blk, 1]
        for j in range(rows):
            prev[:, j] = h[first + j]
        acc = tiles.scratch(z, (4, width))
        for t in range(steps):
            for j in range(rows):
                nxt[:, j] = z[t, first + j]  # the input projections, unit-major
            for i in range(N):
                for j in range(width):
                    acc[0, j] = nxt[i, j]
                    acc[1, j] = 0.0
                    acc[2, j] = 0.0
                    acc[3, j] = 0.0
                tiles.sparse_block_sums(acc, prev, data, indices, indptr[0, i],
                                        indptr[0, i + 1])
                for j in range(width):
                    total = (acc[0, j] + acc[1, j]) + (acc[2, j] + acc[3, j])
                    nxt[i, j] = leaky_unit(total, prev[i, j], lr[0, i], keep[0, i], p0)
            for j in range(rows):
                if t < lengths[first + j]:
                    z[t, first + j] = nxt[:, j]
                else:  # past its end: the row keeps its state (z is already zero)
                    nxt[:, j] = prev[:, j]
            prev, nxt = nxt, prev
    final_states(z, h, lengths)


@numba.njit(inline="always", **ROW_JIT)
def clear_past(z, lengths):
    """Zero z past each row's length; returns the longest length."""
    steps = 0
    for b in range(z.shape[1]):
        steps = max(steps, lengths[b])
        for t in range(lengths[b], z.shape[0]):
            z[t, b, :] = 0.0
    return steps


@numba.njit(inline="always", **ROW_JIT)
def final_states(z, h, lengths):
    """h[b] = x at row b's last step (unchanged for a row of length 0)."""
    for b in range(z.shape[1]):
        if lengths[b] > 0:
            h[b] = z[lengths[b] - 1, b]
