"""``exp`` written out in arithmetic, so loops that call it vectorise.

Numba lowers ``np.exp`` to a call of the C library's scalar ``exp`` per
element (it vectorises only with Intel's SVML installed), and the logistic
activation is an exponential per unit and row, a large share of a small
network's fit. This version is branch-free, so LLVM turns the activation
loops into vector code.

Method (as in Cody & Waite and most libm's): ``x = n ln2 + r`` with n the
integer nearest ``x / ln2`` and ``|r| <= ln2 / 2``, ``exp(r)`` by its Taylor
polynomial to degree 13 (truncation error below 4e-18, under half an ulp),
then scaled by ``2**n`` in two factors so that ``n = 1024`` does not overflow
the exponent field. Accuracy against the C library, tested: at most 1 ulp in
float64 (most results identical), and float32 values (computed in float64)
correctly rounded. NaN stays NaN; ``exp`` of more than 709.78 is inf, of less
than -745.13 is 0.

Both are ordinary cached functions (``fastmath`` "contract": the polynomial
runs as a chain of FMAs), called from the activation loops, where LLVM
inlines them and the loops still vectorise: the same bits and speed as with
Numba's ``inline="always"``, which would type a copy of the body at each of
the kernels' call sites and lengthen the cold compile.
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # 0x3FE62E42FEE00000: n * _LN2_HI is exact for |n| < 2**11
_LN2_LO = 1.9082149292705877e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer, kept in the low bits
_OVERFLOW = 709.782712893384
_UNDERFLOW = -745.1332191019412
_SHIFTER_BITS = np.array([_SHIFTER]).view(np.int64)[0]
_EXPONENT_ONE = 1 << 52  # one unit of the exponent field


def _bitcast(from_type, to_type):
    """An ``@njit``-callable that reinterprets the bits of a ``from_type`` as a ``to_type``."""

    @intrinsic
    def bitcast(typingctx, x):
        if x != from_type:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(to_type))

        return to_type(x), codegen

    return bitcast


_float_bits = _bitcast(types.float64, types.int64)
_bits_float = _bitcast(types.int64, types.float64)
_float32_bits = _bitcast(types.float32, types.int32)
_bits_float32 = _bitcast(types.int32, types.float32)

# float32 constants of exp_float32 (the same method with float32 steps).
_F32 = np.float32
_LOG2E_32 = _F32(_LOG2E)
_LN2_HI_32 = _F32(0.693145751953125)  # 0x3F317200: n * _LN2_HI_32 is exact for |n| < 2**8
_LN2_LO_32 = _F32(1.4286067653301870e-06)
_SHIFTER_32 = _F32(12582912.0)  # 1.5 * 2**23
_SHIFTER_32_BITS = int(np.array([_SHIFTER_32]).view(np.int32)[0])
_OVERFLOW_32 = _F32(88.72283)
_UNDERFLOW_32 = _F32(-103.97208)
_EXPONENT_ONE_32 = 1 << 23


@njit(cache=True, nogil=True, fastmath={"contract"})
def exp(x):
    """``e**x`` for a float64, branch-free; see the module docstring for accuracy.

    Parameters
    ----------
    x : float64

    Returns
    -------
    float64
    """
    t = x * _LOG2E + _SHIFTER
    n = t - _SHIFTER  # nearest integer to x / ln2, as a float
    k = _float_bits(t) - _SHIFTER_BITS  # the same integer, from the low bits (no NaN cast)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    # 2**k as 2**k1 * 2**k2, k1 about k / 2 (by the same rounding trick): each
    # factor's exponent field stays in range. Only adds and multiplies on the
    # integers (no shifts, no float-to-int casts), so the loop vectorises and
    # NaN needs no special case. Out-of-range k gives garbage scales here; the
    # selects below replace those results.
    k1 = _float_bits(n * 0.5 + _SHIFTER) - _SHIFTER_BITS
    y = (p * _bits_float((k1 + 1023) * _EXPONENT_ONE)
         * _bits_float((k - k1 + 1023) * _EXPONENT_ONE))
    y = np.inf if x > _OVERFLOW else y
    return 0.0 if x < _UNDERFLOW else y


@njit(cache=True, nogil=True, fastmath={"contract"})
def exp_float32(x):
    """``e**x`` in float32 steps, for the float32 logistic; at most 1.2 ulp from the exact value.

    The method of :func:`exp` with float32 arithmetic (16 values per 512-bit
    vector instead of 8) and a Taylor polynomial of degree 7 (truncation
    below 5e-9 relative on ``|r| <= ln2 / 2``, under a tenth of a float32
    ulp). Used for the logistic activation of float32 networks: twice the
    values per vector of :func:`exp`.
    NaN stays NaN; more than 88.72283 gives inf, less than -103.97208 gives 0.

    Parameters
    ----------
    x : float32
        (Other floats are converted to float32 first.)

    Returns
    -------
    float32
    """
    x = np.float32(x)
    t = x * _LOG2E_32 + _SHIFTER_32
    n = t - _SHIFTER_32
    k = _float32_bits(t) - _SHIFTER_32_BITS
    r = (x - n * _LN2_HI_32) - n * _LN2_LO_32
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    k1 = _float32_bits(n * _F32(0.5) + _SHIFTER_32) - _SHIFTER_32_BITS
    y = (p * _bits_float32(np.int32((k1 + 127) * _EXPONENT_ONE_32))
         * _bits_float32(np.int32((k - k1 + 127) * _EXPONENT_ONE_32)))
    y = _F32(np.inf) if x > _OVERFLOW_32 else y
    return _F32(0.0) if x < _UNDERFLOW_32 else y
