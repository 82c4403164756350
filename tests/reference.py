"""Plain-NumPy references for the kernels, written from the equations, not from the kernels."""
import numpy as np

ACTIVATIONS = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "hard_sigmoid": lambda x, a=0.2, b=0.5: np.clip(a * x + b, 0, 1),
    "leaky_relu": lambda x, a=0.01: np.where(x >= 0, x, a * x),
    "elu": lambda x, a=1.0: np.where(x >= 0, x, a * (np.exp(x) - 1)),
    # ONNX Selu defaults: the float32 values of the SELU constants.
    "selu": lambda x: 1.0507010221481323 * np.where(x > 0, x, 1.6732631921768188 * (np.exp(x) - 1)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "scaled_tanh": lambda x, a=1.0, b=1.0: a * np.tanh(b * x),
    "affine": lambda x, a=1.0, b=0.0: a * x + b,
    "thresholded_relu": lambda x, a=1.0: np.where(x > a, x, 0),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2))),
    "silu": lambda x: x / (1 + np.exp(-x)),
}


def elman(x, W, U, b, h0, act=np.tanh, reverse=False):
    """a_t = act(W x_t + U a_{t-1} + b) for x (T, B, k); returns (T, B, p)."""
    T = x.shape[0]
    h = h0
    out = np.empty((T, x.shape[1], W.shape[0]), dtype=np.result_type(x, W))
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        h = act(x[t] @ W.T + h @ U.T + b)
        out[t] = h
    return out
