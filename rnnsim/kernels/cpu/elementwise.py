"""Apply one activation to every element of an array."""
from numba import prange

KERNELS = ("apply_activation",)


def apply_activation(x, out, p0):
    """out[i] = act0(x[i], *p0) for 1-D contiguous x and out of equal size."""
    for i in prange(x.size):
        out[i] = act0(x[i], *p0)  # noqa: F821 (bound by codegen)
