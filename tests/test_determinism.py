"""Determinism: same data and random_state give bitwise identical models.

What the bits depend on (all else equal):

- ``random_state`` (initialisation, shuffling, the early-stopping split);
- ``dtype`` (float32 and float64 round differently);
- ``backend`` (the NumPy reference sums in another order than the kernels;
  the two agree to rounding, not bitwise);
- ``config.KERNEL_PARTS`` (how the kernels split a batch), but not how many
  threads run the parts;
- the BLAS thread count, but only if ``config.BLAS_THREADS_PER_FIT`` is
  changed from its default of 1, or for the ``numpy`` backend, which like any
  NumPy code uses all the BLAS threads a lone fit has: OpenBLAS blocks a
  product differently for one thread and for several when the summed
  dimension is long (784 input features are), so the same product then
  rounds differently. With the default, every product of the ``numba``
  backend runs on one BLAS thread, whatever the process's limit, and its
  results are bitwise reproducible across runs, processes and Python threads.

The loss values (``loss_``, ``loss_curve_``) do not depend on how an epoch is
split into compiled calls (sized by wall time, ``config.CHUNK_SECONDS``): the
running sum is carried from call to call, in batch order.

Also checked: fits run concurrently in Python threads (the kernels release the
GIL) give the results of the same fits run one after another, and processes
compiling the kernels at the same time into an empty Numba cache neither
crash nor corrupt it.
"""

import hashlib
import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastmlp import FastMLPClassifier, FastMLPRegressor


def _data(n, d, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    return rng.rand(n, d).astype(dtype), rng.randint(0, 4, n)


def _fingerprint(est, X):
    """Bytes of the weights, the predictions and the number of epochs.

    Not the loss values: see test_loss_curve_does_not_depend_on_chunking.
    """
    arrays = list(est.coefs_) + list(est.intercepts_)
    out = est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)
    arrays += [out, np.array([est.n_iter_])]
    return b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)


