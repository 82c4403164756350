"""The recurrent matmul of the CPU kernels: weights packed into panels, a register-tiled product.

Packed layout. The input and recurrent weights [W U] (gates*p, K = k + q), the rows of gate g
being ``[g*p:(g+1)*p]``, become P (panels, K, nr*VL): VL = ``LANE_BYTES`` / itemsize lanes (8
float32, 4 float64), nr = gates * halves vectors per panel row. A panel covers UP = halves*VL
units of every gate, as ``halves`` sub-panels of VL units: row j of P[pan] holds, for each
sub-panel h and gate g, the vector ``[W U][g*p + pan*UP + h*VL + l, j]``, l < VL (zero past
p), at columns ``(h*gates + g)*VL + l``. So one step's product [x_t h_{t-1}] [W U]^T for a few
batch rows and a sub-panel is a loop over j of ``gates`` contiguous vector loads and broadcast
FMAs whose accumulators stay in registers; the gate nonlinearities of a panel's units run
right after its tile (the kernels' epilogue), over UP units at once. The input projection is
part of the same product: no separate GEMM, no (T, B, gates*p) intermediate, one thread pool.

``tile_matmul`` computes such a tile into C (gate, row, unit): the epilogue then runs over
all rows of the tile at once, independent work for the vector units. Every output is
``fma(P[K-1], a[K-1], ... fma(P[0], a[0], bias))`` in this order whatever the tile's shape,
so a batch row gets the same bits alone or in a tile, in one long run or step by step.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..options import JIT

LANE_BYTES = 32  # one AVX2 register
BLOCK_BYTES = 2 * LANE_BYTES
# Packed weights above this size (a core's L2 on the benchmark machine) come from L3 or memory
# each step: the tile then fetches the next panel ahead (``tile_matmul``). Measured on LSTM
# (16,256,1024) float32, 21 MB of weights: 26% less time per step.
PREFETCH_BYTES = 1 << 20


def _vector_registers() -> int:
    """Vector registers of the CPU that numba compiles for: 32 with AVX-512VL (all of them
    usable by 256-bit instructions), else 16 (AVX2). Features as numba takes them: the host's,
    or ``NUMBA_CPU_FEATURES``."""
    from numba.core import codegen, config

    features = config.CPU_FEATURES
    if features is None:
        features = codegen.get_host_cpu_features()
    return 32 if "+avx512vl" in features.split(",") else 16


# A tile keeps up to 3/4 of these as accumulators (the rest: a panel row's weights and a
# broadcast): 24 accumulators where there are 32, 12 where there are 16.
VECTOR_REGISTERS = _vector_registers()


def lanes(dtype) -> int:
    """Elements per vector register for ``dtype``."""
    return LANE_BYTES // np.dtype(dtype).itemsize


def vector_lanes(like) -> int:
    """Elements of like's dtype per vector register (``lanes``), a compile-time constant in
    the kernels: loops over a panel's units then have a constant trip count."""
    return lanes(like.dtype)


@overload(vector_lanes, inline="always")
def _vector_lanes(like):
    count = LANE_BYTES * 8 // like.dtype.bitwidth
    return lambda like: count


def block_rows(like) -> int:
    """Batch rows whose states of one unit fill ``BLOCK_BYTES`` (two vector registers)."""
    return BLOCK_BYTES // np.dtype(like.dtype).itemsize


@overload(block_rows, inline="always")
def _block_rows(like):
    rows = BLOCK_BYTES * 8 // like.dtype.bitwidth  # a compile-time constant in the kernels
    return lambda like: rows


def panel_units(dtype, gates: int, nr: int) -> int:
    """Units of every gate that one panel of nr vectors covers."""
    return nr // gates * lanes(dtype)


