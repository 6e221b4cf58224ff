"""Arrays that start on a cache line, for the buffers the kernels' threads share.

The kernels split rows of activations, deltas and parameter blocks between
threads at multiples of 64 bytes (``fastmlp.kernels.jit.cut``) so that no cache line is
written by two cores; that holds only if the buffers themselves start on a
cache line. NumPy guarantees 16 bytes (large blocks come from ``mmap`` at a
page plus malloc's 16-byte header), so buffers may start 16, 32 or 48 bytes
past a line, and two threads would then share a line at every boundary.
"""

import numpy as np

from fastmlp import config

#: Bytes per cache line (and per AVX-512 vector) on x86-64.
CACHE_LINE = 64

#: Strips a CPU may prefetch past the end of a strip-major block
#: (:data:`fastmlp.config.PREFETCH_REACH_STRIPS`); the workspace reads it here.
PREFETCH_REACH_STRIPS = config.PREFETCH_REACH_STRIPS


def empty(n, dtype):
    """An uninitialised 1-D array of ``n`` elements whose first element starts a cache line.

    Parameters
    ----------
    n : int
        Elements.
    dtype : numpy dtype
        Element type.

    Returns
    -------
    ndarray of shape (n,)
        A view into a slightly larger buffer.
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(n * itemsize + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + n * itemsize].view(dtype)


def zeros(n, dtype):
    """As :func:`empty`, filled with zeros.

    Parameters
    ----------
    n : int
        Elements.
    dtype : numpy dtype
        Element type.

    Returns
    -------
    ndarray of shape (n,)
    """
    out = empty(n, dtype)
    out[...] = 0
    return out


def rows(n_rows, n, dtype):
    """An uninitialised ``(n_rows, n)`` array whose every row starts a cache line.

    Rows are padded to whole cache lines (``shape[1]`` may exceed ``n``), so
    threads writing different rows never share a line.

    Parameters
    ----------
    n_rows, n : int
        Rows, and the elements each row must hold.
    dtype : numpy dtype
        Element type.

    Returns
    -------
    ndarray of shape (n_rows, n + padding)
    """
    itemsize = np.dtype(dtype).itemsize
    per_row = -(-n * itemsize // CACHE_LINE) * CACHE_LINE // itemsize
    return empty(n_rows * per_row, dtype).reshape(n_rows, per_row)
