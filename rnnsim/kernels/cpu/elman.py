"""Elman recurrence a_t = act0(W x_t + b + U a_{t-1}).

Each step runs panel by panel (``tiles``): a register tile of b + [x_t a_{t-1}] [W U]^T for a
few batch rows and one panel's units, then their activation for all the tile's rows at once.
"""
from rnnsim.kernels.cpu import rows, team, tiles
from rnnsim.kernels.cpu.rows import clipped

KERNELS = ("elman_forward",)
HALVES = 4  # sub-panels per panel: P packed with gates=1, nr=4


def elman_unit(z, clip, real, p0):
    """One unit's a_t from its pre-activation z = W x_t + U a_{t-1} + b (``real``: the
    kernel's float type)."""
    return real(act0(clipped(z, clip), *p0))  # noqa: F821 (bound by codegen)


EQUATIONS = (elman_unit,)


def elman_forward(first, last, member, members, sync, x, P, bias, h, out, lengths, reverse,
                  clip, H, H_next, p0):
    """Run batch rows first..last-1, the panels of ``member`` of ``members`` (``team``).

    x : (T, B, k) inputs; P : [W U] (p, k + p) packed with gates=1, nr=4 (``tiles``);
    bias : (1, pp) biases, pp = p padded to whole panels (``tiles.padded``); h : (B, p) initial
    states, overwritten with the final ones; out : (T, B, p) receives a_t, zero past a row's
    length; lengths : (B,) int64 steps of each row (<= T); reverse : run each row from its last
    step down to 0; clip : pre-activations are clipped to [-clip, clip] (np.inf: no clipping);
    sync : (1,) int64 zeros shared by the members; H, H_next : (B, k + pp) zeros, the rows'
    operands (``rows``); p0 : act0's parameters.
    """
    k = x.shape[2]
    p = h.shape[1]
    units = HALVES * tiles.vector_lanes(x)  # P.shape[2], a compile-time constant
    real = x.dtype.type
    lead = member == 0
    pan_lo, pan_hi = team.share(P.shape[0], members, member)
    G = tiles.scratch(x, (1, tiles.ROWS, units))  # a panel's tile
    results = tiles.scratch(x, (tiles.ROWS, units))  # a_t of the tile's rows
    flat = results.reshape(tiles.ROWS * units)  # one after the other
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
                tile = tiles.panel_tile(H, b, last, P, pan, bias, G, k, 1, HALVES, HALVES, -1)
                pre = G.reshape(tiles.ROWS * units)
                for j in range(tile * units):  # branch-free, so that it vectorises
                    flat[j] = elman_unit(pre[j], clip, real, p0)
                for m in range(tile):
                    if s < lengths[b + m]:  # a copy of constant length: a few vector moves
                        rows.copy(results[m], H_next[b + m, k + u0:k + u0 + units])
                b += tile
        if lead and s + 1 < steps:
            rows.load_inputs(x, H_next, lengths, first, last, s + 1, reverse)
        rows.finish_step(H, H_next, out, lengths, first, last, s, reverse, k,
                         min(pan_lo * units, p), min(pan_hi * units, p))
        phase = team.meet(sync, members, phase)
        H, H_next = H_next, H
    if lead:
        rows.store_states(H, h, first, last, k)
