"""The recurrent matmul of the CPU kernels: weights packed into panels, a register-tiled product.

Packed layout. The input and recurrent weights [W U] (gates*p, K = k + q), the rows of gate g
being ``[g*p:(g+1)*p]``, become P (panels, K, nr*VL): VL = ``LANE_BYTES`` / itemsize lanes (8 float32, 4 float64), nr
vectors per panel row. A panel covers ``UP = nr // gates * VL`` units of every gate, gate-major:
``P[pan, j, g*UP + i] = [W U][g*p + pan*UP + i, j]`` (zero past p). For row j of the panel the
outputs of all gates of those units are contiguous, so one step's product [x_t h_{t-1}] [W U]^T
for a few batch rows is a loop over j of vector loads and broadcast FMAs whose accumulators
stay in registers, and the gate nonlinearities of a panel's units run right after its tile
(the kernels' epilogue). The input projection is part of the same product: no separate GEMM,
no (T, B, gates*p) intermediate, one thread pool.

``tile_matmul`` computes such a tile: rows a_row..a_row+mr-1 of A (rows, >= K) times panel
``pan`` into ``C[:mr, :nr*VL]``. Every output is ``fma(P[K-1], a[K-1], ... fma(P[0], a[0], 0))``
in this order whatever mr is, so a batch row gets the same bits alone or in a tile, in one
long run or step by step.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..options import JIT

LANE_BYTES = 32  # one AVX2 register


def lanes(dtype) -> int:
    """Elements per vector register for ``dtype``."""
    return LANE_BYTES // np.dtype(dtype).itemsize


def panel_units(dtype, gates: int, nr: int) -> int:
    """Units of every gate that one panel covers."""
    return nr // gates * lanes(dtype)


def packed_shape(rows: int, K: int, gates: int, nr: int, dtype) -> tuple[int, int, int]:
    """The shape of P for [W U] of ``rows`` rows and K columns in all, ``gates`` gates."""
    panels = -(-(rows // gates) // panel_units(dtype, gates, nr))
    return panels, K, nr * lanes(dtype)


def empty_packed(shape: tuple[int, int, int], dtype) -> np.ndarray:
    """A zeroed, 64-byte aligned P to fill with ``update_packed``."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    raw = np.zeros(size + 64 // itemsize, dtype)
    skip = (-raw.ctypes.data % 64) // itemsize
    return raw[skip:skip + size].reshape(shape)


@numba.njit(cache=True, **JIT)
def update_packed(W, U, P, gates):
    """Copy [W U] (gates*p, k + K) into its packed form P where they differ; True if anything
    changed. W may have no columns.

    One pass that reads both: the check that cached packed weights are still current.
    """
    panels, K, width = P.shape
    k = W.shape[1]
    p = U.shape[0] // gates
    units = width // gates
    changed = False
    for pan in range(panels):
        u0 = pan * units
        n = units if p - u0 > units else p - u0
        for j in range(K):
            for g in range(gates):
                for i in range(n):
                    row = g * p + u0 + i
                    value = W[row, j] if j < k else U[row, j - k]
                    if P[pan, j, g * units + i] != value:
                        P[pan, j, g * units + i] = value
                        changed = True
    return changed


