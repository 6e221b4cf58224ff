"""Arrays that start on a cache line, for the buffers the kernels' threads share.

The kernels split rows of activations, deltas and parameter blocks between
threads at multiples of 64 bytes (``train._cut``) so that no cache line is
written by two cores; that holds only if the buffers themselves start on a
cache line. NumPy guarantees 16 bytes (large blocks come from ``mmap`` at a
page plus malloc's 16-byte header), and the workspace buffers measured 16,
32 or 48 bytes past a line, so the two threads shared a line at every
boundary. MNIST, 784-128-10 float32, medians of alternating runs: epochs at
batch 32 / 128 / 512 took 0.169 / 0.135 / 0.124 s unaligned, 0.157 / 0.122 /
0.115 s aligned (same bits).
"""

import numpy as np

#: Bytes per cache line (and per AVX-512 vector) on x86-64.
CACHE_LINE = 64

#: Strips a CPU may prefetch past the end of a strip-major block (a strip: one
#: cache line of each of the block's rows; see ``tiles.product_of_rows``).
#: The tiles step through such a block a strip at a time, and on AMD Zen 3
#: the prefetcher follows that stride up to 7 strips past the last one. Two
#: threads each computing a first-layer weight gradient (MNIST, 784 x 64
#: float32: 4 strips of 49 KB) into one buffer: the block placed 4 to 10
#: strips after the start of the other took 7-72 % longer than it (two
#: processes), 11 or more strips after it as long. Row-major blocks: no
#: difference at any distance. Blocks that threads write at the same time
#: are each followed by this many strips that no thread writes.
PREFETCH_REACH_STRIPS = 8


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
