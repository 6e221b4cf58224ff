"""Memory: fit never copies float32 C-contiguous X, does not grow across epochs,
and predict works in bounded memory on large inputs.

NumPy allocations are traced by :mod:`tracemalloc`, so the traced peak during a
call, minus what was allocated before it, is what the call needed. The bounds
below are explicit sums of what fitting legitimately allocates; a single copy
of X (38 MB here) would exceed them many times over.
"""

import tracemalloc
import warnings

import numpy as np
import pytest

from fastmlp import FastMLPClassifier, config
from fastmlp.engine import backends

N, D, K = 12000, 784, 10
MB = 1 << 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((N, D), dtype=np.float32)
    y = rng.integers(0, K, N)
    # Compile (or load) the kernels outside the measurements: on the kernels
    # explicitly (backend='auto' fits so few rows on NumPy, and the first
    # measured fit then loaded numba and the kernels: ~30 MB).
    for early in (False, True):
        FastMLPClassifier((8,), max_iter=1, early_stopping=early,
                          backend="numba").fit(X[:60], y[:60]).predict(X[:5])
    return X, y


def _fit_allowance(n_rows):
    """What fitting may allocate besides the model, per scikit-learn's own bookkeeping.

    The labels are one-hot encoded by LabelBinarizer (int64), kept as bool and
    converted to the compute dtype (float32) for the kernels; the epoch order
    is an int64 index array (shuffled copies of it); the rest (parameters,
    optimizer state, a batch workspace) is well under the 2 MB slack.
    """
    one_hot = n_rows * K * (8 + 1 + 4)
    indices = 4 * n_rows * 8
    return one_hot + indices + 2 * MB


def _traced_peak(call):
    """Peak traced memory during ``call()`` above what was allocated before it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - before, result


def _fit(X, y, **params):
    est = FastMLPClassifier(**{"hidden_layer_sizes": (8,), "random_state": 0, "shuffle": True,
                               **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("backend, solver", [("numba", "adam"), ("numba", "sgd"),
                                             ("numpy", "adam")])
def test_fit_does_not_copy_float32_X(data, backend, solver):
    X, y = data
    assert X.dtype == np.float32 and X.flags.c_contiguous
    peak, est = _traced_peak(lambda: _fit(X, y, backend=backend, solver=solver, max_iter=2))
    assert est.n_iter_ == 2
    assert peak <= _fit_allowance(N), (peak / MB, _fit_allowance(N) / MB)
    assert peak <= 0.25 * X.nbytes


def test_lbfgs_fit_does_not_copy_float32_X(data):
    X, y = data
    peak, _ = _traced_peak(lambda: _fit(X, y, solver="lbfgs", max_iter=3))
    # The full-batch gradient works on blocks of FULL_BATCH_BLOCK_ROWS rows.
    block = config.FULL_BATCH_BLOCK_ROWS * (8 + K) * 4 * 3
    assert peak <= _fit_allowance(N) + block, peak / MB


def test_early_stopping_copies_only_the_validation_rows(data):
    X, y = data
    fraction = 0.1
    peak, est = _traced_peak(lambda: _fit(X, y, max_iter=2, early_stopping=True,
                                          validation_fraction=fraction, n_iter_no_change=50))
    assert len(est.validation_scores_) == 2
    n_val = int(np.ceil(fraction * N))
    assert peak <= n_val * D * 4 + _fit_allowance(N), peak / MB
    assert peak <= 0.25 * X.nbytes


@pytest.mark.parametrize("per_call", ["3 batches", "2 epochs"])
def test_memory_does_not_grow_across_epochs(data, monkeypatch, per_call):
    X, y = data
    X = X[:5000]
    y = y[:5000]
    # Calls of a few batches each, or (after the first epoch) of two whole epochs.
    from fastmlp import estimators

    monkeypatch.setattr(backends.ChunkSizer, "_target",
                        lambda self, rate: 3 if per_call == "3 batches" else 2 * self.n_batches)
    # Traced memory in use at the start of every compiled call, epoch after epoch.
    in_use = []
    make_trainer = backends.make_trainer

    def recording_make_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        for name in ("run", "run_epochs"):
            setattr(trainer, name, _recording(getattr(trainer, name)))
        return trainer

    def _recording(run):
        def recording_run(*a, **k):
            in_use.append(tracemalloc.get_traced_memory()[0])
            return run(*a, **k)
        return recording_run

    monkeypatch.setattr(backends, "make_trainer", recording_make_trainer)
    peak_short, _ = _traced_peak(lambda: _fit(X, y, max_iter=1, batch_size=500))
    calls_per_epoch = len(in_use)
    in_use.clear()
    peak_long, est = _traced_peak(lambda: _fit(X, y, max_iter=12, batch_size=500))
    assert est.n_iter_ == 12
    later_calls = in_use[calls_per_epoch:]
    assert len(later_calls) >= 5
    # Only loss_curve_ grows (one float per epoch).
    assert max(later_calls) - min(later_calls) <= 64 * 1024, np.ptp(later_calls)
    assert abs(peak_long - peak_short) <= 64 * 1024, (peak_short, peak_long)


def _threads_of_a_lone_call():
    from fastmlp.engine import threads

    with threads.share_cores():
        return threads.cores_for_fit()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("X_dtype", [np.float32, np.float64])
def test_predict_proba_memory_is_bounded(data, backend, X_dtype):
    X, y = data
    est = _fit(X[:2000], y[:2000], backend=backend, max_iter=1, hidden_layer_sizes=(64,))
    X_big = X if X_dtype == np.float32 else X[:8000].astype(np.float64)
    n = X_big.shape[0]
    peak, proba = _traced_peak(lambda: est.predict_proba(X_big))
    assert proba.shape == (n, K) and np.isfinite(proba).all()
    # One chunk in memory per thread: the numba backend splits the chunks
    # among the cores a lone prediction has.
    threads = _threads_of_a_lone_call() if backend == "numba" else 1
    block = min(config.PREDICT_CHUNK_ROWS, n) * threads
    output = n * K * (4 + proba.itemsize)  # float32 outputs, then in the result dtype
    activations = 2 * block * (64 + K) * 8  # the chunks' activations (and NumPy temporaries)
    converted = block * D * 4 if X_dtype != np.float32 else 0  # the chunks of X as float32
    bound = output + activations + converted + 1 * MB
    assert peak <= bound, (peak / MB, bound / MB)
    # Far below a copy of X or full-size activations.
    assert peak < 0.5 * X_big.nbytes
