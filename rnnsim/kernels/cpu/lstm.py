"""LSTM recurrence (gates i, f, g, o).

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t), an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``), and the ONNX options
``clip`` (gate pre-activations and the c_t fed to act0 clipped to [-clip, clip]) and
``input_forget`` (f = 1 - i).

Each step runs panel by panel (``tiles``): a register tile of [x_t h_{t-1}] [W U]^T for a few
batch rows and one panel's units of all four gates, then those units' gate nonlinearities.
"""
from rnnsim.kernels.cpu import rows, tiles

KERNELS = ("lstm_forward",)
GATES = 4
HALVES = 2  # sub-panels per panel: P packed with gates=4, nr=8
PROJECTION_HALVES = 4  # R packed with gates=1, nr=4


def lstm_forward(first, last, x, P, bias, R, peep, h, c, out, lengths, reverse, clip,
                 input_forget, p0, p1, p2):
    """Run the recurrence for batch rows first..last-1.

    x : (T, B, k) inputs; P : [W U] (4p, k + q) packed with gates=4, nr=8 (``tiles``), q = p or
    proj_size; bias : (4, pp) biases, pp = p padded to whole panels (``tiles.padded``); R : the
    projection (q, p) packed with gates=1, nr=4 (0 panels without); peep : (3, pp) peepholes
    for i, f, o (zeros without); h : (B, q) and c : (B, p) initial states, overwritten with
    the final ones; out : (T, B, q) receives h_t, zero past a row's length; lengths : (B,)
    int64 steps of each row (<= T); reverse : run each row from its last step down to 0;
    clip : np.inf for none (clipping to inf changes nothing, NaN included); input_forget :
    couple the forget gate to the input gate; p0, p1, p2 : the activations' parameters.
    """
    T, B, k = x.shape
    p = c.shape[1]
    q = h.shape[1]
    padded = bias.shape[1]
    units = P.shape[2] // GATES
    one = x.dtype.type(1.0)  # a literal 1.0 would compute float32 in float64
    outputs = R.shape[2]
    project = R.shape[0] > 0
    n = last - first
    width = q if project else padded
    H = rows.buffer(x, n, k + width)
    H_next = rows.buffer(x, n, k + width)
    cs = rows.buffer(x, n, padded)
    for r in range(n):
        rows.copy(c[first + r], cs[r, :p])
    Y = rows.buffer(x, n if project else 0, padded)
    C = tiles.scratch(x, tiles.ROWS, P.shape[2])  # a panel's tile; also R's, narrower
    results = tiles.scratch(x, 2, units)
    steps = rows.start_chunk(h, out, lengths, first, H, k)
    for s in range(steps):
        rows.load_inputs(x, H, lengths, first, s, reverse)
        for pan in range(P.shape[0]):
            u0 = pan * units
            r = 0
            while r < n:
                tile = tiles.panel_tile(H, r, n, P, pan, C, k, GATES, HALVES, 1, -1)
                for m in range(tile):
                    if s >= lengths[first + r + m]:
                        continue
                    c_row = cs[r + m, u0:u0 + units]
                    for i in range(units):  # branch-free, so that it vectorises
                        ci = c_row[i]
                        gi = rows.clipped(C[m, i] + bias[0, u0 + i] + peep[0, u0 + i] * ci,
                                          clip)
                        gf = rows.clipped(C[m, units + i] + bias[1, u0 + i]
                                          + peep[1, u0 + i] * ci, clip)
                        gg = rows.clipped(C[m, 2 * units + i] + bias[2, u0 + i], clip)
                        ai = act1(gi, *p1)  # noqa: F821 (bound by codegen)
                        af = act1(gf, *p1)  # noqa: F821
                        af = one - ai if input_forget else af
                        ci = af * ci + ai * act2(gg, *p2)  # noqa: F821
                        go = rows.clipped(C[m, 3 * units + i] + bias[3, u0 + i]
                                          + peep[2, u0 + i] * ci, clip)
                        results[0, i] = ci
                        results[1, i] = act1(go, *p1) * act0(rows.clipped(ci, clip), *p0)  # noqa: F821
                    rows.copy(results[0], c_row)
                    rows.copy(results[1], Y[r + m, u0:u0 + units] if project
                              else H_next[r + m, k + u0:k + u0 + units])
                r += tile
        if project:
            for pan in range(R.shape[0]):
                o0 = pan * outputs
                some = outputs if q - o0 > outputs else q - o0
                r = 0
                while r < n:
                    tile = tiles.panel_tile(Y, r, n, R, pan, C, 0, 1, PROJECTION_HALVES,
                                            PROJECTION_HALVES, -1)
                    for m in range(tile):
                        rows.copy(C[m, :some], H_next[r + m, k + o0:k + o0 + some])
                    r += tile
        rows.finish_step(H, H_next, out, lengths, first, s, reverse, k)
        H, H_next = H_next, H
    rows.store_states(H, h, first, k)
    for r in range(n):
        rows.copy(cs[r, :p], c[first + r])
