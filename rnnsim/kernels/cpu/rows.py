"""Batch-row bookkeeping shared by the recurrent kernels.

A kernel runs batch rows first..last-1 through the whole sequence (``cells.base.run_rows``
gives each thread its rows, or all threads the same rows and a share of the units: ``team``).
The rows live in two caller-allocated (B, k + width) buffers, the current and the next step's:
row b holds [x_t, h_{t-1}], the operand of the tiles (``tiles``), while the epilogue writes h_t
into the other buffer (width: q rounded up to whole panels, so that the epilogue runs whole
vectors). Row b runs ``lengths[b]`` steps; step s is at time ``step_time``. Copies are loops
(slice assignment compiles slowly) over slices (see ``copy``).
"""
import numba
import numpy as np

from ..options import JIT


@numba.njit(cache=True, **JIT)
def step_time(length, s, reverse):
    """The time index of step s of a row of ``length`` steps."""
    return length - 1 - s if reverse else s


@numba.njit(cache=True, **JIT)
def clipped(value, clip):
    """value clipped to [-clip, clip], NaN kept (two selects, no branch)."""
    value = value if not value < -clip else -clip
    return value if not value > clip else clip


@numba.njit(cache=True, **JIT)
def copy(source, target):
    """target[i] = source[i] for 1-D arrays of equal size. Copying between slices vectorises:
    indices from 0 need no check for negative values, unlike ``a[row, u0 + i]``. The loop
    runs over source's size: from a stack buffer (``tiles.scratch``) of a constant shape, a
    constant number of times, which LLVM compiles to a few vector moves (a copy of a length
    known only at run time becomes a call to memcpy)."""
    for i in range(source.size):
        target[i] = source[i]


@numba.njit(cache=True, **JIT)
def longest(lengths, first, last):
    """The steps of the longest of rows first..last-1."""
    steps = 0
    for b in range(first, last):
        if lengths[b] > steps:
            steps = lengths[b]
    return steps


@numba.njit(cache=True, **JIT)
def start(h, out, lengths, first, last, H, k):
    """Put the rows' initial states after their k input columns in H and zero their outputs
    past their lengths."""
    for b in range(first, last):
        copy(h[b], H[b, k:k + h.shape[1]])
        for t in range(lengths[b], out.shape[0]):
            out[t, b].fill(0.0)


@numba.njit(cache=True, **JIT)
def step0():
    """Step (and barrier) number 0 as an int64: passed as the literal 0 (or returned as it), it
    would compile ``load_inputs`` and ``team.meet`` once more, for that literal."""
    return np.int64(0)


@numba.njit(cache=True, **JIT)
def load_inputs(x, H, lengths, first, last, s, reverse):
    """Put x at step s into the first columns of the rows that run a step s."""
    for b in range(first, last):
        if s < lengths[b]:
            copy(x[step_time(lengths[b], s, reverse), b], H[b, :x.shape[2]])


@numba.njit(cache=True, **JIT)
def finish_step(H, H_next, out, lengths, first, last, s, reverse, k, lo, hi):
    """Write outputs lo..hi-1 of the step's rows that ran it; the others keep their state."""
    for b in range(first, last):
        if s < lengths[b]:
            copy(H_next[b, k + lo:k + hi], out[step_time(lengths[b], s, reverse), b, lo:hi])
        else:
            copy(H[b, k + lo:k + hi], H_next[b, k + lo:k + hi])


@numba.njit(cache=True, **JIT)
def store_states(H, h, first, last, k):
    """Copy the rows' final states out of H."""
    for b in range(first, last):
        copy(H[b, k:k + h.shape[1]], h[b])
