"""Skipping the columns of X that are zero in every row of a batch changes no bits.

The training kernel's first-layer products skip such columns (MNIST: a third
of the pixels at batch 128): their terms are exact zeros, and the sums over
the other columns run in the same order, so results are those of the full
products. Tested at three levels: the column lists against NumPy; the tiled
products with and without the lists, bit for bit; and training: skipping
(``config.MIN_ZERO_COLUMN_INPUTS``) against not, and a call's first batch,
which uses all columns (one batch per call never skips any), against one call
per epoch, in 1 and 2 threads; and against the NumPy reference.
"""

import numpy as np
import pytest
from numba import njit
from threadpoolctl import threadpool_limits

from fastmlp import config
from fastmlp.kernels import tiles
from fastmlp.engine import backends
from fastmlp.kernels.blas import NO_TRANS, TRANS
from fastmlp.kernels.columns import _list_columns, _mark_nonzero_columns
from fastmlp.kernels.jit import addr as _addr
from fastmlp.engine.network import Network
from fastmlp.kernels.tiles import STRIP_BYTES, product_of_rows
from fastmlp.engine.optimizers import SGD, Adam

DTYPES = [np.float32, np.float64]


def _columns(X, rows, r0, m, n_parts):
    """The kernel's lists for positions r0 to r0 + m of rows, marked in n_parts shares."""
    seen = np.zeros((n_parts, X.shape[1]), dtype=np.uint32 if X.itemsize == 4 else np.uint64)
    return _mark_and_list(X, rows, r0, m, seen)


