"""Device functions the recurrent CUDA kernels share: step indexing, padding, state in and out.

A kernel block runs the batch rows ``b0 .. b0+rows-1`` (those below B); a row of ``length``
steps is active at its steps s < length, and runs at timestep ``step_time(s, length, reverse)``.
"""
from numba import cuda


@cuda.jit(device=True)
def step_time(s, length, reverse):
    """The timestep a row of ``length`` steps runs at its s-th step."""
    return length - 1 - s if reverse else s


@cuda.jit(device=True)
def clear_padding(out, lengths, b0, rows, c0, width):
    """Zero ``out[t, b, c0:c0+width]`` at every timestep t past each row's length."""
    T, B, _ = out.shape
    for r in range(rows):
        b = b0 + r
        if b < B:
            for t in range(lengths[b], T):
                for col in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                    out[t, b, c0 + col] = 0


@cuda.jit(device=True)
def block_units(units_per_block, p):
    """(first unit, number of units) of this block's share of p units."""
    u0 = cuda.blockIdx.x * units_per_block
    return u0, min(units_per_block, p - u0)


@cuda.jit(device=True)
def start_block(Wt, shared_weights, stage, out, lengths, units_per_block, rows):
    """A block's prologue: returns (u0, nu, b0), its units u0..u0+nu-1 (``block_units``) and
    first batch row b0, after staging its columns of Wt into ``shared_weights`` (with
    ``stage``; ``stage_columns``) and zeroing its units of out (T, B, p) past each row's
    length (``clear_padding``)."""
    u0, nu = block_units(units_per_block, out.shape[2])
    b0 = cuda.blockIdx.y * rows
    if stage:
        stage_columns(Wt, shared_weights, u0, nu)
    clear_padding(out, lengths, b0, rows, u0, nu)
    return u0, nu, b0


@cuda.jit(device=True)
def load_state(h, out, lengths, reverse, s, b0, rows, hs):
    """``hs[r*q:(r+1)*q]`` = row b0+r's state before its s-th step, or zeros if it is done;
    returns once the whole block has loaded it.

    The state is ``h[b]`` at s = 0 and the output of the row's previous step after that, so
    the blocks of a grid launch see each other's units; h : (B, q); out : (T, B, q).
    """
    T, B, q = out.shape
    for e in range(cuda.threadIdx.x, rows * q, cuda.blockDim.x):
        r = e // q
        j = e - r * q
        b = b0 + r
        hs[e] = 0
        if b < B and s < lengths[b]:
            if s == 0:
                hs[e] = h[b, j]
            else:
                hs[e] = out[step_time(s - 1, lengths[b], reverse), b, j]
    cuda.syncthreads()


@cuda.jit(device=True)
def load_rows(scratch, lengths, s, b0, rows, values):
    """``values[r*w:(r+1)*w]`` = ``scratch[b0+r]`` (w wide) for active rows, else zeros;
    returns once the whole block has loaded them."""
    B, w = scratch.shape
    for e in range(cuda.threadIdx.x, rows * w, cuda.blockDim.x):
        r = e // w
        b = b0 + r
        values[e] = 0
        if b < B and s < lengths[b]:
            values[e] = scratch[b, e - r * w]
    cuda.syncthreads()


@cuda.jit(device=True)
def store_final(h, out, lengths, reverse, b0, rows, c0, width):
    """``h[b, c0:c0+width]`` = the row's output at its last step; rows of length 0 keep h."""
    T, B, _ = out.shape
    for r in range(rows):
        b = b0 + r
        if b < B and lengths[b] > 0:
            t = step_time(lengths[b] - 1, lengths[b], reverse)
            for col in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                h[b, c0 + col] = out[t, b, c0 + col]


@cuda.jit(device=True)
def stage_columns(Wt, shared, c0, width):
    """Copy ``Wt[g, j, c0:c0+width]`` of every g and j into ``shared[(g*J + j)*width + col]``."""
    G, J, _ = Wt.shape
    for e in range(cuda.threadIdx.x, G * J * width, cuda.blockDim.x):
        gj = e // width
        g = gj // J
        shared[e] = Wt[g, gj - g * J, c0 + e - gj * width]



@cuda.jit(device=True)
def load_inputs(xp, lengths, reverse, s, b0, rows, i, p, gates, acc):
    """``acc[g*rows + r]`` = row b0+r's input projection of unit i in gate block g at its s-th
    step (``xp[t, b, g*p + i]``), 0 once the row is done; g < ``gates``."""
    B = xp.shape[1]
    for g in range(gates):
        for r in range(rows):
            b = b0 + r
            acc[g * rows + r] = 0
            if b < B and s < lengths[b]:
                acc[g * rows + r] = xp[step_time(s, lengths[b], reverse), b, g * p + i]


@cuda.jit(device=True)
def unit_sums(xp, Ut, Us, stage, hs, lengths, reverse, s, b0, rows, i, l, nu, gates, acc):
    """``acc[g*rows + r]`` = row b0+r's pre-activation of unit i in gate block g < ``gates``
    at its s-th step: its input projection (``load_inputs``) plus its share of U h_{t-1}
    (``recurrent_sums``; i is column l of the block's nu); 0 once the row is done."""
    load_inputs(xp, lengths, reverse, s, b0, rows, i, Ut.shape[2], gates, acc)
    recurrent_sums(Ut, Us, stage, hs, i, l, nu, rows, 0, gates, acc)


@cuda.jit(device=True)
def recurrent_sums(Ut, Us, stage, hs, i, l, nu, rows, first, gates, acc):
    """``acc[g*rows + r] += sum_j U[(first+g)*p + i, j] hs[r*q + j]`` for g < ``gates``: unit
    i's share of U h_{t-1} for the block's rows. Ut (G, q, p) holds U's gate blocks transposed;
    with ``stage`` they are read from the block's columns in shared memory ``Us``
    (``stage_columns``), where i is column l of nu."""
    q = Ut.shape[1]
    for j in range(q):
        for g in range(gates):
            w = Us[((first + g) * q + j) * nu + l] if stage else Ut[first + g, j, i]
            for r in range(rows):
                acc[g * rows + r] += w * hs[r * q + j]