def _fit(spec):
    """Fit one model described by a dict; return its fingerprint."""
    spec = dict(spec)
    n, d, seed = spec.pop("n"), spec.pop("d"), spec.pop("data_seed", 0)
    dtype = np.dtype(spec.pop("X_dtype", "float64"))
    X, y = _data(n, d, seed, dtype)
    est_cls = FastMLPRegressor if spec.pop("regressor", False) else FastMLPClassifier
    est = est_cls(**spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return _fingerprint(est, X)


SMALL = [
    {"n": 300, "d": 20, "hidden_layer_sizes": (16,), "solver": solver, "backend": backend,
     "X_dtype": dtype, "max_iter": 4, "random_state": 3, "early_stopping": early}
    for solver in ("sgd", "adam", "lbfgs") for backend in ("numba", "numpy")
    for dtype in ("float32", "float64") for early in (False, True)
    if not (early and solver == "lbfgs")
]


@pytest.mark.parametrize("spec", SMALL, ids=lambda s: "-".join(
    str(s[k]) for k in ("solver", "backend", "X_dtype", "early_stopping")))
def test_same_random_state_gives_identical_bits(spec):
    assert _fit(spec) == _fit(spec)


def test_different_random_state_gives_different_model():
    # The fingerprint is sensitive enough to tell models apart.
    spec = SMALL[0]
    assert _fit(spec) != _fit({**spec, "random_state": 4})


def test_sparse_and_regressor_are_deterministic():
    import scipy.sparse as sp

    X, y = _data(200, 30)
    X[X < 0.7] = 0
    runs = []
    for _ in range(2):
        clf = FastMLPClassifier((8,), max_iter=3, random_state=0)
        reg = FastMLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(sp.csr_matrix(X), y)
            reg.fit(X, y.astype(float))
        runs.append(_fingerprint(clf, sp.csr_matrix(X)) + _fingerprint(reg, X))
    assert runs[0] == runs[1]


# Large enough that OpenBLAS actually uses several threads (784 x 64 products).
WIDE = [{"n": 600, "d": 784, "hidden_layer_sizes": (64,), "solver": solver, "backend": backend,
         "X_dtype": "float32", "max_iter": 2, "random_state": i, "data_seed": i}
        for i, (solver, backend) in enumerate([("adam", "numba"), ("sgd", "numba"),
                                               ("adam", "numpy"), ("lbfgs", "numba")])]
# numba only: the numpy backend's bits follow its BLAS threads (see the README), and
# OpenBLAS may run even these products (predict's 600 x 40 x 32) in two threads.
NARROW = [{**spec, "d": 40, "hidden_layer_sizes": (32,)} for spec in WIDE
          if spec["backend"] == "numba"]
# A lone numba fit runs its batches in two threads, overlapping fits in one each.
WIDE_NUMBA = [{**spec, "backend": "numba"} for spec in WIDE]

CHILD = r"""
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
from test_determinism import _fit, WIDE_NUMBA, SMALL
print(json.dumps([hashlib.sha256(_fit(spec)).hexdigest() for spec in WIDE_NUMBA + SMALL[:4]]))
"""


@pytest.mark.slow
def test_identical_across_processes():
    # The child may see another BLAS limit than this process (dask, imported by
    # other tests, sets OPENBLAS_NUM_THREADS=1 for the processes it starts),
    # so a lone numba fit may run in one thread there and two here: same bits.
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", CHILD, here], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = [hashlib.sha256(_fit(spec)).hexdigest() for spec in WIDE_NUMBA + SMALL[:4]]
    assert ours == theirs


def _sequential_and_concurrent(specs):
    sequential = [_fit(spec) for spec in specs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(_fit, specs))
    return sequential, concurrent


def test_concurrent_fits_in_threads_match_sequential():
    # Four different fits on two threads: no shared mutable state (every fit
    # and prediction has its own workspace and BLAS scratch), and the BLAS
    # thread count does not follow how many fits overlap.
    sequential, concurrent = _sequential_and_concurrent(WIDE_NUMBA)
    assert sequential == concurrent


def test_concurrent_fits_in_threads_match_sequential_pinned_blas():
    with threadpool_limits(1):
        sequential, concurrent = _sequential_and_concurrent(WIDE)
    assert sequential == concurrent


def test_results_do_not_depend_on_the_process_blas_limit():
    # Products summing 784 terms would round differently with 1 and 2 OpenBLAS
    # threads; numba fits use config.BLAS_THREADS_PER_FIT (1) whatever the
    # limit, and with limit 2 they run their batches in two threads of their own.
    with threadpool_limits(1):
        one = [_fit(spec) for spec in WIDE_NUMBA]
    with threadpool_limits(2):
        two = [_fit(spec) for spec in WIDE_NUMBA]
    assert one == two


def test_concurrent_fits_in_threads_match_sequential_narrow():
    # Narrow networks stay in one thread of their own: identical without pinning.
    sequential, concurrent = _sequential_and_concurrent(NARROW)
    assert sequential == concurrent


def test_concurrent_predictions_match_sequential():
    X, y = _data(3000, 784, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = [FastMLPClassifier((32,), max_iter=1, random_state=i, backend=b).fit(X, y)
                  for i, b in enumerate(["numba", "numba", "numpy", "numba"])]
    with threadpool_limits(1):
        sequential = [m.predict_proba(X).tobytes() for m in models]
        with ThreadPoolExecutor(max_workers=2) as pool:
            concurrent = list(pool.map(lambda m: m.predict_proba(X).tobytes(), models))
    assert sequential == concurrent


COMPILE_CHILD = r"""
import hashlib, json
import numpy as np
from fastmlp import FastMLPClassifier
from fastmlp.kernels import train
from fastmlp.kernels import sync
from fastmlp.kernels import tiles

rng = np.random.RandomState(0)
X, y = rng.rand(100, 4), rng.randint(0, 3, 100)
clf = FastMLPClassifier((5,), solver="sgd", max_iter=3, random_state=0, backend="numba").fit(X, y)
digest = hashlib.sha256(b"".join(a.tobytes() for a in clf.coefs_ + clf.intercepts_)
                        + clf.predict_proba(X).tobytes()).hexdigest()
stats = {name: [sum(getattr(train, name).stats.cache_hits.values()),
                sum(getattr(train, name).stats.cache_misses.values())]
         for name in ("train_batches", "predict")}
# Versions of the kernels' callees this process compiled or loaded (none when it
# loaded train_batches from the cache).
versions = {f"{mod.__name__}.{name}": len(getattr(mod, name).signatures)
            for mod, name in ((tiles, "product"), (tiles, "product_of_rows"), (sync, "barrier"))}
print(json.dumps({"digest": digest, "stats": stats, "versions": versions}))
"""


@pytest.mark.slow
def test_processes_compiling_at_once_share_the_cache(tmp_path):
    # joblib workers starting together on an empty compile cache.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache"),
           "PYTHONWARNINGS": "ignore"}

    def start():
        return subprocess.Popen([sys.executable, "-c", COMPILE_CHILD], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(proc):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err
        return {**json.loads(out.strip().splitlines()[-1]), "stderr": err}

    notice = "fastmlp: compiling the float64 dense training kernels"
    racers = [finish(p) for p in [start() for _ in range(3)]]
    assert len({r["digest"] for r in racers}) == 1
    # A compiling first fit says so once (engine/compile_notice.py).
    assert all(r["stderr"].count(notice) == 1 for r in racers), racers[0]["stderr"]
    # One compiled version of each per dtype, whatever constants the call sites
    # pass (literal flags compiled product_of_rows twice: ~1 s of cold compile).
    for name in racers[0]["versions"]:
        counts = [r["versions"][name] for r in racers]
        assert max(counts) == 1, (name, counts)
    # A later process loads every kernel it needs from the cache they wrote.
    late = finish(start())
    assert late["digest"] == racers[0]["digest"]
    assert "compiling" not in late["stderr"]
    for name, (hits, misses) in late["stats"].items():
        assert hits >= 1 and misses == 0, (name, late["stats"])


def _fit_with_chunks(monkeypatch, size):
    """Fit with every compiled call running ``size`` batches (instead of timed chunks)."""
    from fastmlp.engine import backends

    class FixedChunks(backends.ChunkSizer):
        def __init__(self, n_batches, rate=None):
            super().__init__(n_batches, rate)
            self.size = size

        def update(self, n_batches, seconds):
            pass

    monkeypatch.setattr(backends, "ChunkSizer", FixedChunks)
    X, y = _data(400, 20)
    est = FastMLPClassifier((16,), batch_size=20, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def test_loss_curve_does_not_depend_on_chunking(monkeypatch):
    by_sevens = _fit_with_chunks(monkeypatch, 7)
    whole_epochs = _fit_with_chunks(monkeypatch, 20)
    # The weights never depend on the chunking ...
    for a, b in zip(by_sevens.coefs_, whole_epochs.coefs_):
        assert a.tobytes() == b.tobytes()
    # ... and neither do the loss values (the running sum is carried across calls),
    # so the early-stopping decisions made on them cannot either.
    assert by_sevens.loss_curve_ == whole_epochs.loss_curve_


def test_partial_fit_starts_from_the_rate_its_last_call_measured(monkeypatch):
    """The first compiled call of a partial_fit is sized from the previous call's rate.

    Only the timing changes, never the result (see the chunking test above); at
    another batch size the old rate is not used.
    """
    from fastmlp.engine import backends

    sizes = []
    original = backends.NumbaTrainer.run

    def spy(self, params, optimizer, rows, b_start, b_stop, *args, **kwargs):
        sizes.append(b_stop - b_start)
        return original(self, params, optimizer, rows, b_start, b_stop, *args, **kwargs)

    monkeypatch.setattr(backends.NumbaTrainer, "run", spy)
    X, y = _data(400, 20)
    est = FastMLPClassifier((16,), batch_size=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(X, y, classes=np.unique(y))
        assert sizes[0] == 1  # nothing known yet: one batch, then grow
        sizes.clear()
        est.partial_fit(X, y)
        assert sizes[0] > 1  # a whole epoch of 40 batches is far below CHUNK_SECONDS
        sizes.clear()
        est.set_params(batch_size=20).partial_fit(X, y)
        assert sizes[0] == 1
