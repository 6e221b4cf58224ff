"""fastmlp._tiles: register-tiled products against NumPy, and training with and without them.

Error bound for a product summed over k terms (Higham, Accuracy and Stability
of Numerical Algorithms, eq. 3.13): ``|C - AB| <= k u |A||B|`` elementwise, u
the unit roundoff. The tests allow ``(k + 1) eps |A||B|`` (eps = 2u): the
float64 reference of a float64 product carries the same bound, and
accumulating into C adds one rounding. Any wrong index, stride, tail or
accumulation breaks it by orders of magnitude.
"""

import numpy as np
import pytest
from numba import njit

from fastmlp import _tiles, backends, config
from fastmlp._blas import NO_TRANS, TRANS
from fastmlp._kernels import _addr
from fastmlp._tiles import product_of_rows
from fastmlp._network import Network
from fastmlp.optimizers import SGD, Adam

DTYPES = [np.float32, np.float64]


@njit
def _product(trans_a, m, n, k, A, a_off, lda, B, b_off, ldb, C, c_off, ldc, accumulate, tiled):
    scratch = np.zeros(8, dtype=np.int32)
    fscratch = np.zeros(2, dtype=C.dtype)
    _tiles.product(trans_a, m, n, k, _addr(A, a_off), lda, _addr(B, b_off), ldb,
                   _addr(C, c_off), ldc, accumulate, tiled, scratch, fscratch)


def _bound(dtype, k, absA, absB):
    return k * np.finfo(dtype).eps * (absA @ absB) + np.finfo(dtype).tiny


def _check(dtype, trans, m, n, k, accumulate, tiled, seed=0, pad=3):
    """Product of sub-blocks (leading dimensions larger than the block) against NumPy.

    C's padding columns, and everything outside the block, must come out untouched.
    """
    rng = np.random.default_rng(seed)
    a_rows, a_cols = (m, k) if trans == NO_TRANS else (k, m)
    A = rng.standard_normal((a_rows + 1, a_cols + pad)).astype(dtype)
    B = rng.standard_normal((k + 1, n + pad)).astype(dtype)
    C = rng.standard_normal((m + 1, n + pad)).astype(dtype)
    C0 = C.copy()
    # Blocks start one row and one column in.
    a_blk = A[1:, 1:1 + a_cols]
    b_blk = B[1:, 1:1 + n]
    op_a = a_blk if trans == NO_TRANS else a_blk.T
    _product(trans, m, n, k, A.ravel(), A.shape[1] + 1, A.shape[1], B.ravel(), B.shape[1] + 1,
             B.shape[1], C.ravel(), C.shape[1] + 1, C.shape[1], accumulate, tiled)
    exact = op_a.astype(np.float64) @ b_blk.astype(np.float64)
    if accumulate:
        exact = exact + C0[1:, 1:1 + n]
    got = C[1:, 1:1 + n].astype(np.float64)
    bound = _bound(dtype, k + 1, np.abs(op_a.astype(np.float64)), np.abs(b_blk.astype(np.float64)))
    if accumulate:
        bound = bound + np.finfo(dtype).eps * np.abs(C0[1:, 1:1 + n])
    assert np.all(np.abs(got - exact) <= bound), np.abs(got - exact).max()
    untouched = np.ones(C.shape, dtype=bool)
    untouched[1:, 1:1 + n] = False
    np.testing.assert_array_equal(C[untouched], C0[untouched])


# Rows: 1 to 5 rows left over after whole 6-row tiles, and whole tiles only.
# Columns (64-byte vectors: 16 float32 / 8 float64 values): one vector, one
# tile of four, tiles plus 1-3 leftover vectors, and a tail shorter than a
# vector (done by BLAS). k: none, one, around the k-block of 128, and several blocks.
SHAPES = [(1, 16, 1), (5, 16, 7), (6, 64, 64), (7, 40, 33), (13, 100, 129), (12, 136, 300),
          (37, 70, 128), (8, 56, 20), (14, 120, 50), (4, 8, 0), (3, 5, 17), (0, 32, 5)]


