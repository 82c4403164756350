"""What bounds one sequence through a sparse reservoir (N = 10,000 at 1%, CSR), on one core.

Prints, for float32 and float64, µs per step and GB/s (``rnnsim.bench.reservoir_bytes``) of:
- a plain sum over as many bytes (numba, one thread): the read bandwidth of the caches;
- rnnsim's ``net.run`` on one thread (the esn kernel: four accumulators, uint16 columns);
- the same row loop with every column read as ``column & 7`` (x[...] stays in one cache line):
  what the loads of values and columns and the multiply-adds cost without the random reads
  of the previous state, the ceiling of any reordering;
- ``net.run`` after a reverse Cuthill-McKee permutation of W (scipy's), with the mean span of
  a row's columns before and after: a random reservoir is an expander graph, and no
  permutation brings its columns together;
- the loop on a banded matrix of the same rows, each row's columns within 2,000 units of the
  diagonal: what locality could give if a reservoir had it.

Timings are the fastest of several repeats in thread CPU time (``time.thread_time``), so that
other processes on a shared machine inflate them less. Needs scipy for the permutation.
"""
import sys

import numba
import numpy as np

from bench_reservoir import matrices, rnnsim_net
from rnnsim.bench import reservoir_bytes
from rnnsim.kernels.options import GATHER_FASTMATH, JIT
from rnnsim.sparse import CSR
from timing import fastest_cpu_seconds

N, CONNECTIVITY, T, REPEATS = 10_000, 0.01, 50, 7
LOOP_JIT = {**JIT, "fastmath": GATHER_FASTMATH}


@numba.njit(**JIT)
def plain_sum(buf):
    total = buf.dtype.type(0)
    for i in range(buf.size):
        total += buf[i]
    return total


@numba.njit(**LOOP_JIT)
def rows_without_gather(z, x, out, data, indices, indptr, steps):
    """The esn kernel's row loop with x[column & 7] in place of x[column]."""
    zero = z.dtype.type(0)
    for _ in range(steps):
        for i in range(z.size):
            a0, a1, a2, a3 = z[i], zero, zero, zero
            k, end = np.uint64(indptr[i]), np.uint64(indptr[i + 1])
            while k + np.uint64(4) <= end:
                a0 += data[k] * x[indices[k] & 7]
                a1 += data[k + np.uint64(1)] * x[indices[k + np.uint64(1)] & 7]
                a2 += data[k + np.uint64(2)] * x[indices[k + np.uint64(2)] & 7]
                a3 += data[k + np.uint64(3)] * x[indices[k + np.uint64(3)] & 7]
                k += np.uint64(4)
            while k < end:
                a0 += data[k] * x[indices[k] & 7]
                k += np.uint64(1)
            out[i] = (a0 + a1) + (a2 + a3)


def fastest(fn) -> float:
    return fastest_cpu_seconds(fn, REPEATS)


def row_span(w: CSR) -> float:
    """The mean distance between the first and last column of a row."""
    counts = np.diff(w.indptr)
    full = counts > 0
    return float(np.mean(w.indices[w.indptr[1:][full] - 1] - w.indices[w.indptr[:-1][full]]))


def permuted(w: CSR, order: np.ndarray) -> CSR:
    """P W P^T: unit order[i] becomes unit i."""
    a = w.to_scipy()[order][:, order].tocsr()
    a.sort_indices()
    return CSR(a.data, a.indices.astype(np.int32), a.indptr.astype(np.int32), w.shape)


def banded(w: CSR, width: int = 2000) -> CSR:
    """The same rows with each column moved within ``width`` / 2 units of the diagonal."""
    rows = np.repeat(np.arange(N), np.diff(w.indptr))
    columns = (rows + w.indices % width - width // 2) % N
    order = np.lexsort((columns, rows))
    return CSR(w.data[order], columns[order].astype(np.int32), w.indptr, w.shape)


def main():
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    numba.set_num_threads(1)
    w, win, bias = matrices(N, CONNECTIVITY, N)
    rcm = permuted(w, reverse_cuthill_mckee(w.to_scipy().tocsr(), symmetric_mode=False))
    print(f"N = {N}, {w.nnz:,} nonzeros; mean row span {row_span(w):.0f} units, after reverse "
          f"Cuthill-McKee {row_span(rcm):.0f}; one thread, fastest of {REPEATS} (thread CPU "
          "time)", file=sys.stderr)
    print("| dtype | case | µs per step | GB/s |")
    print("|---|---|---:|---:|")
    u = np.random.default_rng(0).uniform(-1, 1, (T, 1))
    for dtype in ("float32", "float64"):
        nbytes = reservoir_bytes(N, w.nnz, dtype)
        buf = np.ones(nbytes // np.dtype(dtype).itemsize, dtype)
        x = u.astype(dtype)
        z = np.random.default_rng(1).uniform(-1, 1, N).astype(dtype)
        state, out = np.tanh(z), np.zeros(N, dtype)
        cases = {"plain sum": (lambda: plain_sum(buf), 1)}
        for name, m in (("rnnsim net.run", w), ("after reverse Cuthill-McKee", rcm),
                        ("banded (2,000 wide)", banded(w))):
            net = rnnsim_net(m, win, bias, dtype)
            cases[name] = (lambda net=net: net.run(x), T)
            if name == "rnnsim net.run":
                data, columns = m.data.astype(dtype), m.indices.astype(np.uint16)
                indptr = m.indptr.astype(np.int64)
                cases["row loop, no random reads of x"] = (
                    lambda: rows_without_gather(z, state, out, data, columns, indptr, T), T)
        for name, (fn, steps) in cases.items():
            seconds = fastest(fn) / steps
            print(f"| {dtype} | {name} | {seconds * 1e6:.0f} | {nbytes / seconds / 1e9:.1f} |")


if __name__ == "__main__":
    main()
