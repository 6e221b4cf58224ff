"""Fits in threads: same results as one after another, and BLAS threads shared, not multiplied.

Timing is the benchmark's job (``benchmarks/bench_threads.py``); these tests
check what the speed rests on: the count of concurrent fits, the BLAS limits
it sets and restores, and that neither threads nor BLAS thread counts change
any result.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from threadpoolctl import ThreadpoolController, threadpool_limits

from fastmlp import FastMLPClassifier, FastMLPRegressor, config
from fastmlp.engine import threads
from fastmlp.engine import backends


# Few epochs on purpose. A module-level filter, because warnings.catch_warnings
# is not thread-safe.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _estimator(seed=0, **params):
    base = dict(hidden_layer_sizes=(256,), activation="logistic", solver="sgd",
                learning_rate_init=0.1, max_iter=4, tol=0.0, random_state=seed)
    return FastMLPClassifier(**{**base, **params})


def _fit(estimator, X, y):
    return estimator.fit(X, y)  # few epochs on purpose: ConvergenceWarning is filtered


def _weights(model):
    return [np.asarray(a).copy() for a in model.coefs_ + model.intercepts_]


def _assert_same_weights(a, b):
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


def _blas_threads():
    """The distinct thread limits of the loaded BLAS libraries."""
    return sorted({lib.num_threads
                   for lib in ThreadpoolController().select(user_api="blas").lib_controllers})


@pytest.fixture
def two_blas_threads():
    """BLAS set to 2 threads (even on a 1-core runner) for the duration of a test."""
    assert threads.active_calls() == 0
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == [2]
        yield
    assert threads.active_calls() == 0


def test_blas_threads_for_splits_the_limit_and_applies_the_cap():
    assert threads.blas_threads_for(2, 1, cap=None) == 2
    assert threads.blas_threads_for(2, 2, cap=None) == 1
    assert threads.blas_threads_for(2, 3, cap=None) == 1  # never 0
    assert threads.blas_threads_for(8, 3, cap=None) == 2
    assert threads.blas_threads_for(8, 1, cap=1) == 1
    assert threads.blas_threads_for(8, 2, cap=3) == 3
    assert threads.blas_threads_for(1, 1, cap=4) == 1  # a limit is never raised


def test_capped_calls_run_single_threaded_blas_and_restore_it(two_blas_threads, monkeypatch):
    monkeypatch.setattr(config, "BLAS_THREADS_PER_FIT", 1)
    with threads.share_cores():
        assert _blas_threads() == [1]
        with threads.share_cores():
            assert threads.active_calls() == 2
            assert _blas_threads() == [1]
        assert _blas_threads() == [1]
    assert _blas_threads() == [2]  # the user's limit is back once no call runs


def test_uncapped_calls_split_the_limit_while_they_overlap(two_blas_threads, monkeypatch):
    monkeypatch.setattr(config, "BLAS_THREADS_PER_FIT", None)
    with threads.share_cores():
        assert _blas_threads() == [2]  # a call alone keeps every BLAS thread
        with threads.share_cores():
            assert _blas_threads() == [1]  # 2 // 2
            with threads.share_cores():
                assert _blas_threads() == [1]  # max(1, 2 // 3)
            assert _blas_threads() == [1]
        assert _blas_threads() == [2]
    assert _blas_threads() == [2]
    with threadpool_limits(limits=4, user_api="blas"):
        with threads.share_cores(), threads.share_cores():
            assert _blas_threads() == [2]
            with threads.share_cores(), threads.share_cores():
                assert _blas_threads() == [1]
        assert _blas_threads() == [4]
    with threadpool_limits(limits=1, user_api="blas"):  # e.g. set by loky or Dask
        with threads.share_cores():
            assert _blas_threads() == [1]  # lowered, never raised
        assert _blas_threads() == [1]


def test_numpy_backend_calls_get_every_blas_thread_while_alone(two_blas_threads, monkeypatch):
    monkeypatch.setattr(config, "BLAS_THREADS_PER_FIT", 1)
    with threads.share_cores(capped=False):
        assert _blas_threads() == [2]  # NumPy's only way to use both cores
        assert threads.cores_for_fit() == 2
        with threads.share_cores():  # a numba fit joins: its products keep the cap
            assert _blas_threads() == [1]
            assert threads.cores_for_fit() == 1
        assert _blas_threads() == [2]
        with threads.share_cores(capped=False):
            assert _blas_threads() == [1]  # two NumPy fits split the limit
    assert _blas_threads() == [2]


def test_predictions_inside_a_fit_keep_the_fits_cores(two_blas_threads):
    with threads.share_cores():  # a fit
        assert threads.cores_for_fit() == 2
        with threads.share_cores(join_enclosing=True):  # its early-stopping score
            assert threads.active_calls() == 1
            assert threads.cores_for_fit() == 2
        seen = []
        other = threading.Thread(target=lambda: _in_other_thread(seen))
        other.start()
        other.join()
        assert seen == [2, 1]  # another thread's prediction is another call
    assert threads.active_calls() == 0


def _in_other_thread(seen):
    with threads.share_cores(join_enclosing=True):
        seen.extend([threads.active_calls(), threads.cores_for_fit()])


def test_count_is_released_when_a_fit_fails(digits, two_blas_threads):
    X, y = digits
    with pytest.raises(ValueError):
        _estimator().fit(X, y[:10])  # inconsistent lengths
    assert threads.active_calls() == 0
    assert _blas_threads() == [2]


@pytest.mark.parametrize("cap", [1, None])
def test_concurrent_fits_train_with_one_blas_thread_each(digits, two_blas_threads, monkeypatch,
                                                          cap):
    # Both fits wait for each other inside fit (while building their trainer),
    # then record the BLAS limit they are about to train with; the limits are
    # set from the fit threads, not from the thread that set the user's limit.
    monkeypatch.setattr(config, "BLAS_THREADS_PER_FIT", cap)
    X, y = digits
    both_inside = threading.Barrier(2, timeout=60)
    seen = []
    make_trainer = backends.make_trainer

    def recording_make_trainer(*args, **kwargs):
        both_inside.wait()
        seen.append((threads.active_calls(), _blas_threads()))
        both_inside.wait()
        return make_trainer(*args, **kwargs)

    monkeypatch.setattr(backends, "make_trainer", recording_make_trainer)
    with ThreadPoolExecutor(2) as pool:
        models = list(pool.map(lambda s: _fit(_estimator(s, max_iter=1), X, y), [0, 1]))
    assert seen == [(2, [1]), (2, [1])]
    assert _blas_threads() == [2]  # restored once both finished
    assert all(m.n_iter_ == 1 for m in models)


@pytest.mark.parametrize("n_features", [64, 784])  # digits; MNIST's width
def test_fits_in_threads_equal_the_same_fits_one_after_another(digits, n_features):
    X, y = digits
    if n_features != X.shape[1]:
        X = np.random.default_rng(1).random((X.shape[0], n_features))
    seeds = [0, 1, 2, 3]
    sequential = [_weights(_fit(_estimator(s, max_iter=2), X, y)) for s in seeds]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda s: _weights(_fit(_estimator(s, max_iter=2), X, y)),
                                 seeds))
    for a, b in zip(sequential, threaded):
        _assert_same_weights(a, b)


def test_threaded_fits_of_both_estimators_and_dtypes_are_exact(digits):
    X, y = digits
    models = [_estimator(0, dtype="float32"), _estimator(1, solver="adam"),
              FastMLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=20,
                               random_state=0),
              FastMLPRegressor(hidden_layer_sizes=(32,), activation="logistic", max_iter=3,
                               random_state=1)]
    targets = [y, y, X[:, 20], X[:, 30]]
    sequential = [_weights(_fit(m, X, t)) for m, t in zip(models, targets)]
    clones = [type(m)(**m.get_params()) for m in models]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda mt: _weights(_fit(mt[0], X, mt[1])),
                                 zip(clones, targets)))
    for a, b in zip(sequential, threaded):
        _assert_same_weights(a, b)


def test_grid_search_with_threading_backend_equals_sequential_search(digits):
    X, y = digits
    grid = {"hidden_layer_sizes": [(32,), (64,)], "learning_rate_init": [0.05, 0.2]}
    sequential = _fit(GridSearchCV(_estimator(), grid, cv=2, n_jobs=1), X, y)
    threaded = GridSearchCV(_estimator(), grid, cv=2, n_jobs=2)
    with joblib.parallel_backend("threading"):
        _fit(threaded, X, y)
    np.testing.assert_array_equal(threaded.cv_results_["mean_test_score"],
                                  sequential.cv_results_["mean_test_score"])
    assert threaded.best_params_ == sequential.best_params_
    _assert_same_weights(_weights(threaded.best_estimator_), _weights(sequential.best_estimator_))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_the_blas_limit_in_force(digits, dtype):
    # With 784 inputs (MNIST's width) OpenBLAS rounds the first layer's product
    # differently with 1 and 2 threads; fits pin BLAS to one thread, so the
    # limit the caller set (or loky/Dask set) does not change any bit.
    X_wide = np.random.default_rng(0).random((600, 784))
    for X, y in [digits, (X_wide, digits[1])]:
        runs = []
        for threads in (1, 2):
            with threadpool_limits(limits=threads, user_api="blas"):
                model = _fit(_estimator(dtype=dtype, max_iter=2, batch_size=300), X, y)
                runs.append((_weights(model), model.predict_proba(X)))
        _assert_same_weights(runs[0][0], runs[1][0])
        np.testing.assert_array_equal(runs[0][1], runs[1][1])