@njit
def _mark_and_list(X, rows, r0, m, seen):
    n_parts = seen.shape[0]
    for p in range(n_parts):
        lo = r0 + m * p // n_parts
        _mark_nonzero_columns(X, rows, lo, r0 + m * (p + 1) // n_parts - lo, seen[p])
    cols = np.empty(X.shape[1], dtype=np.int64)
    runs = np.empty(X.shape[1] + 1, dtype=np.int64)
    n_cols, n_runs = _list_columns(seen, X.shape[1], cols, runs)
    return cols[:n_cols].copy(), runs[:2 * n_runs].copy()


def _expected_runs(used):
    edges = np.diff(np.concatenate([[0], used.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1).ravel()


@pytest.mark.parametrize("n_parts", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_listed_columns_are_those_not_zero_in_every_row(dtype, n_parts):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 50)).astype(dtype)
    X[rng.random(X.shape) < 0.9] = 0.0
    X[:, [0, 1, 17, 49]] = 0.0
    X[5, 0] = -0.0  # a zero, whatever its sign
    X[9, 49] = np.nan  # counts: it must reach the products (and the NaN check)
    X[11, 1] = np.inf
    rows = rng.permutation(40)
    for r0, m in [(0, 40), (3, 12), (7, 1), (10, 0)]:
        used = np.any(X[rows[r0:r0 + m]] != 0, axis=0) | np.any(np.isnan(X[rows[r0:r0 + m]]),
                                                                 axis=0)
        cols, runs = _columns(X, rows, r0, m, n_parts)
        np.testing.assert_array_equal(cols, np.flatnonzero(used))
        np.testing.assert_array_equal(runs, _expected_runs(used))
        # Rows in X's own order (no shuffle).
        in_order = np.any(X[r0:r0 + m] != 0, axis=0) | np.any(np.isnan(X[r0:r0 + m]), axis=0)
        np.testing.assert_array_equal(_columns(X, rows[:0], r0, m, n_parts)[0],
                                      np.flatnonzero(in_order))
    assert 49 in _columns(X, np.array([9]), 0, 1, 1)[0]
    all_used = np.ones((3, 50), dtype=dtype)
    cols, runs = _columns(all_used, np.arange(3), 0, 3, 1)
    np.testing.assert_array_equal(runs, [0, 50])


@njit
def _rows_product(trans_a, m, n, k, X, rows, cols, runs, ahead, B, C, accumulate):
    addrs = np.empty(rows.size, dtype=np.int64)
    for i in range(rows.size):
        addrs[i] = _addr(X, rows[i] * X.shape[1])
    product_of_rows(trans_a, m, n, k, addrs, cols, runs, ahead, X.shape[1] * X.itemsize,
                    (_addr(B, 0), B.shape[1], STRIP_BYTES // B.itemsize),
                    (_addr(C, 0), C.shape[1], STRIP_BYTES // C.itemsize), accumulate,
                    np.zeros(2, dtype=C.dtype))


@pytest.mark.parametrize("accumulate", [False, True], ids=["store", "accumulate"])
@pytest.mark.parametrize("trans", [NO_TRANS, TRANS], ids=["A", "A.T"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_skipping_zero_columns_changes_no_bits(dtype, trans, accumulate):
    """op(A) @ B over the listed columns only is the full product, bit for bit."""
    rng = np.random.default_rng(1)
    width, n_rows = 300, 700
    lanes = tiles.VECTOR_BYTES // np.dtype(dtype).itemsize
    n = 2 * lanes + 3  # whole vectors and a masked tail
    X = rng.normal(size=(n_rows, width)).astype(dtype)
    rows = rng.choice(n_rows, 29, replace=False)
    # Zero in every row of the batch: runs of columns (the first and the last
    # included) and lone ones, some of them -0.0.
    zero = np.zeros(width, dtype=bool)
    zero[[0, 1, 2, 40, 41, 77, 150, 151, 152, 153, 299]] = True
    zero[200:260] = True
    block = X[rows]
    block[:, zero] = 0.0
    block[::3, 150] = -0.0
    X[rows] = block
    cols, runs = _columns(X, rows, 0, rows.size, 1)
    assert cols.size == width - zero.sum()
    everything = np.arange(width), np.array([0, width])
    if trans == NO_TRANS:
        m, k = rows.size, width
    else:
        m, k = width, rows.size
    B = rng.normal(size=(k, n)).astype(dtype)
    C0 = rng.normal(size=(m, n)).astype(dtype)
    full, skipped = C0.copy(), C0.copy()
    no_rows = np.empty(0, dtype=np.int64)
    _rows_product(trans, m, n, k, X, rows, *everything, no_rows, B, full, accumulate)
    _rows_product(trans, m, n, k, X, rows, cols, runs, no_rows, B, skipped, accumulate)
    if trans == TRANS:
        # C's rows for the skipped columns are left as they were: the caller's to zero.
        np.testing.assert_array_equal(skipped[zero], C0[zero])
        expected = C0[zero] if accumulate else 0.0
        np.testing.assert_array_equal(full[zero], np.broadcast_to(expected, full[zero].shape))
        full, skipped = full[~zero], skipped[~zero]
    assert full.tobytes() == skipped.tobytes()
    # The rows to prefetch change nothing either.
    ahead = np.array([_addr_of_row(X, r) for r in rng.choice(n_rows, 40)], dtype=np.int64)
    again = C0.copy()
    _rows_product(trans, m, n, k, X, rows, cols, runs, ahead, B, again, accumulate)
    if trans == TRANS:
        again = again[~zero]
    assert again.tobytes() == skipped.tobytes()


def _addr_of_row(X, r):
    return X.ctypes.data + int(r) * X.shape[1] * X.itemsize


OPTIMIZERS = {"nesterov": lambda n, dtype: SGD(n, dtype, 0.1, "constant", 0.9, True),
              "adam": lambda n, dtype: Adam(n, dtype, 0.01)}


def _zero_column_problem(dtype, n_rows=150, seed=0):
    """Rows whose columns are zero in some batches and not in others; some batches dense.

    Each column is non-zero in a random ~6 % of the rows, with values large
    enough that skipping one wrongly would show; rows 60 to 90 are dense
    (the kernel then stops looking for zero columns for a while).
    """
    rng = np.random.default_rng(seed)
    network = Network([48, 40, 3], "logistic", "log_loss")
    params = rng.normal(scale=0.3, size=network.n_params).astype(dtype)
    X = rng.normal(scale=2.0, size=(n_rows, 48))
    X[rng.random(X.shape) < 0.94] = 0.0
    X[60:90] = rng.normal(size=(30, 48))
    Y = np.eye(3)[rng.integers(0, 3, n_rows)]
    return network, params, X.astype(dtype), Y.astype(dtype)


def _train(monkeypatch, backend, dtype, optimizer_name, shuffle, batches_per_call,
           n_threads=1, skip=True):
    monkeypatch.setattr(backends.NumbaTrainer, "threads_for_run", lambda self: n_threads)
    monkeypatch.setattr(config, "MIN_ZERO_COLUMN_INPUTS", 0 if skip else 49)
    network, params0, X, Y = _zero_column_problem(dtype)
    batch_size = 8
    trainer = backends.make_trainer(backend, network, X, Y, None, batch_size, dtype)
    if backend == "numba":
        # 48 inputs: it looks for zero columns in 2 parts, or not at all.
        assert trainer.work.col_seen.shape == ((2, 48) if skip else (2, 0))
        assert trainer.work.col_seen.itemsize == np.dtype(dtype).itemsize
    params = params0.copy()
    optimizer = OPTIMIZERS[optimizer_name](network.n_params, dtype)
    rng = np.random.default_rng(1)
    n_batches = -(-X.shape[0] // batch_size)
    losses = []
    with threadpool_limits(1):
        for _ in range(3):
            rows = rng.permutation(X.shape[0]) if shuffle else None
            loss_sum = 0.0
            for b in range(0, n_batches, batches_per_call):
                loss_sum, _ = trainer.run(params, optimizer, rows, b,
                                          min(b + batches_per_call, n_batches), 1e-3, loss_sum)
            losses.append(loss_sum)
            optimizer.iteration_ends(X.shape[0])
    return params, losses


@pytest.fixture
def tiled_and_split(monkeypatch):
    """Tiles (the path that skips columns) and two parts per batch, as big networks get."""
    if not tiles.PREFERRED:
        pytest.skip("this CPU has no registers for the tiles; BLAS products skip nothing")
    monkeypatch.setattr(config, "TILED_PRODUCTS", True)
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    monkeypatch.setattr(config, "MIN_THREADED_FLOPS", 0)


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_skipping_columns_gives_the_bits_of_not_skipping(
        monkeypatch, tiled_and_split, dtype, optimizer_name, shuffle):
    never = _train(monkeypatch, "numba", dtype, optimizer_name, shuffle, 1000, skip=False)
    # One batch per call: every batch is a call's first, which uses all columns.
    one_per_call = _train(monkeypatch, "numba", dtype, optimizer_name, shuffle, 1)
    assert one_per_call[0].tobytes() == never[0].tobytes()
    for n_threads in (1, 2):
        whole = _train(monkeypatch, "numba", dtype, optimizer_name, shuffle, 1000, n_threads)
        assert whole[0].tobytes() == never[0].tobytes(), n_threads
        assert whole[1] == never[1]
    reference = _train(monkeypatch, "numpy", dtype, optimizer_name, shuffle, 1000)
    rtol = 1e-10 if dtype == np.float64 else 3e-5
    scale = np.abs(reference[0]).max()
    assert np.abs(whole[0].astype(np.float64) - reference[0]).max() <= rtol * scale
