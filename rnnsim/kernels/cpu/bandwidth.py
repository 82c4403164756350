"""A plain sum over a buffer: the read bandwidth that a kernel streaming its data can reach on
this machine (the benchmarks' ceiling for the sparse echo-state kernel)."""
import numba
import numpy as np
from numba import prange

from ..options import JIT


@numba.njit(cache=True, **JIT)
def chunk_sum(buf, lo, hi, passes):
    """The sum of ``buf[lo:hi]``, read ``passes`` times (vectorised: 'reassoc' is on)."""
    part = buf[lo:hi]
    total = 0.0
    for _ in range(passes):
        for i in range(part.size):
            total += part[i]
    return total


@numba.njit(parallel=True, cache=True, **JIT)
def read_sum(buf, passes, threads):
    """The sum of the 1-D float64 ``buf``, read ``passes`` times: it is cut into ``threads``
    chunks (at most numba's threads), each summed ``passes`` times over by one thread, in one
    parallel region, so that a buffer of a few KB is timed without the cost of a call per
    pass."""
    chunk = -(-buf.size // threads)
    totals = np.zeros(threads)
    for c in prange(threads):
        totals[c] = chunk_sum(buf, c * chunk, min(buf.size, (c + 1) * chunk), passes)
    return totals.sum()