def packed_shape(rows: int, K: int, gates: int, nr: int, dtype) -> tuple[int, int, int]:
    """The shape of P for [W U] of ``rows`` rows and K columns in all, ``gates`` gates."""
    panels = -(-(rows // gates) // panel_units(dtype, gates, nr))
    return panels, K, nr * lanes(dtype)


def empty_packed(shape: tuple[int, int, int], dtype) -> np.ndarray:
    """A zeroed, 64-byte aligned P to fill with ``pack``."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    raw = np.zeros(size + 64 // itemsize, dtype)
    skip = (-raw.ctypes.data % 64) // itemsize
    return raw[skip:skip + size].reshape(shape)


@numba.njit(cache=True, **JIT)
def same(a, b):
    """Whether two C-contiguous arrays of one shape hold the same values (NaN never equals)."""
    a, b = a.reshape(-1), b.reshape(-1)
    differ = False
    for i in range(a.size):  # no early exit: the loop vectorises, at memory speed
        differ |= a[i] != b[i]
    return not differ


@numba.njit(cache=True, **JIT)
def pack(W, U, P, gates):
    """Write [W U] (gates*p, k + K) into its packed form P. W may have no columns."""
    panels, K, width = P.shape
    k = W.shape[1]
    p = U.shape[0] // gates
    lanes = LANE_BYTES // P.itemsize
    halves = width // (gates * lanes)
    for pan in range(panels):
        for j in range(K):
            for h in range(halves):
                for g in range(gates):
                    for lane in range(lanes):
                        u = (pan * halves + h) * lanes + lane
                        if u < p:
                            P[pan, j, (h * gates + g) * lanes + lane] = \
                                W[g * p + u, j] if j < k else U[g * p + u, j - k]


def _vector_fma(context, builder, dtype):
    """(element size, lanes, vector type, ``llvm.fma`` of that vector) for ``dtype``."""
    scalar = context.get_value_type(dtype)
    size = context.get_abi_sizeof(scalar)
    width = LANE_BYTES // size
    vector = ir.VectorType(scalar, width)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                         f"llvm.fma.v{width}f{8 * size}")
    return size, width, vector, fma


@intrinsic
def tile_matmul(typingctx, A, a_row, P, pan, bias, C, mr, gates, halves, first, count, k,
                split):
    """The tile of rows a_row..a_row+mr-1 of A and sub-panels first..first+count-1 of panel
    ``pan`` (of ``halves`` sub-panels of ``gates`` vectors) into C (module docstring), each
    sum starting from its unit's bias; mr, gates, halves, count and split literal ints.

    bias : (gates (+1 with split), pp); C : (gates (+1), rows >= mr, UP), ``C[g, m, i]`` gate g
    of row m and unit i of the panel. With split = g >= 0 gate g sums columns [0, k) only, and
    its columns [k, K) go to the extra gate ``C[gates]``, from ``bias[gates]``: the input and
    recurrent parts of a gate kept apart (GRU's n with reset_after).
    """
    literal = (mr, gates, halves, count, split)
    if not all(isinstance(value, types.IntegerLiteral) for value in literal):
        return None
    rows, n_gates, n_halves, n_sub, split_gate = (value.literal_value for value in literal)

    def codegen(context, builder, signature, args):
        a_arg, row_arg, p_arg, pan_arg, bias_arg, c_arg = args[:6]
        a = context.make_array(signature.args[0])(context, builder, a_arg)
        packed = context.make_array(signature.args[2])(context, builder, p_arg)
        biases = context.make_array(signature.args[4])(context, builder, bias_arg)
        c = context.make_array(signature.args[5])(context, builder, c_arg)
        size, width, vector, fma = _vector_fma(context, builder, signature.args[2].dtype)
        intp = context.get_value_type(types.intp)

        def const(value):
            return ir.Constant(intp, value)

        def as_intp(index):
            return context.cast(builder, args[index], signature.args[index], types.intp)

        def vector_at(base, offset):
            return builder.bitcast(builder.gep(base, [offset], inbounds=True), vector.as_pointer())

        lda = cgutils.unpack_tuple(builder, a.shape)[1]
        panels, K, panel_width = cgutils.unpack_tuple(builder, packed.shape)
        bias_width = cgutils.unpack_tuple(builder, biases.shape)[1]
        _, c_rows, c_units = cgutils.unpack_tuple(builder, c.shape)
        first_half, k_value = as_intp(9), as_intp(11)
        units = const(n_halves * width)
        # (sub-panel, gate) of each accumulator: where it loads from, starts and is stored
        pairs = [(h, g) for h in range(n_sub) for g in range(n_gates)]
        if split_gate >= 0:
            pairs += [(h, n_gates) for h in range(n_sub)]
        lanes = [builder.mul(builder.add(first_half, const(h)), const(width)) for h, _ in pairs]
        loads = [builder.add(builder.mul(builder.add(first_half, const(h)),
                                         const(n_gates * width)), const(g * width))
                 for h, g in pairs[:n_sub * n_gates]]
        acc = []
        for m in range(rows):
            acc.append([])
            for (h, g), lane in zip(pairs, lanes):
                start = builder.add(builder.mul(const(g), bias_width),
                                    builder.add(builder.mul(pan_arg, units), lane))
                acc[m].append(cgutils.alloca_once_value(builder, builder.load(
                    vector_at(biases.data, start), align=size)))
        panel = builder.gep(packed.data, [builder.mul(pan_arg, builder.mul(K, panel_width))],
                            inbounds=True)
        a_rows = [builder.gep(a.data, [builder.mul(builder.add(row_arg, const(m)), lda)],
                              inbounds=True) for m in range(rows)]
        undef = ir.Constant(vector, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)

        # With weights beyond the caches, each pass also fetches the same columns of the next
        # panel, so that its first pass finds them in the caches (see ``PREFETCH_BYTES``).
        line = 64 // size
        region = n_sub * n_gates * width
        next_region = builder.gep(panel, [builder.add(builder.mul(K, panel_width), loads[0])])
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] +
                                            [ir.IntType(32)] * 3), "llvm.prefetch.p0i8")
        weight_bytes = builder.mul(builder.mul(panels, builder.mul(K, panel_width)), const(size))
        ahead = builder.icmp_signed(">", weight_bytes, const(PREFETCH_BYTES))

        def fetch_next(j):
            row = builder.gep(next_region, [builder.mul(j, panel_width)])
            for offset in range(0, region, line):
                builder.call(prefetch, [
                    builder.bitcast(builder.gep(row, [const(offset)]), ir.IntType(8).as_pointer()),
                    ir.Constant(ir.IntType(32), 0), ir.Constant(ir.IntType(32), 2),
                    ir.Constant(ir.IntType(32), 1)])

        def columns(start, stop, targets):
            with builder.if_else(ahead) as (fetching, plain):
                with fetching:
                    loop(start, stop, targets, fetch_next)
                with plain:
                    loop(start, stop, targets, None)

        def loop(start, stop, targets, fetch):
            with cgutils.for_range_slice(builder, start, stop, const(1), intp) as (j, _):
                if fetch is not None:
                    fetch(j)
                panel_row = builder.gep(panel, [builder.mul(j, panel_width)], inbounds=True)
                weights = [builder.load(vector_at(panel_row, offset), align=size)
                           for offset in loads]
                for m in range(rows):
                    value = builder.load(builder.gep(a_rows[m], [j], inbounds=True))
                    broadcast = builder.shuffle_vector(
                        builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)),
                        undef, splat)
                    for target, weight in zip(targets[m], weights):
                        builder.store(builder.call(fma, [weight, broadcast,
                                                         builder.load(target)]), target)

        if split_gate >= 0:
            extra = {h: n_sub * n_gates + h for h in range(n_sub)}
            columns(const(0), k_value, acc)
            columns(k_value, K, [[acc[m][extra[h]] if g == split_gate else acc[m][n]
                                  for n, (h, g) in enumerate(pairs[:n_sub * n_gates])]
                                 for m in range(rows)])
        else:
            columns(const(0), K, acc)
        for m in range(rows):
            for (h, g), lane, source in zip(pairs, lanes, acc[m]):
                offset = builder.add(builder.mul(builder.add(builder.mul(const(g), c_rows),
                                                             const(m)), c_units), lane)
                builder.store(builder.load(source), vector_at(c.data, offset), align=size)
        return context.get_dummy_value()

    return types.none(A, a_row, P, pan, bias, C, mr, gates, halves, first, count, k,
                      split), codegen


@intrinsic
def sparse_block_sums(typingctx, acc, prev, data, indices, start, end):
    """acc[a] += data[k] * prev[indices[k]] for k in [start, end), the rows of a block at once:
    acc (4, BLOCK) and prev (N, BLOCK) C-contiguous, BLOCK = ``block_rows``. Nonzero k goes to
    accumulator a = (k - start) % 4, the last (end - start) % 4 to accumulator 0: the order of
    ``esn``'s row loop, so each row gets its bits."""
    def codegen(context, builder, signature, args):
        acc_arr = context.make_array(signature.args[0])(context, builder, args[0])
        prev_arr = context.make_array(signature.args[1])(context, builder, args[1])
        data_arr = context.make_array(signature.args[2])(context, builder, args[2])
        index_arr = context.make_array(signature.args[3])(context, builder, args[3])
        size, width, vector, fma = _vector_fma(context, builder, signature.args[0].dtype)
        halves = BLOCK_BYTES // LANE_BYTES
        intp = context.get_value_type(types.intp)
        first, stop = (context.cast(builder, args[i], signature.args[i], types.intp)
                       for i in (4, 5))

        def vector_at(base, offset):
            return builder.bitcast(builder.gep(base, [offset], inbounds=True),
                                   vector.as_pointer())

        def const(value):
            return ir.Constant(intp, value)

        sums = [[cgutils.alloca_once_value(builder, builder.load(
            vector_at(acc_arr.data, const((a * halves + h) * width)), align=size))
            for h in range(halves)] for a in range(4)]
        undef = ir.Constant(vector, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)

        def add(k, targets):
            value = builder.load(builder.gep(data_arr.data, [k], inbounds=True))
            column = builder.zext(builder.load(builder.gep(index_arr.data, [k], inbounds=True)),
                                  intp) if signature.args[3].dtype.bitwidth < 64 else \
                builder.load(builder.gep(index_arr.data, [k], inbounds=True))
            broadcast = builder.shuffle_vector(
                builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)),
                undef, splat)
            row = builder.gep(prev_arr.data, [builder.mul(column, const(halves * width))],
                              inbounds=True)
            for h, target in enumerate(targets):
                x = builder.load(vector_at(row, const(h * width)), align=size)
                builder.store(builder.call(fma, [broadcast, x, builder.load(target)]), target)

        groups = builder.sdiv(builder.sub(stop, first), const(4))
        with cgutils.for_range(builder, groups, intp=intp) as loop:
            k = builder.add(first, builder.mul(loop.index, const(4)))
            for a in range(4):
                add(builder.add(k, const(a)), sums[a])
        tail = builder.add(first, builder.mul(groups, const(4)))
        with cgutils.for_range_slice(builder, tail, stop, const(1), intp) as (k, _):
            add(k, sums[0])
        for a in range(4):
            for h in range(halves):
                builder.store(builder.load(sums[a][h]),
                              vector_at(acc_arr.data, const((a * halves + h) * width)),
                              align=size)
        return context.get_dummy_value()

    return types.none(acc, prev, data, indices, start, end), codegen


def padded(vector: np.ndarray, gates: int, units: int) -> np.ndarray:
    """A (gates*p,) vector as (gates, p rounded up to a multiple of ``units``, the units of a
    panel), zero past p: the kernels' layout of biases and peepholes."""
    p = vector.size // gates
    out = np.zeros((gates, -(-p // units) * units), vector.dtype)
    out[:, :p] = vector.reshape(gates, p)
    return out


@intrinsic
def _stack_pointer(typingctx, array, count):
    """A pointer to ``count`` (a literal int) elements of the array's dtype on the stack."""
    if not isinstance(count, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(array.dtype),
                                   size=ir.Constant(ir.IntType(64), count.literal_value))

    return types.CPointer(array.dtype)(array, count), codegen


SCRATCH = 256  # elements of a stack buffer: up to 4 gates x ROWS x a panel's 16 units
ROWS = 4  # batch rows per tile: 4 x up to 4 vectors of accumulators


@numba.njit(inline="always", **JIT)
def scratch(like, shape):
    """An array of like's dtype and ``shape`` in a new stack buffer of ``SCRATCH`` elements
    (the shape's product at most), uninitialised. LLVM knows that it overlaps no other array,
    so an epilogue loop that writes only such buffers vectorises without run-time overlap
    checks."""
    return numba.carray(_stack_pointer(like, SCRATCH), shape)


@numba.njit(inline="always", **JIT)
def panel_tile(A, r, n, P, pan, bias, C, k, gates, halves, per_call, split):
    """Tile the rows r.. of A (n rows in all) with panel ``pan`` (``tile_matmul``; literal
    gates, halves, per_call, split): ``ROWS`` rows at once while that many remain, ``per_call``
    sub-panels per call (accumulators within ``VECTOR_REGISTERS``), else one row with all
    sub-panels (more independent FMA chains). Returns the rows done, whose results are in
    C[:, :rows]."""
    if n - r < ROWS:
        tile_matmul(A, r, P, pan, bias, C, 1, gates, halves, 0, halves, k, split)
        return 1
    for first in range(0, halves, per_call):
        tile_matmul(A, r, P, pan, bias, C, ROWS, gates, halves, first, per_call, k, split)
    return ROWS
