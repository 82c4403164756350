"""Built-in reservoir initializers.

Recurrent initializers return a ``rnnsim.sparse.CSR`` (the network stores it dense or
sparse as the layer asks); input initializers return dense arrays. Every one draws only from
the ``rng`` it is given. Add ``spectral_radius: r`` to any square one to rescale it.
"""
import numpy as np

from ..hookspecs import hookimpl
from ..sparse import CSR

DISTRIBUTIONS = ("normal", "uniform", "bernoulli")


def _check(connectivity, distribution):
    if not 0.0 < connectivity <= 1.0:
        raise ValueError(f"connectivity must lie in (0, 1], got {connectivity}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution {distribution!r} is not one of "
                         f"{', '.join(DISTRIBUTIONS)}")


def _values(rng, size, distribution, scale):
    if distribution == "normal":
        return rng.normal(0.0, scale, size)
    if distribution == "uniform":
        return rng.uniform(-scale, scale, size)
    return np.where(rng.random(size) < 0.5, scale, -scale)


def sparse_random(shape, rng, dtype, connectivity=0.1, distribution="normal", scale=1.0):
    """round(connectivity * columns) nonzeros in every row, at random columns, in CSR form."""
    _check(connectivity, distribution)
    rows, cols = shape
    count = max(1, int(round(connectivity * cols)))
    columns = [np.sort(rng.choice(cols, count, replace=False)) for _ in range(rows)]
    values = _values(rng, (rows, count), distribution, scale)
    return CSR.from_rows(columns, list(values), shape, dtype)


def _square(shape, what):
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{what} builds square recurrent matrices, not shape {tuple(shape)}")
    return shape[0]


def _edges(shape, rows, cols, weights, dtype):
    order = np.lexsort((cols, rows))
    rows, cols, weights = rows[order], cols[order], np.asarray(weights, np.float64)[order]
    indptr = np.zeros(shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return CSR(weights.astype(dtype), cols.astype(np.int32), indptr, tuple(shape))


def cycle(shape, rng, dtype, weight=0.9):
    """Simple cycle reservoir: unit i feeds unit i+1 (mod N) with ``weight``."""
    n = _square(shape, "cycle")
    units = np.arange(n)
    return _edges(shape, (units + 1) % n, units, np.full(n, weight), dtype)


def cycle_jumps(shape, rng, dtype, weight=0.9, jump_weight=0.5, jump=3):
    """Cycle reservoir with jumps (Rodan and Tino): a cycle plus two-way links of
    ``jump_weight`` between units 0, jump, 2*jump, ..."""
    n = _square(shape, "cycle_jumps")
    if not 1 < jump < n:
        raise ValueError(f"jump must lie in (1, {n}), got {jump}")
    units = np.arange(n)
    hubs = np.arange(0, n - n % jump, jump)
    ends = (hubs + jump) % n
    pairs = {(int(a), int(b)) for a, b in zip(hubs, ends) if a != b}
    pairs |= {(b, a) for a, b in pairs}
    jr, jc = (np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2).T if pairs
              else (np.zeros(0, np.int64),) * 2)
    rows = np.concatenate([(units + 1) % n, jr])
    cols = np.concatenate([units, jc])
    return _edges(shape, rows, cols, np.r_[np.full(n, weight), np.full(jr.size, jump_weight)],
                  dtype)


def delay_line(shape, rng, dtype, weight=1.0):
    """Delay line: unit i feeds unit i+1 with ``weight``, no wrap-around (nilpotent)."""
    n = _square(shape, "delay_line")
    units = np.arange(n - 1)
    return _edges(shape, units + 1, units, np.full(n - 1, weight), dtype)


def _input(shape, rng, dtype, connectivity, distribution, scale):
    _check(connectivity, distribution)
    mask = rng.random(shape) < connectivity
    return np.where(mask, _values(rng, shape, distribution, scale), 0.0).astype(dtype)


def input_bernoulli(shape, rng, dtype, connectivity=1.0, scale=1.0):
    """Input weights ±scale, each entry present with probability ``connectivity``."""
    return _input(shape, rng, dtype, connectivity, "bernoulli", scale)


def input_uniform(shape, rng, dtype, connectivity=1.0, scale=1.0):
    """Input weights U(-scale, scale), each entry present with probability ``connectivity``."""
    return _input(shape, rng, dtype, connectivity, "uniform", scale)


INITIALIZERS = {
    "sparse_random": (sparse_random, "reservoir: connectivity fraction per row, "
                                     "normal/uniform/bernoulli values"),
    "cycle": (cycle, "reservoir: simple cycle of weight"),
    "cycle_jumps": (cycle_jumps, "reservoir: cycle plus two-way jumps"),
    "delay_line": (delay_line, "reservoir: chain i -> i+1 of weight"),
    "input_bernoulli": (input_bernoulli, "±scale with input connectivity"),
    "input_uniform": (input_uniform, "U(-scale, scale) with input connectivity"),
}


@hookimpl
def register_initializers(register):
    for name, (fn, description) in INITIALIZERS.items():
        register(name, fn, description=description)

