"""Fast tanh and sigmoid for the ``fast_math`` option: branch-free arithmetic that vectorises.

libm's ``tanhf``/``expf`` are scalar calls (tanhf about 15 ns on this project's benchmark
machine), so the gate loop of a kernel runs one unit at a time. These evaluate e^y as
2^n (1 + q) with n = round(y / ln 2), r = y - n ln 2 (ln 2 split in two so that n ln2_hi is
exact) and q = e^r - 1 a Taylor polynomial in r (|r| <= ln2/2: 7 terms in float32, 13 in
float64), and 2^n built from its exponent bits. Then

- tanh(x) = sign(x) e/(e + 2), e = e^{2|x|} - 1 (no cancellation near 0), |x| capped at 20;
- sigmoid(x) = 1 / (1 + e^{-x}), x clipped to [-87, 87] in float32 and [-708, 708] in
  float64 (their exponent ranges).

They keep the argument's precision (no float64 promotion in float32) and propagate NaN. Like
every activation they are plain functions that the kernel generator compiles and inlines.
Their error bound is ``FAST_MATH_ERROR``.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..options import ACTIVATION_JIT

# Bound on the absolute error against the exact function over the whole float range, checked
# by tests/test_cpu_kernels.py. Measured on 24 million points in [-45, 45]: 8.9e-8 (float32) and
# 2.2e-16 (float64) at most, and at most 3 ulp (2 for sigmoid) wherever |f(x)| > 1e-3.
FAST_MATH_ERROR = {"float32": 1.5e-7, "float64": 5e-16}

LOG2_E = 1.4426950408889634
LN2_HI = 0.693359375  # 9 significant bits: n * LN2_HI is exact for |n| < 2**15
LN2_LO = -2.1219444005469057e-04  # ln 2 - LN2_HI
TANH_CAP = 20.0  # tanh(20) rounds to 1 in float64
EXP_LIMIT = 87.0  # e^87 and e^-87 are normal float32 numbers
EXP_LIMIT_64 = 708.0  # and e^708, e^-708 normal float64 numbers


@intrinsic
def like(typingctx, x, value):
    """``value`` as a number of x's type (float32 constants for float32 arguments)."""
    def codegen(context, builder, signature, args):
        return context.cast(builder, args[1], signature.args[1], signature.return_type)

    return x(x, value), codegen


@intrinsic
def is_float64(typingctx, x):
    """True for a float64 argument: a constant that LLVM folds, picking one branch."""
    def codegen(context, builder, signature, args):
        return ir.Constant(ir.IntType(1), int(x == types.float64))

    return types.boolean(x), codegen


@intrinsic
def exp2_int(typingctx, n):
    """2**n for an integral-valued float n within the normal exponent range, from its bits."""
    def codegen(context, builder, signature, args):
        bits = 64 if n == types.float64 else 32
        mantissa = 52 if bits == 64 else 23
        bias = 1023 if bits == 64 else 127
        integer = builder.fptosi(args[0], ir.IntType(32))
        if bits == 64:
            integer = builder.sext(integer, ir.IntType(64))
        shifted = builder.shl(builder.add(integer, ir.Constant(integer.type, bias)),
                              ir.Constant(integer.type, mantissa))
        return builder.bitcast(shifted, context.get_value_type(n))

    return n(n), codegen


@njit(inline="always", **ACTIVATION_JIT)
def _expm1_parts(y):
    """(2^n, q) with e^y = 2^n (1 + q), for |y| <= EXP_LIMIT."""
    n = np.floor(y * like(y, LOG2_E) + like(y, 0.5))
    r = (y - n * like(y, LN2_HI)) - n * like(y, LN2_LO)
    # q = r + r^2/2! + ... by Horner, to r^13 in float64 and to r^7 in float32
    if is_float64(y):
        poly = like(y, 1 / 6227020800) * r + like(y, 1 / 479001600)
        poly = poly * r + like(y, 1 / 39916800)
        poly = poly * r + like(y, 1 / 3628800)
        poly = poly * r + like(y, 1 / 362880)
        poly = poly * r + like(y, 1 / 40320)
    else:
        poly = like(y, 1 / 40320)
    poly = poly * r + like(y, 1 / 5040)
    poly = poly * r + like(y, 1 / 720)
    poly = poly * r + like(y, 1 / 120)
    poly = poly * r + like(y, 1 / 24)
    poly = poly * r + like(y, 1 / 6)
    poly = poly * r + like(y, 1 / 2)
    q = r * (poly * r + like(y, 1.0))
    return exp2_int(n), q


def tanh(x):
    """tanh(x), within ``FAST_MATH_ERROR`` of libm."""
    a = abs(x)
    a = a if not a > like(x, TANH_CAP) else like(x, TANH_CAP)
    scale, q = _expm1_parts(a + a)
    e = scale * q + (scale - like(x, 1.0))
    t = e / (e + like(x, 2.0))
    return t if x >= like(x, 0.0) else -t


def sigmoid(x):
    """1 / (1 + exp(-x)), within ``FAST_MATH_ERROR`` of the exact value."""
    limit = like(x, EXP_LIMIT_64) if is_float64(x) else like(x, EXP_LIMIT)
    y = -x
    y = y if not y > limit else limit
    y = y if not y < -limit else -limit
    scale, q = _expm1_parts(y)
    return like(x, 1.0) / (like(x, 1.0) + (scale + scale * q))


_tanh = njit(inline="always", **ACTIVATION_JIT)(tanh)
_sigmoid = njit(inline="always", **ACTIVATION_JIT)(sigmoid)


def precise_tanh(x):
    """tanh for the default kernels, as accurate as libm: in float32 the float64
    approximation rounded once (within half an ulp and 2^-25 ulp of the exact value; it
    vectorises), in float64 libm's tanh."""
    if is_float64(x):
        return like(x, math.tanh(x))
    return like(x, _tanh(np.float64(x)))


def precise_sigmoid(x):
    """sigmoid for the default kernels, as ``precise_tanh``: float32 through the float64
    approximation, float64 exactly as the built-in ``sigmoid``."""
    if is_float64(x):
        e = math.exp(-abs(x))
        return like(x, 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e))
    return like(x, _sigmoid(np.float64(x)))
