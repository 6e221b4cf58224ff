"""fastmlp.kernels.aligned: buffers shared by the kernels' threads start on cache lines."""

import numpy as np
import pytest

from fastmlp.kernels import aligned
from fastmlp.engine import backends
from fastmlp.engine.network import Network


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("n", [0, 1, 3, 16, 17, 1000, 50_177])
def test_empty_and_zeros_start_a_cache_line(n, dtype):
    for _ in range(5):  # several allocations: NumPy's own alignment varies between them
        a = aligned.empty(n, dtype)
        z = aligned.zeros(n, dtype)
        for arr in (a, z):
            assert arr.shape == (n,) and arr.dtype == dtype and arr.flags.c_contiguous
            # (An empty array holds no cache line; NumPy may point it anywhere.)
            assert n == 0 or arr.ctypes.data % aligned.CACHE_LINE == 0
        assert not z.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_rows, n", [(1, 5), (2, 17), (3, 784 * 100), (4, 0)])
def test_every_row_starts_a_cache_line(n_rows, n, dtype):
    a = aligned.rows(n_rows, n, dtype)
    assert a.shape[0] == n_rows and a.shape[1] >= n and a.dtype == dtype
    assert a.shape[1] * a.itemsize % aligned.CACHE_LINE == 0
    assert a.shape[1] - n < aligned.CACHE_LINE // a.itemsize  # at most one line of padding
    for row in a:
        assert n == 0 or row.ctypes.data % aligned.CACHE_LINE == 0


def test_numba_workspace_buffers_are_aligned():
    network = Network([784, 100, 10], "logistic", "log_loss")
    X = np.zeros((64, 784), np.float32)
    Y = np.zeros((64, 10), np.float32)
    trainer = backends.make_trainer("numba", network, X, Y, None, 32, np.float32)
    ws = trainer.work
    assert trainer.sync.ctypes.data % 64 == 0
    for name in ("xb", "acts", "deltas"):
        assert getattr(ws, name).ctypes.data % 64 == 0, name
    for name in ("gbufs", "first", "partials"):
        for row in getattr(ws, name):
            assert row.ctypes.data % 64 == 0, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_gradient_blocks_are_out_of_each_others_prefetch_reach(dtype):
    # A part's first-layer gradient is strip-major (strips of a cache line of
    # each of the u0 rows); the next part's block must start at least
    # PREFETCH_REACH_STRIPS strips after the end of everything the part writes.
    u0, u1, batch = 784, 128, 128
    network = Network([u0, u1, 10], "logistic", "log_loss")
    X = np.zeros((256, u0), dtype)
    Y = np.zeros((256, 10), dtype)
    trainer = backends.make_trainer("numba", network, X, Y, None, batch, dtype)
    ws = trainer.work
    assert trainer.n_parts == 2 and ws.gbufs.shape[0] == 2
    strip = u0 * aligned.CACHE_LINE // ws.gbufs.itemsize
    written = max(u0 * u1, u1 * 10)  # a part writes at most a whole layer's gradient
    assert ws.gbufs.shape[1] >= written + aligned.PREFETCH_REACH_STRIPS * strip
