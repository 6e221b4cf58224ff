"""How the kernels are compiled, and the index arithmetic they share.

``error_model="numpy"``: a float division by zero gives inf or NaN (as in
NumPy, and caught by the divergence check) instead of a per-element check
that stops loops such as the logistic activation from vectorising.

The entry points are cached dispatchers (:data:`kernel`); the helpers they
call are compiled into them (:data:`jit`, ``register_jitable``), typed with
their call sites' non-literal argument types. As dispatchers, each call site
passing a constant (layer 0, beta 0.0) would compile a version of its own.

Small helpers are called, not ``inline="always"``: Numba would type a copy of
the body at each call site, and LLVM inlines the call anyway.
"""

import numpy as np
from numba import njit
from numba.extending import register_jitable

kernel = njit(cache=True, nogil=True, error_model="numpy")
jit = register_jitable(error_model="numpy")
#: For the phases of the training kernel, each called from one place: their
#: code is merged into the caller's before compilation. Compiled as helpers of
#: their own, each level of calls would optimise again all the code below it
#: (the tiles' included), and the cold compile would grow with the depth.
inline = njit(inline="always", nogil=True, error_model="numpy")
#: For element-wise loops that may fuse ``a * b + c`` into one FMA (one
#: rounding instead of two: as accurate or more), as fastmlp.kernels.exp's
#: exponentials do. They stay dispatchers (no call passes them constants):
#: compiled into their callers, LLVM vectorised the float64 exponentials less well.
jit_fma = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(cache=True, nogil=True)
def addr(a, offset):
    """Address of ``a.flat[offset]`` as int64 (uintp arithmetic would promote to float64)."""
    return np.int64(a.ctypes.data) + np.int64(offset) * a.itemsize


@jit
def cut(n, p, n_parts, align):
    """Start of part p of ``range(n)`` cut into ``n_parts``, rounded up to a multiple of ``align``.

    Rounding keeps the parts' shares of a row in separate cache lines.
    """
    c = (n * p // n_parts + align - 1) // align * align
    return min(n, c)


@jit
def share(n_rows, r0, batch_size, p, n_parts):
    """Positions ``[lo, hi)`` of part p's share of the rows of the batch starting at r0."""
    m = min(batch_size, n_rows - r0)
    return r0 + m * p // n_parts, r0 + m * (p + 1) // n_parts


@jit
def output_offset_of(units, layer, cap):
    """Offset in ``acts`` (and ``deltas``) of a layer's block of ``cap`` rows."""
    off = 0
    for below in range(1, layer + 1):
        off += cap * units[below]
    return off
