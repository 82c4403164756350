"""LSTM recurrence (gates i, f, g, o).

act0 is the output activation applied to c_t, act1 the gate activation (i, f, o), act2 the
cell-input activation (g). Optional peepholes (ONNX: i and f see c_{t-1}, o sees c_t), an
optional projection h_t = R (o * act0(c_t)) (PyTorch ``proj_size``), and the ONNX options
``clip`` (gate pre-activations clipped to [-clip, clip]; c_t reaches act0 unclipped, as in
ONNX Runtime) and ``input_forget`` (f = 1 - i).

Each step runs panel by panel (``tiles``): a register tile of b + [x_t h_{t-1}] [W U]^T for a
few batch rows and one panel's units of all four gates, then, row by row, those units' gate
nonlinearities. That loop reads c_{t-1} where it is and writes c_t and h_t into stack buffers,
which LLVM knows alias nothing (no overlap checks), then copied where they belong. The copies
run over the panel's units as a compile-time constant (``units``): a few vector moves, where a
length known only at run time makes a call to memcpy, which costs more than the units'
arithmetic. The loop runs over the same number read at run time (``loop_units``): over a
constant 8 (float64) LLVM may unroll the loop before vectorising it, and then not vectorise it
at all. One batch row without a projection (B = 1: streaming, generation) runs ``lstm_row``,
the same steps without the bookkeeping of many rows.
"""
from rnnsim.kernels.cpu import rows, team, tiles
from rnnsim.kernels.cpu.rows import clipped

KERNELS = ("lstm_forward", "lstm_row")
GATES = 4
HALVES = 2  # sub-panels per panel: P packed with gates=4, nr=8
PROJECTION_HALVES = 4  # R packed with gates=1, nr=4


def lstm_unit(zi, zf, zg, zo, pi, pf, po, c, clip, input_forget, real, p0, p1, p2):
    """One unit's step, (c_t, h_t before a projection), from its gates' pre-activations
    zi..zo (W x_t + U h_{t-1} + b), its peepholes pi, pf, po and c = c_{t-1}; ``real`` is the
    kernel's float type. Branch-free (f is computed even where ``input_forget`` replaces it),
    so that a loop over units vectorises."""
    one = real(1.0)
    i = real(act1(clipped(zi + pi * c, clip), *p1))  # noqa: F821 (bound by codegen)
    f = real(act1(clipped(zf + pf * c, clip), *p1))  # noqa: F821
    f = one - i if input_forget else f
    c = f * c + i * real(act2(clipped(zg, clip), *p2))  # noqa: F821
    o = real(act1(clipped(zo + po * c, clip), *p1))  # noqa: F821
    return c, o * real(act0(c, *p0))  # noqa: F821


EQUATIONS = (lstm_unit,)


