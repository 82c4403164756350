"""LSTM recurrence (gates i, f, g, o), W x_t + b precomputed for all steps.

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t) and an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``).
"""
from numba import prange

KERNELS = ("lstm_forward",)


def lstm_forward(xp, U, P, R, h0, c, out, reverse, p0, p1, p2):
    """Run the recurrence for every batch row.

    xp : (T, B, 4p) input projections; U : (4p, q) recurrent weights, q = p or proj_size;
    P : (3, p) peepholes for i, f, o, or (0, p) without; R : (q, p) projection, or (0, p)
    without; h0 : (B, q) initial hidden states; c : (B, p) initial cell states, overwritten with
    the final ones; out : (T, B, q) receives h_t; reverse : run from t = T-1 down to 0;
    p0, p1, p2 : the activations' parameters.
    """
    T, B, G = xp.shape
    p = G // 4
    q = U.shape[1]
    peephole = P.shape[0] > 0
    project = R.shape[0] > 0
    for b in prange(B):
        h = h0[b].copy()
        cb = c[b]
        z = xp[0, b].copy()
        y = cb.copy()
        for s in range(T):
            t = T - 1 - s if reverse else s
            for i in range(G):
                acc = xp[t, b, i]
                for j in range(q):
                    acc += U[i, j] * h[j]
                z[i] = acc
            for i in range(p):
                gi = z[i]
                gf = z[p + i]
                if peephole:
                    gi += P[0, i] * cb[i]
                    gf += P[1, i] * cb[i]
                ci = act1(gf, *p1) * cb[i] + act1(gi, *p1) * act2(z[2 * p + i], *p2)  # noqa: F821
                go = z[3 * p + i]
                if peephole:
                    go += P[2, i] * ci
                cb[i] = ci
                y[i] = act1(go, *p1) * act0(ci, *p0)  # noqa: F821 (bound by codegen)
            if project:
                for i in range(q):
                    acc = R[i, 0] * y[0]
                    for j in range(1, p):
                        acc += R[i, j] * y[j]
                    h[i] = acc
            else:
                for i in range(p):
                    h[i] = y[i]
            for i in range(q):
                out[t, b, i] = h[i]
