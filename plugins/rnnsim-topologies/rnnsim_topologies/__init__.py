"""Recurrent-matrix topologies, registered through the ``register_initializers`` hook.

Each returns a square (units x units) matrix; combine with ``spectral_radius`` in the config
to scale it: ``recurrent: {name: small_world, neighbours: 4, spectral_radius: 0.9}``.
"""
import numpy as np

import rnnsim


def _square(shape) -> int:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"a topology needs a square matrix, not shape {tuple(shape)}")
    return shape[0]


def small_world(shape, rng, dtype, neighbours=4, rewire=0.1, std=1.0):
    """Watts-Strogatz: a ring lattice to ``neighbours`` nearest units, each link rewired to a
    random unit with probability ``rewire``; normal weights on the links."""
    n = _square(shape)
    w = np.zeros((n, n))
    for i in range(n):
        for offset in range(1, neighbours // 2 + 1):
            for j in ((i + offset) % n, (i - offset) % n):
                if rng.random() < rewire:
                    j = int(rng.integers(n))
                w[i, j] = rng.normal(0.0, std)
    return w.astype(dtype)


def ring(shape, rng, dtype, weight=1.0):
    """Unit i feeds unit i+1 (mod n) with ``weight``: a cycle."""
    n = _square(shape)
    w = np.zeros((n, n), dtype=dtype)
    w[(np.arange(n) + 1) % n, np.arange(n)] = weight
    return w


def block_diagonal(shape, rng, dtype, blocks=4, std=1.0):
    """``blocks`` independent dense normal blocks on the diagonal: separate sub-reservoirs."""
    n = _square(shape)
    w = np.zeros((n, n))
    edges = np.linspace(0, n, blocks + 1).astype(int)
    for start, stop in zip(edges[:-1], edges[1:]):
        w[start:stop, start:stop] = rng.normal(0.0, std, size=(stop - start, stop - start))
    return w.astype(dtype)


@rnnsim.hookimpl
def register_initializers(register):
    register("small_world", small_world, description="Watts-Strogatz ring lattice, rewired")
    register("ring", ring, description="cycle i -> i+1 with one weight")
    register("block_diagonal", block_diagonal, description="independent dense diagonal blocks")