@pytest.mark.parametrize("accumulate", [False, True], ids=["store", "accumulate"])
@pytest.mark.parametrize("trans", [NO_TRANS, TRANS], ids=["A", "A.T"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_tiled_product_is_the_product(shape, dtype, trans, accumulate):
    _check(dtype, trans, *shape, accumulate, tiled=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_blas_path_is_the_product_too(dtype):
    for shape in SHAPES:
        for trans in (NO_TRANS, TRANS):
            _check(dtype, trans, *shape, accumulate=True, tiled=False)


@njit
def _product_of_rows(trans_a, m, n, k, X, rows, col0, B, C, accumulate):
    addrs = np.empty(rows.size, dtype=np.int64)
    for i in range(rows.size):
        addrs[i] = _addr(X, rows[i] * X.shape[1])
    product_of_rows(trans_a, m, n, k, addrs, col0, _addr(B, 0), B.shape[1], _addr(C, 0),
                    C.shape[1], accumulate, np.zeros(2, dtype=C.dtype))


# (m, vectors, extra columns, k, col0): leftover rows and vectors, a tail of columns
# shorter than a vector, k past a 128-row block, offsets into the rows.
# A column tail is computed by overlapping tiles, so it is only ever stored (the
# documented precondition): those shapes run without accumulate.
ROW_SHAPES = [(1, 1, 0, 1, 0, acc) for acc in (False, True)] + [
    (7, 4, 0, 33, 5, acc) for acc in (False, True)] + [
    (13, 5, 0, 129, 0, acc) for acc in (False, True)] + [
    (37, 2, 0, 300, 11, acc) for acc in (False, True)] + [
    (6, 8, 0, 20, 40, True), (5, 1, 3, 40, 2, False), (14, 2, 5, 150, 0, False),
    (8, 4, 7, 129, 3, False)]


@pytest.mark.parametrize("trans", [NO_TRANS, TRANS], ids=["A", "A.T"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=["-".join(map(str, s)) for s in ROW_SHAPES])
def test_product_of_scattered_rows_is_the_product(shape, dtype, trans):
    """A's rows taken where they lie in X (shuffled rows, from column col0), never copied."""
    m, vectors, extra, k, col0, accumulate = shape
    n = vectors * 64 // np.dtype(dtype).itemsize + extra
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, col0 + max(k, m) + 3)).astype(dtype)
    n_rows = m if trans == NO_TRANS else k
    width = k if trans == NO_TRANS else m
    rows = rng.choice(400, n_rows, replace=False).astype(np.int64)
    A = X[rows, col0:col0 + width]
    op_a = A if trans == NO_TRANS else A.T
    B = rng.standard_normal((k, n)).astype(dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    C = C0.copy()
    _product_of_rows(trans, m, n, k, X, rows, col0, B, C, accumulate)
    exact = op_a.astype(np.float64) @ B.astype(np.float64) + (C0 if accumulate else 0.0)
    bound = _bound(dtype, k + 1, np.abs(op_a.astype(np.float64)), np.abs(B.astype(np.float64)))
    if accumulate:
        bound = bound + np.finfo(dtype).eps * np.abs(C0)
    assert np.all(np.abs(C - exact) <= bound), np.abs(C - exact).max()


def test_tiles_and_blas_agree_to_rounding_on_a_first_layer_product():
    rng = np.random.default_rng(3)
    X = rng.random((128, 784)).astype(np.float32)
    W = (rng.standard_normal((784, 64)) * 0.05).astype(np.float32)
    out = {}
    for tiled in (False, True):
        Z = np.zeros((128, 64), np.float32)
        _product(NO_TRANS, 128, 64, 784, X.ravel(), 0, 784, W.ravel(), 0, 64, Z.ravel(), 0, 64,
                 False, tiled)
        out[tiled] = Z.astype(np.float64)
    bound = 2 * _bound(np.float32, 784, np.abs(X.astype(np.float64)), np.abs(W.astype(np.float64)))
    assert np.all(np.abs(out[True] - out[False]) <= bound)
    assert not np.array_equal(out[True], out[False])  # really two different summations


# Training: widths chosen so the kernels' products use whole tiles, leftover
# vectors and a BLAS tail (37 and 19 units), batches not a multiple of the
# tile height (5 rows, and a last batch of 3). Same tolerances as
# tests/test_backends.py (float64 1e-10; float32 SGD 2e-6, Adam 3e-5).
OPTIMIZERS = {"sgd-nesterov": lambda n, dt: SGD(n, dt, 0.1, "constant", 0.9, True),
              "adam": lambda n, dt: Adam(n, dt, 0.01)}
RTOL = {(np.float64, "sgd-nesterov"): 1e-10, (np.float64, "adam"): 1e-10,
        (np.float32, "sgd-nesterov"): 2e-6, (np.float32, "adam"): 3e-5}
LOSS_RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def _train(backend, tiled, dtype, optimizer_name, monkeypatch, units):
    monkeypatch.setattr(config, "TILED_PRODUCTS", tiled)
    rng = np.random.default_rng(0)
    network = Network(units, "logistic", "log_loss")
    params = rng.normal(scale=0.3, size=network.n_params).astype(dtype)
    X = rng.normal(size=(23, 40)).astype(dtype)
    Y = np.eye(units[-1], dtype=dtype)[rng.integers(0, units[-1], 23)]
    trainer = backends.make_trainer(backend, network, X, Y, None, 5, dtype)
    optimizer = OPTIMIZERS[optimizer_name](network.n_params, dtype)
    loss_sums = []
    for epoch in range(3):
        rows = np.random.default_rng(epoch).permutation(23)
        loss_sum, n_done = trainer.run(params, optimizer, rows, 0, 5, 1e-3)
        assert n_done == 5
        loss_sums.append(loss_sum)
    return params, np.array(loss_sums)


# 5 first-layer units are less than a vector: the kernel gathers the batch; 32
# fill whole vectors and 37 whole vectors and a tail: the tiles read the rows
# where they lie in X, also when the first layer is the softmax output layer.
UNITS = {"gathered": [40, 5, 19, 3], "rows-in-place": [40, 32, 19, 3],
         "rows-in-place-tail": [40, 37, 19, 3], "no-hidden-in-place": [40, 20]}


@pytest.mark.parametrize("layout", UNITS)
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_training_with_tiles_matches_the_numpy_reference(dtype, optimizer_name, layout,
                                                         monkeypatch):
    units = UNITS[layout]
    want, want_loss = _train("numpy", None, dtype, optimizer_name, monkeypatch, units)
    rtol = RTOL[(dtype, optimizer_name)]
    for tiled in (True, False):
        got, got_loss = _train("numba", tiled, dtype, optimizer_name, monkeypatch, units)
        scale = np.abs(want).max()
        assert np.abs(got.astype(np.float64) - want).max() <= rtol * scale, tiled
        np.testing.assert_allclose(got_loss, want_loss, rtol=LOSS_RTOL[dtype])


def test_tiled_setting_follows_config(monkeypatch):
    monkeypatch.setattr(config, "TILED_PRODUCTS", None)
    assert backends.tiled_products() == _tiles.PREFERRED
    for forced in (True, False):
        monkeypatch.setattr(config, "TILED_PRODUCTS", forced)
        assert backends.tiled_products() is forced
