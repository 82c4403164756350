"""Plain-NumPy references for the kernels, written from the equations, not from the kernels:
one per cell (elman, lstm, gru), in PyTorch's gate order, with the ONNX options (clip,
input_forget, peepholes). Every test compares against these; ``onnx_reference`` maps ONNX's
gate orders onto them."""
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


sigmoid, tanh = ACTIVATIONS["sigmoid"], np.tanh


def _steps(T: int, reverse: bool):
    return range(T - 1, -1, -1) if reverse else range(T)


def _clipped(z, clip):
    return z if clip is None else np.clip(z, -clip, clip)


def elman(x, W, U, b, h0, act=np.tanh, reverse=False, clip=None):
    """a_t = act(W x_t + U a_{t-1} + b) for x (T, B, k); returns (T, B, p)."""
    T = x.shape[0]
    h = h0
    out = np.empty((T, x.shape[1], W.shape[0]), dtype=np.result_type(x, W))
    for t in _steps(T, reverse):
        h = act(_clipped(x[t] @ W.T + h @ U.T + b, clip))
        out[t] = h
    return out


def lstm(x, W, U, b, h0, c0, P=None, R=None, act=tanh, gate=sigmoid, cell=tanh,
         reverse=False, clip=None, input_forget=False):
    """Gates i, f, g, o for x (T, B, k); peepholes P (3, p) for i, f (on c_{t-1}) and o (on
    c_t); projection h_t = R (o act(c_t)); ``clip`` bounds the gates' pre-activations (not
    c_t), ``input_forget`` couples f = 1 - i. Returns the outputs (T, B, q) and the last c."""
    p = W.shape[0] // 4
    h, c = h0, c0
    P = np.zeros((3, p)) if P is None else P
    out = np.empty((len(x), x.shape[1], U.shape[1]), dtype=np.result_type(x, W))
    for t in _steps(len(x), reverse):
        z = x[t] @ W.T + h @ U.T + b
        i = gate(_clipped(z[:, :p] + P[0] * c, clip))
        f = 1 - i if input_forget else gate(_clipped(z[:, p:2 * p] + P[1] * c, clip))
        c = f * c + i * cell(_clipped(z[:, 2 * p:3 * p], clip))
        h = gate(_clipped(z[:, 3 * p:] + P[2] * c, clip)) * act(c)
        if R is not None:
            h = h @ R.T
        out[t] = h
    return out, c


def gru(x, W, U, b, bn, h0, reset_after=True, act=tanh, gate=sigmoid, reverse=False,
        clip=None):
    """Gates r, z, n for x (T, B, k); bn is the recurrent bias of n (PyTorch's b_hn), inside
    r * (...) with ``reset_after``, else after U_n (r h). Returns (T, B, p)."""
    p = W.shape[0] // 3
    h = h0
    out = np.empty((len(x), x.shape[1], p), dtype=np.result_type(x, W))
    for t in _steps(len(x), reverse):
        xp = x[t] @ W.T + b
        r = gate(_clipped(xp[:, :p] + h @ U[:p].T, clip))
        z = gate(_clipped(xp[:, p:2 * p] + h @ U[p:2 * p].T, clip))
        if reset_after:
            n = act(_clipped(xp[:, 2 * p:] + r * (h @ U[2 * p:].T + bn), clip))
        else:
            n = act(_clipped(xp[:, 2 * p:] + (r * h) @ U[2 * p:].T + bn, clip))
        h = (1 - z) * n + z * h
        out[t] = h
    return out