def lstm_forward(first, last, member, members, sync, x, P, bias, R, R_bias, peep, h, c, out,
                 lengths, reverse, clip, input_forget, H, H_next, cs, Y, p0, p1, p2):
    """Run batch rows first..last-1, the panels of ``member`` of ``members`` (``team``).

    x : (T, B, k) inputs; P : [W U] (4p, k + q) packed with gates=4, nr=8 (``tiles``), q = p or
    proj_size; bias : (4, pp) biases, pp = p padded to whole panels (``tiles.padded``); R : the
    projection (q, p) packed with gates=1, nr=4 (0 panels without); R_bias : (1, q padded to
    R's panels) zeros; peep : (3, pp) peepholes for i, f, o (zeros without); h : (B, q) and
    c : (B, p) initial states, overwritten with the final ones; out : (T, B, q) receives h_t,
    zero past a row's length; lengths : (B,) int64 steps of each row (<= T); reverse : run
    each row from its last step down to 0; clip : np.inf for none (clipping to inf changes
    nothing, NaN included); input_forget : couple the forget gate to the input gate; sync :
    (1,) int64 zeros shared by the members; H, H_next : (B, k + (pp or q with R)) zeros, the
    rows' operands (``rows``); cs : (B, pp) zeros, the cell states; Y : (B or 0, pp)
    o * act0(c) before the projection; p0, p1, p2 :
    the activations' parameters.
    """
    k = x.shape[2]
    p = c.shape[1]
    q = h.shape[1]
    units = HALVES * tiles.vector_lanes(x)  # P.shape[2] // GATES, a compile-time constant
    loop_units = P.shape[2] // GATES  # the same, unknown to LLVM (see the module docstring)
    outputs = R.shape[2]
    project = R.shape[0] > 0
    real = x.dtype.type  # activations' results and constants in the kernel's precision
    lead = member == 0
    pan_lo, pan_hi = team.share(P.shape[0], members, member)
    # the member's outputs: those of its panels of R with a projection, else of P
    out_lo, out_hi = team.share(R.shape[0], members, member) if project else (pan_lo, pan_hi)
    width = outputs if project else units
    out_lo, out_hi = min(out_lo * width, q), min(out_hi * width, q)
    G = tiles.scratch(x, (GATES, tiles.ROWS, units))  # a panel's tile
    GR = tiles.scratch(x, (1, tiles.ROWS, outputs))  # a tile of the projection
    c_next = tiles.scratch(x, (units,))  # a row's c_t
    h_next = tiles.scratch(x, (units,))  # and o * act0(c_t)
    if lead:
        rows.start(h, out, lengths, first, last, H, k)
        rows.load_inputs(x, H, lengths, first, last, rows.step0(), reverse)
        for b in range(first, last):
            rows.copy(c[b], cs[b, :p])
    phase = team.meet(sync, members, rows.step0())
    steps = rows.longest(lengths, first, last)
    for s in range(steps):
        for pan in range(pan_lo, pan_hi):
            u0 = pan * units
            pi, pf, po = peep[0, u0:u0 + units], peep[1, u0:u0 + units], peep[2, u0:u0 + units]
            b = first
            while b < last:
                tile = tiles.panel_tile(H, b, last, P, pan, bias, G, k, GATES, HALVES, 1, -1)
                for m in range(tile):
                    row = b + m
                    if s >= lengths[row]:
                        continue
                    c_row = cs[row, u0:u0 + units]
                    h_row = Y[row, u0:u0 + units] if project else \
                        H_next[row, k + u0:k + u0 + units]
                    for j in range(loop_units):  # branch-free, so that it vectorises
                        c_next[j], h_next[j] = lstm_unit(
                            G[0, m, j], G[1, m, j], G[2, m, j], G[3, m, j], pi[j], pf[j], po[j],
                            c_row[j], clip, input_forget, real, p0, p1, p2)
                    rows.copy(c_next, c_row)
                    rows.copy(h_next, h_row)
                b += tile
        if project:
            phase = team.meet(sync, members, phase)
            for pan in range(*team.share(R.shape[0], members, member)):
                o0 = pan * outputs
                some = min(outputs, q - o0)
                b = first
                while b < last:
                    tile = tiles.panel_tile(Y, b, last, R, pan, R_bias, GR, 0, 1,
                                            PROJECTION_HALVES, PROJECTION_HALVES, -1)
                    for m in range(tile):
                        rows.copy(GR[0, m, :some], H_next[b + m, k + o0:k + o0 + some])
                    b += tile
        if lead and s + 1 < steps:
            rows.load_inputs(x, H_next, lengths, first, last, s + 1, reverse)
        rows.finish_step(H, H_next, out, lengths, first, last, s, reverse, k, out_lo, out_hi)
        phase = team.meet(sync, members, phase)
        H, H_next = H_next, H
    if lead:
        rows.store_states(H, h, first, last, k)
        for b in range(first, last):
            rows.copy(cs[b, :p], c[b])


def lstm_row(first, last, member, members, sync, x, P, bias, R, R_bias, peep, h, c, out,
             lengths, reverse, clip, input_forget, H, H_next, cs, Y, p0, p1, p2):
    """``lstm_forward`` (the same arguments, the same bits) for the one batch row ``first``
    without a projection (R, R_bias and Y unused): each step, each of the member's panels'
    tile and gates, with no per-row bookkeeping."""
    k = x.shape[2]
    p = c.shape[1]
    q = h.shape[1]
    units = HALVES * tiles.vector_lanes(x)
    loop_units = P.shape[2] // GATES
    real = x.dtype.type
    b = first
    lead = member == 0
    pan_lo, pan_hi = team.share(P.shape[0], members, member)
    out_lo, out_hi = min(pan_lo * units, q), min(pan_hi * units, q)
    G = tiles.scratch(x, (GATES, 1, units))
    c_next = tiles.scratch(x, (units,))
    h_next = tiles.scratch(x, (units,))
    if lead:
        rows.start(h, out, lengths, b, b + 1, H, k)
        rows.load_inputs(x, H, lengths, b, b + 1, rows.step0(), reverse)
        rows.copy(c[b], cs[b, :p])
    phase = team.meet(sync, members, rows.step0())
    steps = lengths[b]
    for s in range(steps):
        for pan in range(pan_lo, pan_hi):
            tiles.tile_matmul(H, b, P, pan, bias, G, 1, GATES, HALVES, 0, HALVES, k, -1)
            u0 = pan * units
            c_row = cs[b, u0:u0 + units]
            h_row = H_next[b, k + u0:k + u0 + units]
            pi, pf, po = peep[0, u0:u0 + units], peep[1, u0:u0 + units], peep[2, u0:u0 + units]
            for j in range(loop_units):
                c_next[j], h_next[j] = lstm_unit(G[0, 0, j], G[1, 0, j], G[2, 0, j], G[3, 0, j],
                                                 pi[j], pf[j], po[j], c_row[j], clip,
                                                 input_forget, real, p0, p1, p2)
            rows.copy(c_next, c_row)
            rows.copy(h_next, h_row)
        if lead and s + 1 < steps:
            rows.copy(x[rows.step_time(steps, s + 1, reverse), b], H_next[b, :k])
        rows.copy(H_next[b, k + out_lo:k + out_hi],
                  out[rows.step_time(steps, s, reverse), b, out_lo:out_hi])
        phase = team.meet(sync, members, phase)
        H, H_next = H_next, H
    if lead:
        rows.store_states(H, h, b, b + 1, k)
        rows.copy(cs[b, :p], c[b])
