"""BLAS ``gemm`` callable from ``@njit`` code, through SciPy's Cython BLAS.

Calling gemm directly (instead of ``np.dot``) gives the kernels alpha and beta,
so products can accumulate into existing buffers, and lets them pass raw
pointers into larger buffers without making array views or copies.
"""

import llvmlite.binding as llvm
import numpy as np
from numba import types
from numba.extending import get_cython_function_address, overload, register_jitable

# Registered under a symbol name (not captured as a ctypes pointer) so that
# kernels calling them can be cached on disk: the cache stores the name, and
# importing this module binds it again in every process.
for _name in ("sgemm", "dgemm"):
    llvm.add_symbol(f"fastmlp_{_name}", get_cython_function_address("scipy.linalg.cython_blas", _name))

# Every Fortran argument is a pointer; typing them as 64-bit integers lets the
# kernels pass ``array.ctypes.data + offset`` for any sub-block.
_GEMM_SIGNATURE = types.void(*([types.int64] * 13))
_sgemm = types.ExternalFunction("fastmlp_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("fastmlp_dgemm", _GEMM_SIGNATURE)

NO_TRANS = ord("N")
TRANS = ord("T")


def cast_like(array, value):
    """Convert ``value`` to the dtype of ``array`` (usable inside ``@njit`` code).

    Parameters
    ----------
    array : ndarray
        Array whose dtype to use.
    value : float
        Value to convert.

    Returns
    -------
    scalar
        ``value`` as ``array.dtype``.
    """
    return array.dtype.type(value)


@overload(cast_like)
def _cast_like_overload(array, value):
    if array.dtype == types.float32:
        return lambda array, value: np.float32(value)
    return lambda array, value: np.float64(value)


# An overload, not an ``@njit`` dispatcher: it is typed with the call sites'
# non-literal types (one compile per dtype, whatever literals they pass, as the
# explicit signatures it had did), but compiled only when a kernel calling it
# is. Eager signatures loaded both dtypes from the disk cache at every import
# (4-7 ms of a warm start), though cached kernels contain their gemm already.
@register_jitable
def gemm(trans_a, trans_b, m, n, k, alpha, a_ptr, lda, b_ptr, ldb, beta, c_ptr, ldc, scratch, fscratch):
    """Row-major ``C = alpha * op(A) @ op(B) + beta * C`` on raw pointers.

    Parameters
    ----------
    trans_a, trans_b : int
        ``NO_TRANS`` or ``TRANS`` for A and B.
    m, n, k : int
        ``op(A)`` is m x k, ``op(B)`` is k x n, C is m x n.
    alpha, beta : float
        Scalars.
    a_ptr, b_ptr, c_ptr : int
        Addresses of the first elements.
    lda, ldb, ldc : int
        Row strides, in elements, of A, B and C as stored.
    scratch : ndarray of int32, shape (8,)
        Scratch for the integer arguments (Fortran takes them by reference).
    fscratch : ndarray of the compute dtype, shape (2,)
        Scratch for alpha and beta; its dtype selects sgemm or dgemm.
    """
    if m == 0 or n == 0:
        # Nothing to write. Returning here also spares BLAS the leading
        # dimensions of empty blocks (a part with no units passes 0).
        return
    # Row-major C is column-major C^T = op(B)^T op(A)^T: swap the operands.
    scratch[0] = trans_a
    scratch[1] = trans_b
    scratch[2] = n
    scratch[3] = m
    scratch[4] = k
    scratch[5] = ldb
    scratch[6] = lda
    scratch[7] = ldc
    fscratch[0] = alpha
    fscratch[1] = beta
    p = np.int64(scratch.ctypes.data)
    q = np.int64(fscratch.ctypes.data)
    size = np.int64(fscratch.itemsize)
    if size == 4:
        _sgemm(p + 4, p, p + 8, p + 12, p + 16, q, b_ptr, p + 20, a_ptr, p + 24, q + size, c_ptr, p + 28)
    else:
        _dgemm(p + 4, p, p + 8, p + 12, p + 16, q, b_ptr, p + 20, a_ptr, p + 24, q + size, c_ptr, p + 28)
