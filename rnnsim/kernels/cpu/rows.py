"""Batch-row bookkeeping shared by the recurrent kernels.

A kernel splits the batch rows into ``chunks`` (one per thread in the parallel variant, the
``prange`` running outside the time loop) and runs each chunk through the whole sequence.
The chunk's rows live in two (rows, k + width) buffers, the current and the next step's: row r
holds [x_t, h_{t-1}] of its batch row, the operand of the tiles (``tiles``), while the epilogue
writes h_t into the other buffer (width: q rounded up to whole panels, so that the epilogue
runs whole vectors). Row b runs ``lengths[b]`` steps; step s is at ``step_time``.
Slice assignment compiles slowly in numba, hence the explicit loops.
"""
import numba
import numpy as np

from ..options import JIT


@numba.njit(cache=True, **JIT)
def chunk_bounds(B, chunks, chunk):
    """First and one-past-last batch row of ``chunk``."""
    size = -(-B // chunks)
    first = chunk * size if chunk * size < B else B
    return first, first + size if first + size < B else B


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
    """target[i] = source[i] for 1-D arrays of equal size."""
    for i in range(target.size):
        target[i] = source[i]


@numba.njit(cache=True, **JIT)
def zero(a):
    """Set every element of a 2-D array to 0."""
    for r in range(a.shape[0]):
        for i in range(a.shape[1]):
            a[r, i] = 0.0


@numba.njit(cache=True, **JIT)
def buffer(like, rows, columns):
    """A zeroed (rows, columns) array of like's dtype."""
    out = np.empty((rows, columns), like.dtype)
    zero(out)
    return out


@numba.njit(cache=True, **JIT)
def start_chunk(h, out, lengths, first, H, k):
    """Put the rows' initial states after their k input columns in H (zeroed) and zero their
    outputs past their lengths; return the chunk's steps (its longest row)."""
    steps = 0
    for r in range(H.shape[0]):
        b = first + r
        copy(h[b], H[r, k:k + h.shape[1]])
        for t in range(lengths[b], out.shape[0]):
            for i in range(out.shape[2]):
                out[t, b, i] = 0.0
        if lengths[b] > steps:
            steps = lengths[b]
    return steps


@numba.njit(cache=True, **JIT)
def load_inputs(x, H, lengths, first, s, reverse):
    """Put x at step s into the first columns of the rows still running."""
    for r in range(H.shape[0]):
        b = first + r
        if s < lengths[b]:
            copy(x[step_time(lengths[b], s, reverse), b], H[r, :x.shape[2]])


@numba.njit(cache=True, **JIT)
def finish_step(H, H_next, out, lengths, first, s, reverse, k):
    """Write the step's outputs of the rows still running; the others keep their state."""
    for r in range(H.shape[0]):
        b = first + r
        if s < lengths[b]:
            copy(H_next[r, k:k + out.shape[2]], out[step_time(lengths[b], s, reverse), b])
        else:
            copy(H[r, k:], H_next[r, k:])


@numba.njit(cache=True, **JIT)
def store_states(H, h, first, k):
    """Copy the rows' final states out of H."""
    for r in range(H.shape[0]):
        copy(H[r, k:k + h.shape[1]], h[first + r])
