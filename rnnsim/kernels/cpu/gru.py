"""GRU recurrence (gates r, z, n).

act0 is the candidate activation (n), act1 the gate activation (r, z). With ``reset_after``
(PyTorch, ONNX linear_before_reset=1) n = act0(W_n x + b_n + r * (U_n h + bn)); without it the
reset is applied before the recurrent matmul: n = act0(W_n x + b_n + U_n (r * h) + bn). With
``clip`` the pre-activations of r, z and n are clipped to [-clip, clip] (ONNX).

Each step runs panel by panel (``tiles``): a register tile of b + [x_t h_{t-1}] [W U]^T for a
few batch rows and one panel's units of the gates, then, row by row, those units'
nonlinearities into a stack buffer, copied to h_t (or z and r * h_{t-1}), as in ``lstm``.
With ``reset_after`` the tile keeps n's input and recurrent parts apart; without it a second
pass tiles [x_t, r * h_{t-1}] with [W_n U_n].
"""
from rnnsim.kernels.cpu import rows, team, tiles
from rnnsim.kernels.cpu.rows import clipped

KERNELS = ("gru_forward",)
HALVES = 2  # sub-panels per panel: P packed with gates=3 (reset_after) or 2 (r, z), nr=6 or 4
N_GATE = 2  # with reset_after, gate n's recurrent part goes to an extra gate of the tile
# reset_after's tiles: both sub-panels per call with 32 vector registers (4 rows x 6 vectors,
# 24 accumulators live at a time; ~20% faster at (64,128,512) than one per call), else one
PER_CALL = 2 if tiles.VECTOR_REGISTERS >= 32 else 1


def gru_gates(zr, zz, clip, real, p1):
    """One unit's reset and update gates (r, z) from their pre-activations (``real``: the
    kernel's float type)."""
    return (real(act1(clipped(zr, clip), *p1)),  # noqa: F821 (bound by codegen)
            real(act1(clipped(zz, clip), *p1)))  # noqa: F821


def gru_state(zn, z, h, clip, real, p0):
    """One unit's h_t = (1 - z) n + z h_{t-1} = ``h``, n = act0(zn), from the candidate's
    pre-activation zn (the reset gate already applied)."""
    return (real(1.0) - z) * real(act0(clipped(zn, clip), *p0)) + z * h  # noqa: F821


EQUATIONS = (gru_gates, gru_state)


def gru_forward(first, last, member, members, sync, x, P, Pn, bias, bias_n, h, out, lengths,
                reset_after, reverse, clip, H, H_next, Z, RH, p0, p1):
    """Run batch rows first..last-1, the panels of ``member`` of ``members`` (``team``).

    x : (T, B, k) inputs; P : [W U] (3p, k + p) packed with gates=3, nr=6 with ``reset_after``,
    else the rows of r and z packed with gates=2, nr=4; Pn : the rows of n packed with gates=1,
    nr=2 without ``reset_after`` (0 panels with it); bias : (4, pp) the biases of r, z, n and
    the recurrent bias of n, pp = p padded to whole panels (``tiles.padded``); bias_n : (1, pp)
    both biases of n, for Pn; h : (B, p) initial states, overwritten with the final ones; out :
    (T, B, p) receives h_t, zero past a row's length; lengths : (B,) int64 steps of each row
    (<= T); reset_after : where the reset gate applies (see the module docstring); reverse :
    run each row from its last step down to 0; clip : np.inf for none; sync : (1,) int64 zeros
    shared by the members; H, H_next : (B, k + pp) zeros, the rows' operands (``rows``); Z :
    (B, pp) update gates and RH : (B, k + pp) [x_t, r * h_{t-1}] without ``reset_after``
    ((0, .) with it); p0, p1 : the activations' parameters.
    """
    k = x.shape[2]
    p = h.shape[1]
    gates = 3 if reset_after else 2
    units = HALVES * tiles.vector_lanes(x)  # P.shape[2] // gates, a compile-time constant
    loop_units = P.shape[2] // gates  # the same, unknown to LLVM (``lstm``'s docstring)
    real = x.dtype.type  # activations' results and constants in the kernel's precision
    lead = member == 0
    pan_lo, pan_hi = team.share(P.shape[0], members, member)
    out_lo, out_hi = min(pan_lo * units, p), min(pan_hi * units, p)
    G = tiles.scratch(x, (4, tiles.ROWS, units))  # a panel's tile: r, z, n (input), n (h)
    results = tiles.scratch(x, (2, units))  # a row's h_t, or z and r * h_{t-1}
    if lead:
        rows.start(h, out, lengths, first, last, H, k)
        rows.load_inputs(x, H, lengths, first, last, rows.step0(), reverse)
    phase = team.meet(sync, members, rows.step0())
    steps = rows.longest(lengths, first, last)
    for s in range(steps):
        for pan in range(pan_lo, pan_hi):
            u0 = pan * units
            b = first
            while b < last:
                if reset_after:
                    tile = tiles.panel_tile(H, b, last, P, pan, bias, G, k, 3, HALVES, PER_CALL,
                                            N_GATE)
                else:
                    tile = tiles.panel_tile(H, b, last, P, pan, bias, G, k, 2, HALVES, 2, -1)
                for m in range(tile):
                    row = b + m
                    if s >= lengths[row]:
                        continue
                    h_row = H[row, k + u0:k + u0 + units]
                    if reset_after:
                        for j in range(loop_units):  # branch-free, so that it vectorises
                            r, z = gru_gates(G[0, m, j], G[1, m, j], clip, real, p1)
                            results[0, j] = gru_state(G[2, m, j] + r * G[3, m, j], z,
                                                      h_row[j], clip, real, p0)
                        rows.copy(results[0], H_next[row, k + u0:k + u0 + units])
                    else:
                        for j in range(loop_units):
                            r, results[0, j] = gru_gates(G[0, m, j], G[1, m, j], clip, real, p1)
                            results[1, j] = r * h_row[j]
                        rows.copy(results[0], Z[row, u0:u0 + units])
                        rows.copy(results[1], RH[row, k + u0:k + u0 + units])
                b += tile
        if not reset_after:
            for b in range(first, last):  # the same values of x from every member
                rows.copy(H[b, :k], RH[b, :k])
            phase = team.meet(sync, members, phase)
            for pan in range(pan_lo, pan_hi):
                u0 = pan * units
                b = first
                while b < last:
                    tile = tiles.panel_tile(RH, b, last, Pn, pan, bias_n, G, k, 1, HALVES, 2, -1)
                    for m in range(tile):
                        row = b + m
                        if s >= lengths[row]:
                            continue
                        h_row, z_row = H[row, k + u0:k + u0 + units], Z[row, u0:u0 + units]
                        for j in range(loop_units):
                            results[0, j] = gru_state(G[0, m, j], z_row[j], h_row[j], clip,
                                                      real, p0)
                        rows.copy(results[0], H_next[row, k + u0:k + u0 + units])
                    b += tile
        if lead and s + 1 < steps:
            rows.load_inputs(x, H_next, lengths, first, last, s + 1, reverse)
        rows.finish_step(H, H_next, out, lengths, first, last, s, reverse, k, out_lo, out_hi)
        phase = team.meet(sync, members, phase)
        H, H_next = H_next, H
    if lead:
        rows.store_states(H, h, first, last, k)
