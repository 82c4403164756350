"""The input projections of all steps in one launch: out[t, b] = W_m x[t, b] + bias_m."""
from numba import cuda

KERNELS = ("project",)


def project(x, Wt, bias, member, out):
    """out[t, b, i] = bias[m, i] + sum_c x[t, b, c] * Wt[m, c, i], with m = member[b].

    x : (T, B, k); Wt : (M, k, G), the weights transposed so that a warp (consecutive i) reads
    consecutive addresses; bias : (M, G); member : (B,) int64 (one member per ensemble row, or
    all zeros); out : (T, B, G). Launch: blockDim.x threads over i, gridDim.y over groups of
    ROWS steps (each thread computes ROWS steps, reading each weight once), gridDim.z over b;
    the grid strides over whatever it does not cover.
    """
    T, B, k = x.shape
    G = out.shape[2]
    acc = cuda.local.array(ROWS, out.dtype)  # noqa: F821 (bound per variant)
    i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if i >= G:
        return
    for b in range(cuda.blockIdx.z, B, cuda.gridDim.z):
        m = member[b]
        for t0 in range(cuda.blockIdx.y * ROWS, T, cuda.gridDim.y * ROWS):  # noqa: F821
            for r in range(ROWS):  # noqa: F821
                acc[r] = bias[m, i]
            for c in range(k):
                w = Wt[m, c, i]
                for r in range(ROWS):  # noqa: F821
                    if t0 + r < T:
                        acc[r] += w * x[t0 + r, b, c]
            for r in range(ROWS):  # noqa: F821
                if t0 + r < T:
                    out[t0 + r, b, i] = acc[r]
