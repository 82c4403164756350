"""The CUDA kernel tests run in their own pytest process, started by ``tests/test_cuda.py``.

numba reads NUMBA_ENABLE_CUDASIM when it is imported, so the simulator cannot be switched on
inside the main test process. ``test_cuda.py`` runs this folder with RNNSIM_CUDA_TESTS set to
``simulator`` (and NUMBA_ENABLE_CUDASIM=1) everywhere, and to ``gpu`` where a GPU is present.
By hand: ``RNNSIM_CUDA_TESTS=simulator NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda``.
"""
import os

import pytest

MODE = os.environ.get("RNNSIM_CUDA_TESTS")


def pytest_ignore_collect(collection_path, config):
    """Leave this folder to the runs that test_cuda.py starts."""
    return MODE is None


def pytest_configure(config):
    if MODE is None:
        return
    from rnnsim import device

    if MODE not in ("simulator", "gpu") or (MODE == "simulator") != device.simulated():
        raise pytest.UsageError("RNNSIM_CUDA_TESTS=simulator needs NUMBA_ENABLE_CUDASIM=1, "
                                "RNNSIM_CUDA_TESTS=gpu needs it unset.")
