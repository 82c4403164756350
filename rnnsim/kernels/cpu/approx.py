"""tanh and sigmoid as branch-free arithmetic that vectorises: the ``fast_math`` forms and the
default kernels' forms (``precise_*``), at least as accurate as libm.

libm's ``tanhf``/``expf`` are scalar calls (tanhf about 15 ns on this project's benchmark
machine), so the gate loop of a kernel runs one unit at a time. These evaluate e^y as
2^n (1 + q) with n = round(y / ln 2) (by adding ``SHIFT_*``), r = y - n ln 2 (ln 2 split in
two so that n ln2_hi is exact) and q = e^r - 1 a Taylor polynomial in r (|r| <= ln2/2: 8 terms
in float32, 13 in float64), and 2^n built from n's bits. Then

- tanh(x) = sign(x) e/(e + 2), e = e^{2|x|} - 1 (no cancellation near 0), |x| capped at 20;
- sigmoid(x) = 1 / (1 + e^{-x}), x clipped to [-87, 87] in float32 and [-708, 708] in
  float64 (their exponent ranges).

They keep the argument's precision (no float64 promotion in float32) and propagate NaN. Their
error bound is ``FAST_MATH_ERROR``. The default forms are, in float32, these evaluated in
float64 (with float32's 8 terms, good to about 2^-30) and rounded once and, in float64, these
with the division corrected (``accurate_*``). Like every activation they are plain functions
that the kernel generator compiles and LLVM inlines.
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
E_MINUS_LIMIT_64 = math.exp(-EXP_LIMIT_64)
# y / ln 2 + SHIFT rounds y / ln 2 to an integer n held in the low mantissa bits (1.5 2^52 and
# 1.5 2^23 keep the sum in one binade for |n| < 2^51 and 2^22)
SHIFT_64 = 1.5 * 2.0 ** 52
SHIFT_32 = 1.5 * 2.0 ** 23


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
def exp2_shifted(typingctx, shifted):
    """2**n from ``shifted`` = n + SHIFT (n an integer within the normal exponent range),
    whose low mantissa bits hold n: its bits plus the exponent bias, moved into the exponent
    field."""
    def codegen(context, builder, signature, args):
        bits = 64 if shifted == types.float64 else 32
        integer = ir.IntType(bits)
        value = builder.bitcast(args[0], integer)
        biased = builder.add(value, ir.Constant(integer, 1023 if bits == 64 else 127))
        return builder.bitcast(builder.shl(biased, ir.Constant(integer, 52 if bits == 64 else 23)),
                               context.get_value_type(shifted))

    return shifted(shifted), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (the same bits on every machine, unlike contraction)."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@njit(inline="always", **ACTIVATION_JIT)
def _expm1_parts(y, full):
    """(2^n, q) with e^y = 2^n (1 + q), for |y| <= EXP_LIMIT_64 (EXP_LIMIT in float32); q to
    float64's precision with ``full`` (a constant), else to about 2^-30 (float32's 2^-24, with
    room for the float32 defaults' single rounding)."""
    shift = like(y, SHIFT_64) if is_float64(y) else like(y, SHIFT_32)
    shifted = fma(y, like(y, LOG2_E), shift)  # n = round(y / ln 2) in its low bits
    n = shifted - shift
    r = (y - n * like(y, LN2_HI)) - n * like(y, LN2_LO)
    # q = r + r^2/2! + ... by Horner, to r^13 with ``full``, else to r^8 (|r| <= ln2/2)
    if full:
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
    q = fma(r, r * poly, r)
    return exp2_shifted(shifted), q


@njit(inline="always", **ACTIVATION_JIT)
def _tanh_of_abs(x, full):
    """tanh(|x|) = e/(e + 2), e = e^{2|x|} - 1, with ``_expm1_parts``'s ``full``."""
    a = abs(x)
    a = a if not a > like(x, TANH_CAP) else like(x, TANH_CAP)
    scale, q = _expm1_parts(a + a, full)
    e = fma(scale, q, scale - like(x, 1.0))
    return e / (e + like(x, 2.0))


