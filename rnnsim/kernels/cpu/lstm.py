"""LSTM recurrence (gates i, f, g, o), W x_t + b precomputed for all steps.

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t), an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``), and the ONNX options
``clip`` (gate pre-activations and the c_t fed to act0 clipped to [-clip, clip]) and
``input_forget`` (f = 1 - i).
"""
import numpy as np
from numba import prange

KERNELS = ("lstm_forward",)


def lstm_forward(xp, U, P, R, h, c, out, lengths, reverse, clip, input_forget, p0, p1, p2):
    """Run the recurrence for every batch row.

    xp : (T, B, 4p) input projections; U : (4p, q) recurrent weights, q = p or proj_size;
    P : (3, p) peepholes for i, f, o, or (0, p) without; R : (q, p) projection, or (0, p)
    without; h : (B, q) and c : (B, p) initial states, overwritten with the final ones;
    out : (T, B, q) receives h_t, zero past a row's length; lengths : (B,) int64 steps of each
    row (<= T); reverse : run each row from its last step down to 0; clip : np.inf for none;
    input_forget : couple the forget gate to the input gate; p0, p1, p2 : the activations'
    parameters.
    """
    T, B, G = xp.shape
    p = G // 4
    q = U.shape[1]
    peephole = P.shape[0] > 0
    project = R.shape[0] > 0
    clipping = clip < np.inf
    for b in prange(B):
        hb = h[b]
        cb = c[b]
        L = lengths[b]
        for t in range(L, T):
            out[t, b, :] = 0.0
        z = xp[0, b].copy()
        y = cb.copy()
        for s in range(L):
            t = L - 1 - s if reverse else s
            for i in range(G):
                acc = xp[t, b, i]
                for j in range(q):
                    acc += U[i, j] * hb[j]
                z[i] = acc
            for i in range(p):
                gi = z[i]
                gf = z[p + i]
                gg = z[2 * p + i]
                if peephole:
                    gi += P[0, i] * cb[i]
                    gf += P[1, i] * cb[i]
                if clipping:
                    gi = min(max(gi, -clip), clip)
                    gf = min(max(gf, -clip), clip)
                    gg = min(max(gg, -clip), clip)
                ai = act1(gi, *p1)  # noqa: F821 (bound by codegen)
                af = 1.0 - ai if input_forget else act1(gf, *p1)  # noqa: F821
                ci = af * cb[i] + ai * act2(gg, *p2)  # noqa: F821
                go = z[3 * p + i]
                if peephole:
                    go += P[2, i] * ci
                cb[i] = ci
                if clipping:
                    go = min(max(go, -clip), clip)
                    ci = min(max(ci, -clip), clip)
                y[i] = act1(go, *p1) * act0(ci, *p0)  # noqa: F821
            if project:
                for i in range(q):
                    acc = R[i, 0] * y[0]
                    for j in range(1, p):
                        acc += R[i, j] * y[j]
                    hb[i] = acc
            else:
                for i in range(p):
                    hb[i] = y[i]
            for i in range(q):
                out[t, b, i] = hb[i]
