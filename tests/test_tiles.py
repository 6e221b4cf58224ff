"""fastmlp.kernels.tiles: register-tiled products against NumPy, and training with and without them.

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

from fastmlp import config
from fastmlp.kernels import tiles
from fastmlp.engine import backends
from fastmlp.kernels.blas import NO_TRANS, TRANS
from fastmlp.kernels.jit import addr as _addr
from fastmlp.kernels.tiles import product_of_rows
from fastmlp.engine.network import Network
from fastmlp.engine.optimizers import SGD, Adam

DTYPES = [np.float32, np.float64]


@njit
def _product(trans_a, m, n, k, A, a_off, lda, B, b_off, ldb, C, c_off, ldc, accumulate, tiled):
    scratch = np.zeros(8, dtype=np.int32)
    fscratch = np.zeros(2, dtype=C.dtype)
    tiles.product(trans_a, m, n, k, _addr(A, a_off), lda, _addr(B, b_off), ldb,
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
# Columns (vectors of 16 float32 / 8 float64 values with AVX-512, half that
# with AVX2): one vector, whole tiles, tiles plus leftover vectors, a tail
# shorter than a vector (a masked vector) after whole ones or alone. k: none,
# one, around the k blocks, and several blocks.
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


def _strips(M, sw):
    """M (rows x n) strip-major: strips of sw columns (the last padded with NaN), each all rows."""
    n_strips = -(-M.shape[1] // sw)
    out = np.full((n_strips, M.shape[0], sw), np.nan, dtype=M.dtype)
    for s in range(n_strips):
        part = M[:, s * sw:(s + 1) * sw]
        out[s, :, :part.shape[1]] = part
    return out


def _unstrip(S, n):
    return np.concatenate(list(S), axis=1)[:, :n]


def _product_of_rows(trans_a, m, n, k, X, rows, col0, B, C, accumulate, strip_major=False):
    """op(A) @ B with A's columns from col0 of the rows: all of them listed (one run).

    With ``strip_major``, B and C are passed strip-major (padding NaN: read
    or written, it shows) and C is unpacked back in place.
    """
    sw = tiles.STRIP_BYTES // C.itemsize
    if not strip_major:
        _rows_product_one_run(trans_a, m, n, k, X, rows, col0, B, B.shape[1], sw, C,
                              C.shape[1], sw, accumulate)
        return
    Bs, Cs = _strips(B, sw), _strips(C, sw)
    _rows_product_one_run(trans_a, m, n, k, X, rows, col0, Bs, sw, B.shape[0] * sw, Cs, sw,
                          C.shape[0] * sw, accumulate)
    assert np.isnan(Cs[-1, :, n - (Cs.shape[0] - 1) * sw:]).all()  # padding untouched
    C[...] = _unstrip(Cs, n)


@njit
def _rows_product_one_run(trans_a, m, n, k, X, rows, col0, B, ldb, b_ss, C, ldc, c_ss,
                          accumulate):
    addrs = np.empty(rows.size, dtype=np.int64)
    for i in range(rows.size):
        addrs[i] = _addr(X, rows[i] * X.shape[1])
    width = k if trans_a == NO_TRANS else m
    cols = np.arange(col0, col0 + width)
    runs = np.array([col0, col0 + width])
    # Column c of the rows meets row c of B (or of C, transposed): shift them by col0.
    b_ptr = _addr(B, 0) - (col0 * ldb * B.itemsize if trans_a == NO_TRANS else 0)
    c_ptr = _addr(C, 0) - (col0 * ldc * C.itemsize if trans_a == TRANS else 0)
    product_of_rows(trans_a, m, n, k, addrs, cols, runs, np.empty(0, np.int64), 0,
                    (b_ptr, ldb, b_ss), (c_ptr, ldc, c_ss), accumulate,
                    np.zeros(2, dtype=C.dtype))


# (m, vectors, extra columns, k, col0): leftover rows and vectors, a tail of columns
# shorter than a vector (after whole vectors, or alone), k past a k block,
# offsets into the rows.
ROW_SHAPES = [(1, 1, 0, 1, 0, acc) for acc in (False, True)] + [
    (7, 4, 0, 33, 5, acc) for acc in (False, True)] + [
    (13, 5, 0, 129, 0, acc) for acc in (False, True)] + [
    (37, 2, 0, 300, 11, acc) for acc in (False, True)] + [
    (5, 1, 3, 40, 2, acc) for acc in (False, True)] + [
    (14, 2, 5, 600, 0, acc) for acc in (False, True)] + [
    (9, 0, 3, 50, 1, acc) for acc in (False, True)] + [
    (6, 8, 0, 20, 40, True), (8, 4, 7, 129, 3, False), (1, 0, 1, 7, 0, False)] + [
    # A leftover row's tile of ROW_VECTORS vectors spans strips, then one vector and a tail.
    (7, 9, 3, 33, 2, acc) for acc in (False, True)]


@pytest.mark.parametrize("trans", [NO_TRANS, TRANS], ids=["A", "A.T"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=["-".join(map(str, s)) for s in ROW_SHAPES])
def test_product_of_scattered_rows_is_the_product(shape, dtype, trans):
    """A's rows taken where they lie in X (shuffled rows, from column col0), never copied.

    B and C row-major, then strip-major: the same bits.
    """
    m, vectors, extra, k, col0, accumulate = shape
    n = vectors * tiles.VECTOR_BYTES // np.dtype(dtype).itemsize + extra
    rng = np.random.default_rng(1)
    X = rng.standard_normal((700, col0 + max(k, m) + 3)).astype(dtype)
    n_rows = m if trans == NO_TRANS else k
    width = k if trans == NO_TRANS else m
    rows = rng.choice(700, n_rows, replace=False).astype(np.int64)
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
    C_strips = C0.copy()
    _product_of_rows(trans, m, n, k, X, rows, col0, B, C_strips, accumulate, strip_major=True)
    np.testing.assert_array_equal(C_strips, C)


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
# vectors and masked tails (37 and 19 units), batches not a multiple of the
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


# The tiles read the batch's rows where they lie in X (without tiles the
# kernel gathers them): 5 first-layer units are less than a vector (a masked
# vector only), 32 fill whole vectors, 37 whole vectors and a tail; also when
# the first layer is the softmax output layer.
UNITS = {"narrow": [40, 5, 19, 3], "rows-in-place": [40, 32, 19, 3],
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
    assert backends.tiled_products() == tiles.PREFERRED
    for forced in (True, False):
        monkeypatch.setattr(config, "TILED_PRODUCTS", forced)
        assert backends.tiled_products() is forced


# B's last row ends where an inaccessible page begins, so a tile that read a
# whole vector at a masked tail would crash the process (run in a child).
_GUARD_PAGE_SCRIPT = """
import ctypes, mmap, sys
import numpy as np
from numba import njit
from fastmlp.kernels import tiles
from fastmlp.kernels.blas import NO_TRANS

dtype = np.dtype(sys.argv[1])
page = mmap.PAGESIZE
buf = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
start = ctypes.addressof(ctypes.c_char.from_buffer(buf))
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
assert libc.mprotect(start + page, page, 0) == 0  # PROT_NONE
k, n = 9, 3  # n: fewer columns than a vector
count = k * n
B = np.frombuffer(buf, dtype=dtype, count=count, offset=page - count * dtype.itemsize)
B[:] = np.arange(1, count + 1)
A = np.ones((7, k), dtype=dtype)
C = np.zeros((7, n), dtype=dtype)


@njit
def run(A, B, C):
    tiles.product(NO_TRANS, 7, n, k, A.ctypes.data, k, B.ctypes.data, n, C.ctypes.data, n,
                   True, True, np.zeros(8, np.int32), np.zeros(2, C.dtype))


run(A, B, C)
assert np.array_equal(C, np.tile(B.reshape(k, n).sum(axis=0), (7, 1))), C
print("ok")
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masked_tail_reads_nothing_past_the_last_column(dtype):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _GUARD_PAGE_SCRIPT, dtype],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