@njit(inline="always", **ACTIVATION_JIT)
def _sigmoid_of(x, full):
    """1 / (1 + e^{-x}), with ``_expm1_parts``'s ``full``."""
    limit = like(x, EXP_LIMIT_64) if is_float64(x) else like(x, EXP_LIMIT)
    y = -x
    y = y if not y > limit else limit
    y = y if not y < -limit else -limit
    scale, q = _expm1_parts(y, full)
    return like(x, 1.0) / (like(x, 1.0) + fma(scale, q, scale))


def tanh(x):
    """tanh(x), within ``FAST_MATH_ERROR`` of libm."""
    return np.copysign(_tanh_of_abs(x, is_float64(x)), x)  # tanh(-0.0) = -0.0


def sigmoid(x):
    """1 / (1 + exp(-x)), within ``FAST_MATH_ERROR`` of the exact value."""
    return _sigmoid_of(x, is_float64(x))


@njit(inline="always", **ACTIVATION_JIT)
def _plus_exactly(a, b):
    """(s, s_lo): s = a + b rounded, s + s_lo = a + b exactly (Fast2Sum on the larger first)."""
    s = a + b
    big = a if a > b else b
    small = b if a > b else a
    return s, (big - s) + small


def accurate_tanh(x):
    """tanh in float64 within 1.9 ulp (libm's: 2.1), vectorising: e/(e + 2) with e = e^{2|x|}
    - 1 as in ``tanh``, then one correction step with the residual of the division by the exact
    e + 2 (its rounding error kept by ``_plus_exactly``), 1/(e + 2) taken as (1 - t)/2."""
    a = abs(x)
    a = a if not a > TANH_CAP else TANH_CAP
    scale, q = _expm1_parts(a + a, True)
    e = fma(scale, q, scale - 1.0)
    d, d_lo = _plus_exactly(e, 2.0)
    t = e / d
    residual = fma(-t, d, e) - t * d_lo
    inverse = (1.0 - t) * 0.5
    t = fma(residual, inverse if inverse > 2.0 ** -42 else 0.0, t)  # (1 - t) is exact enough
    return np.copysign(t, x)


def accurate_sigmoid(x):
    """sigmoid in float64 within 1.5 ulp (libm's exp through 1/(1 + e): 2.3), vectorising:
    1/(1 + e^{-x}) with one correction step for the rounding of the sum and the division;
    below -708, where the result is subnormal, e^{x + 708} e^{-708}."""
    tiny = x < -EXP_LIMIT_64
    y = x + EXP_LIMIT_64 if tiny else -x  # exact (Sterbenz) when tiny, at most 708
    y = y if not y < -EXP_LIMIT_64 else -EXP_LIMIT_64
    scale, q = _expm1_parts(y, True)
    e = fma(scale, q, scale)
    d, d_lo = _plus_exactly(e, 1.0)
    s = 1.0 / d
    s = fma(fma(-s, d, 1.0) - s * d_lo, s, s)
    return e * E_MINUS_LIMIT_64 if tiny else s


_accurate_tanh = njit(**ACTIVATION_JIT)(accurate_tanh)
_accurate_sigmoid = njit(**ACTIVATION_JIT)(accurate_sigmoid)


def precise_tanh(x):
    """tanh for the default kernels, at least as accurate as libm and vectorising: in float32
    ``tanh`` evaluated in float64 to about 2^-30 and rounded once (within 0.51 ulp of the
    exact value: correctly rounded but where the exact value lies within 2^-6 ulp of a
    rounding boundary), in float64 ``accurate_tanh``."""
    if is_float64(x):
        return like(x, _accurate_tanh(np.float64(x)))
    return np.copysign(like(x, _tanh_of_abs(np.float64(x), False)), x)


def precise_sigmoid(x):
    """sigmoid for the default kernels, as ``precise_tanh``."""
    if is_float64(x):
        return like(x, _accurate_sigmoid(np.float64(x)))
    return like(x, _sigmoid_of(np.float64(x), False))
