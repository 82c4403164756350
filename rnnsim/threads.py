"""The threads of BLAS (OpenBLAS, MKL, BLIS under NumPy) in the work rnnsim runs itself.

rnnsim runs work in parallel in its own way (the kernels' thread pool, ``numba`` threads, a
sweep's worker processes) and steps through dynamics in Python loops of small matrix products.
In either place a multithreaded BLAS only adds threads that wait on each other or oversubscribe
the cores (``rnnsim analyze configs/mackey_glass.yaml``: 37 s with OpenBLAS's default threads,
10 s with one, on 2 cores), so that work runs BLAS on one thread (threadpoolctl).
"""
from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=1)
def _controller(modules: int) -> ThreadpoolController:
    """The thread pools of the libraries loaded, found again only when ``modules`` (the
    count of imported modules) changes: looking them up reads the process's memory map
    (~2 ms, more than a sweep point's reservoir run), and an import (scipy) may bring a
    BLAS of its own."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """Limit BLAS to one thread: as a context (``with one_blas_thread():``), restoring the
    previous limits at its end, or, called alone, for the rest of the process (a worker)."""
    import threadpoolctl  # noqa: F401 (imported first, so that it is in the module count)

    return _controller(len(sys.modules)).limit(limits=1, user_api="blas")


def with_one_blas_thread(fn):
    """Decorate ``fn`` to run with BLAS on one thread (the libraries are looked up when it
    runs, not when the module defining it is imported)."""
    @functools.wraps(fn)
    def limited(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)

    return limited


__all__ = ["one_blas_thread", "with_one_blas_thread"]
