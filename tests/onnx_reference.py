"""ONNX's RNN/LSTM/GRU operators in plain NumPy: the spec's gate orders (LSTM i, o, f, c; GRU
z, r, h), biases and peepholes mapped here, written from the spec and independently of
rnnsim's mapping, onto the one reference per cell in ``reference``; ONNX Runtime's
conventions where the spec leaves room
(activation_alpha/beta consumed in list order over all functions with its defaults, zero
outputs past ``sequence_lens``, zero final states for a length-0 sequence). The tests check it
against ONNX Runtime in float32 and use it for what ONNX Runtime does not run (float64,
layout=1).
"""
import numpy as np

import reference

FUNCTIONS = {
    "relu": lambda x, a, b: np.maximum(x, 0),
    "tanh": lambda x, a, b: np.tanh(x),
    "sigmoid": lambda x, a, b: 1 / (1 + np.exp(-x)),
    "affine": lambda x, a, b: a * x + b,
    "leakyrelu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "thresholdedrelu": lambda x, a, b: np.where(x > a, x, 0),
    "scaledtanh": lambda x, a, b: a * np.tanh(b * x),
    "hardsigmoid": lambda x, a, b: np.clip(a * x + b, 0, 1),
    "elu": lambda x, a, b: np.where(x >= 0, x, a * (np.exp(np.minimum(x, 0)) - 1)),
    "softsign": lambda x, a, b: x / (1 + np.abs(x)),
    "softplus": lambda x, a, b: np.log1p(np.exp(x)),
}
TAKES = {"affine": "ab", "leakyrelu": "a", "thresholdedrelu": "a", "scaledtanh": "ab",
         "hardsigmoid": "ab", "elu": "a"}
DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"],
                       "GRU": ["Sigmoid", "Tanh"]}
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


def functions(names, alphas, betas):
    """Each name bound to its alpha and beta, taken from the lists in order."""
    alphas, betas = list(alphas), list(betas)
    bound = []
    for name in names:
        key = name.lower()
        a, b = DEFAULTS.get(key, (0.0, 0.0))
        if "a" in TAKES.get(key, ""):
            a = alphas.pop(0) if alphas else a
        if "b" in TAKES.get(key, ""):
            b = betas.pop(0) if betas else b
        bound.append(lambda x, f=FUNCTIONS[key], a=a, b=b: f(x, a, b))
    return bound


def _blocks(a, order):
    """The gate blocks of ``a`` (stacked along its first axis) put in ``order``."""
    parts = np.split(a, len(order))
    return np.concatenate([parts[k] for k in order])


def _cell(op, attrs, W, R, Wb, Rb, P, f, g, h, clip, reverse):
    """One direction of the node as ``(x, h0, c0) -> (Y, last h, last c)`` on ``reference``:
    ONNX's LSTM gates i, o, f, c become i, f, g, o (peepholes i, o, f become i, f, o) and its
    GRU gates z, r, h become r, z, n, with the recurrent bias of h kept apart."""
    if op == "RNN":
        def run(x, h0, c0):
            out = reference.elman(x, W, R, Wb + Rb, h0, act=f, reverse=reverse, clip=clip)
            return out[:, 0], out[-1 if not reverse else 0], c0
    elif op == "LSTM":
        order = (0, 2, 3, 1)
        Wp, Rp, b = _blocks(W, order), _blocks(R, order), _blocks(Wb + Rb, order)
        pi, po, pf = np.split(P, 3)
        peep = np.stack([pi, pf, po])

        def run(x, h0, c0):
            out, c = reference.lstm(x, Wp, Rp, b, h0, c0, P=peep, act=h, gate=f, cell=g,
                                    reverse=reverse, clip=clip,
                                    input_forget=bool(attrs.get("input_forget")))
            return out[:, 0], out[-1 if not reverse else 0], c
    else:
        order = (1, 0, 2)
        Wp, Rp = _blocks(W, order), _blocks(R, order)
        b = _blocks(Wb, order) + np.concatenate([_blocks(Rb, order)[:-len(Rb) // 3],
                                                 np.zeros(len(Rb) // 3, Rb.dtype)])
        bn = np.split(Rb, 3)[2]

        def run(x, h0, c0):
            out = reference.gru(x, Wp, Rp, b, bn, h0, reset_after=bool(
                attrs.get("linear_before_reset")), act=g, gate=f, reverse=reverse, clip=clip)
            return out[:, 0], out[-1 if not reverse else 0], c0
    return run


def run(op, attrs, X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None):
    """Y, Y_h (and Y_c for LSTM) of one ONNX node, in the node's layout."""
    layout = attrs.get("layout", 0)
    if layout:
        X = X.transpose(1, 0, 2)
        initial_h = None if initial_h is None else initial_h.transpose(1, 0, 2)
        initial_c = None if initial_c is None else initial_c.transpose(1, 0, 2)
    T, batch = X.shape[:2]
    D, p = W.shape[0], R.shape[2]
    G = GATES[op]
    direction = attrs.get("direction", "forward")
    names = list(attrs.get("activations", DEFAULT_ACTIVATIONS[op] * D))
    if op == "RNN" and D == 1 and len(names) == 2:
        names = names[:1]
    acts = functions(names, attrs.get("activation_alpha", []), attrs.get("activation_beta", []))
    per = len(acts) // D
    clip = attrs.get("clip") or None
    lens = np.full(batch, T) if sequence_lens is None else sequence_lens
    B = np.zeros((D, 2 * G * p), X.dtype) if B is None else B
    P = np.zeros((D, 3 * p), X.dtype) if P is None else P
    h0 = np.zeros((D, batch, p), X.dtype) if initial_h is None else initial_h
    c0 = np.zeros((D, batch, p), X.dtype) if initial_c is None else initial_c
    Y = np.zeros((T, D, batch, p), X.dtype)
    Y_h = np.zeros((D, batch, p), X.dtype)
    Y_c = np.zeros((D, batch, p), X.dtype)
    for d in range(D):
        f, g, h = (acts[d * per:(d + 1) * per] + [None, None])[:3]
        reverse = d == 1 or direction == "reverse"
        Wb, Rb = B[d, :G * p], B[d, G * p:]
        cell = _cell(op, attrs, W[d], R[d], Wb, Rb, P[d], f, g, h, clip, reverse)
        for row in range(batch):
            L = lens[row]
            if L == 0:
                continue
            x = X[:L, row:row + 1]
            Y[:L, d, row], H, C = cell(x, h0[d, row:row + 1], c0[d, row:row + 1])
            Y_h[d, row], Y_c[d, row] = H[0], C[0]
    outputs = [Y, Y_h] + ([Y_c] if op == "LSTM" else [])
    if layout:
        outputs = [outputs[0].transpose(2, 0, 1, 3)] + [v.transpose(1, 0, 2) for v in outputs[1:]]
    return outputs