@intrinsic
def tile_matmul(typingctx, A, a_row, P, pan, C, mr, nr, k, split):
    """C[:mr, :nr*VL] = A[a_row:a_row+mr, :K] @ P[pan]; mr, nr, split literal ints.

    With split = s >= 0 vector s sums columns [0, k) only, and columns [k, K) go to an extra
    vector after the nr others (C[:, nr*VL:(nr+1)*VL]): the input and recurrent parts of a
    gate kept apart (GRU's n with reset_after).
    """
    literal = (mr, nr, split)
    if not all(isinstance(value, types.IntegerLiteral) for value in literal):
        return None
    rows, vectors, split_vector = (value.literal_value for value in literal)

    def codegen(context, builder, signature, args):
        a_arg, row_arg, p_arg, pan_arg, c_arg, _, _, k_arg = args[:8]
        a = context.make_array(signature.args[0])(context, builder, a_arg)
        packed = context.make_array(signature.args[2])(context, builder, p_arg)
        c = context.make_array(signature.args[4])(context, builder, c_arg)
        scalar = context.get_value_type(signature.args[2].dtype)
        size = context.get_abi_sizeof(scalar)
        width = LANE_BYTES // size
        vector = ir.VectorType(scalar, width)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3),
            f"llvm.fma.v{width}f{8 * size}")
        intp = context.get_value_type(types.intp)
        lda = cgutils.unpack_tuple(builder, a.shape)[1]
        _, K, panel_width = cgutils.unpack_tuple(builder, packed.shape)
        ldc = cgutils.unpack_tuple(builder, c.shape)[1]
        k_value = context.cast(builder, k_arg, signature.args[7], types.intp)

        def const(value):
            return ir.Constant(intp, value)

        def accumulator():
            return cgutils.alloca_once_value(builder, ir.Constant(vector, None))

        acc = [[accumulator() for _ in range(vectors)] for _ in range(rows)]
        panel = builder.gep(packed.data, [builder.mul(pan_arg, builder.mul(K, panel_width))],
                            inbounds=True)
        a_rows = [builder.gep(a.data, [builder.mul(builder.add(row_arg, const(m)), lda)],
                              inbounds=True) for m in range(rows)]
        undef = ir.Constant(vector, ir.Undefined)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)

        def columns(start, stop, targets):
            with cgutils.for_range_slice(builder, start, stop, const(1), intp) as (j, _):
                panel_row = builder.gep(panel, [builder.mul(j, panel_width)], inbounds=True)
                weights = [builder.load(builder.bitcast(
                    builder.gep(panel_row, [const(n * width)], inbounds=True),
                    vector.as_pointer()), align=size) for n in range(vectors)]
                for m in range(rows):
                    value = builder.load(builder.gep(a_rows[m], [j], inbounds=True))
                    broadcast = builder.shuffle_vector(
                        builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)),
                        undef, splat)
                    for n in range(vectors):
                        builder.store(builder.call(fma, [weights[n], broadcast,
                                                         builder.load(targets[m][n])]),
                                      targets[m][n])

        if split_vector < 0:
            columns(const(0), K, acc)
            results = acc
        else:
            extra = [accumulator() for _ in range(rows)]
            columns(const(0), k_value, acc)
            second = [[extra[m] if n == split_vector else acc[m][n] for n in range(vectors)]
                      for m in range(rows)]
            columns(k_value, K, second)
            results = [acc[m] + [extra[m]] for m in range(rows)]
        for m in range(rows):
            c_row = builder.gep(c.data, [builder.mul(const(m), ldc)], inbounds=True)
            for n, slot in enumerate(results[m]):
                target = builder.gep(c_row, [const(n * width)], inbounds=True)
                builder.store(builder.load(slot), builder.bitcast(target, vector.as_pointer()),
                              align=size)
        return context.get_dummy_value()

    return types.none(A, a_row, P, pan, C, mr, nr, k, split), codegen


ROWS = 4  # batch rows per tile: 4 x nr vectors of accumulators (nr <= 4: at most 16)


@numba.njit(inline="always", **JIT)
def row_tile(A, r, n, P, pan, C, vectors, k, split):
    """Tile the rows r.. of A (n rows in all) with panel ``pan`` (``tile_matmul``): ``ROWS``
    rows at once while that many remain, else one. Returns the rows done; their results are
    in C[:rows]."""
    if n - r >= ROWS:
        tile_matmul(A, r, P, pan, C, ROWS, vectors, k, split)
        return ROWS
    tile_matmul(A, r, P, pan, C, 1, vectors, k, split)
    return 1
