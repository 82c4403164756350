"""A plain sum over a buffer: the read bandwidth that a kernel streaming its data can reach on
this machine (the benchmarks' ceiling for the sparse echo-state kernel)."""
import numba
from numba import prange

from ..options import JIT


@numba.njit(parallel=True, cache=True, **JIT)
def read_sum(buf):
    """The sum of a 1-D float64 array, its chunks summed on all of numba's threads (vectorised:
    'reassoc' is on)."""
    total = 0.0
    for i in prange(buf.size):
        total += buf[i]
    return total
