"""fastmlp on Dask: grid search on a real LocalCluster, out-of-core partial_fit, the example.

The cluster has 2 single-threaded worker processes, started once for the
module (after the parent has filled the Numba cache, so the workers load the
kernels instead of compiling them) and closed by the fixture's finalizer.
"""

import os
import pickle
import pickletools
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier

from fastmlp import FastMLPClassifier, partial_fit_chunks
from fastmlp.datasets import load_mnist, mnist_available
from fastmlp.streaming import iter_chunks

distributed = pytest.importorskip("distributed", reason="dask[distributed] (test extra) "
                                  "is needed for the Dask tests")
da = pytest.importorskip("dask.array", reason="dask (test extra) is needed for the Dask tests")
import dask  # noqa: E402  (after the importorskip above)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_grid_search.py"


# Few epochs on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:1000] / 16.0, y[:1000]


@pytest.fixture(scope="module")
def mnist():
    data_home = os.environ.get("FASTMLP_DATA")
    if not data_home or not mnist_available(data_home):
        pytest.skip("MNIST not available: set FASTMLP_DATA to a directory with the MNIST "
                    "IDX .gz files to run the MNIST Dask tests.")
    X, y = load_mnist("train", data_home=data_home, download=False)
    X_test, y_test = load_mnist("test", data_home=data_home, download=False)
    return X[:3000], y[:3000], X_test[:2000], y_test[:2000]


def _estimator(**params):
    base = dict(hidden_layer_sizes=(32,), activation="logistic", solver="sgd",
                learning_rate_init=0.2, max_iter=8, tol=0.0, random_state=0)
    return FastMLPClassifier(**{**base, "backend": "numba", **params})


def _kernel_cache_stats():
    """(cache hits, cache misses) of the training and prediction kernels in this process."""
    from fastmlp.kernels import train

    kernels = (train.train_batches, train.predict)
    return (sum(sum(k.stats.cache_hits.values()) for k in kernels),
            sum(sum(k.stats.cache_misses.values()) for k in kernels))


def _blas_threads():
    from threadpoolctl import threadpool_info

    return sorted({pool["num_threads"] for pool in threadpool_info()
                   if pool["user_api"] == "blas"})


@pytest.fixture(scope="module")
def client(request, digits):
    """A Client of a LocalCluster with 2 worker processes of 1 thread each."""
    import numba
    from distributed import Client, LocalCluster

    X, y = digits
    # Fill the Numba cache here first, so the workers load it instead of
    # compiling the same kernels concurrently.
    _estimator(max_iter=1).fit(X[:50], y[:50]).predict(X[:5])
    env = {"NUMBA_CACHE_DIR": numba.config.CACHE_DIR} if numba.config.CACHE_DIR else {}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, env=env)
    request.addfinalizer(cluster.close)
    dask_client = Client(cluster)
    request.addfinalizer(dask_client.close)
    # Ship the helper functions of this module by value: the workers cannot import it.
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    request.addfinalizer(lambda: cloudpickle.unregister_pickle_by_value(sys.modules[__name__]))
    return dask_client


def test_grid_search_on_local_cluster_matches_sequential_search(client, digits):
    X, y = digits
    grid = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-1]}
    on_cluster = GridSearchCV(_estimator(batch_size=50), grid, cv=2, n_jobs=-1)
    with joblib.parallel_backend("dask"):
        on_cluster.fit(X, y)
    local = GridSearchCV(_estimator(batch_size=50), grid, cv=2, n_jobs=1).fit(X, y)

    # Every fit ran in a worker process: the scores are the sequential ones exactly.
    np.testing.assert_array_equal(on_cluster.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert on_cluster.best_params_ == local.best_params_
    assert on_cluster.best_score_ > 0.8
    # ...and it did run there: the workers trained models, loading the kernels
    # from the on-disk cache filled by the parent, never compiling them.
    stats = client.run(_kernel_cache_stats)
    assert len(stats) == 2
    assert sum(hits for hits, _ in stats.values()) > 0, stats
    assert all(misses == 0 for _, misses in stats.values()), stats
    # Dask limits BLAS to 1 thread per worker process: no oversubscription.
    assert all(threads == [1] for threads in client.run(_blas_threads).values())


def test_estimator_pickles_small_without_compiled_objects(digits):
    X, y = digits
    unfitted = pickle.dumps(_estimator())
    assert len(unfitted) < 2000
    fitted_model = _estimator(solver="adam").fit(X, y)
    fitted = pickle.dumps(fitted_model)
    # Only sklearn-style state: no Numba dispatchers, compiled code or workspaces.
    modules = {arg for _, arg, _ in pickletools.genops(fitted)
               if isinstance(arg, str) and "." in arg}  # dotted strings: module names
    assert {"fastmlp.estimators", "fastmlp.engine.optimizers"} <= modules  # the check sees them...
    assert not any(name.startswith(("numba.", "llvmlite.", "fastmlp.engine.backends", "fastmlp._"))
                   for name in modules), modules  # ...and none of the compiled machinery
    # As small as scikit-learn's own MLPClassifier with the same state.
    params = {k: v for k, v in fitted_model.get_params().items()
              if k in MLPClassifier().get_params()}
    reference = pickle.dumps(MLPClassifier(**params).fit(X, y))
    assert len(fitted) <= len(reference) + 2000
    clone = pickle.loads(fitted)
    np.testing.assert_array_equal(clone.predict_proba(X), fitted_model.predict_proba(X))


def test_partial_fit_over_dask_chunks_equals_in_memory_partial_fit_and_fit(mnist):
    X, y, X_test, y_test = mnist
    epochs, rows = 6, 750
    X_dask = da.from_array(X, chunks=(rows, 392))  # 2 column blocks: merged per row slab
    y_dask = da.from_array(y, chunks=1000)  # different row chunks: aligned to X's
    with dask.config.set(scheduler="synchronous"):
        streamed = partial_fit_chunks(_estimator(hidden_layer_sizes=(64,)), X_dask, y_dask,
                                      epochs=epochs)

    in_memory = _estimator(hidden_layer_sizes=(64,))
    for _ in range(epochs):
        for start in range(0, X.shape[0], rows):
            in_memory.partial_fit(X[start:start + rows], y[start:start + rows],
                                  classes=np.arange(10))
    for a, b in zip(streamed.coefs_ + streamed.intercepts_,
                    in_memory.coefs_ + in_memory.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert streamed.coefs_[0].dtype == np.float32  # MNIST's dtype was kept

    fitted = _estimator(hidden_layer_sizes=(64,), max_iter=epochs).fit(X, y)
    streamed_acc, fit_acc = streamed.score(X_test, y_test), fitted.score(X_test, y_test)
    assert fit_acc > 0.8  # learned (chance is 0.1); seed 0 gives 0.858
    # Same epochs, but shuffled within chunks instead of over all rows: over
    # seeds 0-5 the streamed model is within 0.008 of fit(); 0.02 allows for
    # other BLAS builds, and still fails if chunking cost real accuracy.
    assert streamed_acc >= fit_acc - 0.02, (streamed_acc, fit_acc)


def test_iter_chunks_of_iterables_and_errors():
    rng = np.random.default_rng(0)
    X = rng.random((90, 3))
    y = (X[:, 0] > 0.5).astype(int)
    pairs = [(X[i:i + 30], y[i:i + 30]) for i in range(0, 90, 30)]
    dask_pairs = [(da.from_array(a), da.from_array(b)) for a, b in pairs]
    got = list(iter_chunks(dask_pairs))
    assert all(isinstance(a, np.ndarray) and isinstance(b, np.ndarray) for a, b in got)
    np.testing.assert_array_equal(np.vstack([a for a, _ in got]), X)

    with pytest.raises(TypeError, match="dask array"):
        next(iter_chunks(X, y))
    with pytest.raises(ValueError, match="rows"):
        next(iter_chunks(da.from_array(X), y[:10]))
    with pytest.raises(ValueError, match="re-iterable"):
        partial_fit_chunks(_estimator(), iter(pairs), classes=[0, 1], epochs=2)
    with pytest.raises(ValueError, match="classes"):
        partial_fit_chunks(_estimator(), pairs)
    with pytest.raises(ValueError, match="epochs"):
        partial_fit_chunks(_estimator(), pairs, classes=[0, 1], epochs=0)

    # A list of pairs trains like the same partial_fit calls by hand, epoch after epoch.
    streamed = partial_fit_chunks(_estimator(), pairs, classes=[0, 1], epochs=2)
    by_hand = _estimator()
    for _ in range(2):
        for a, b in pairs:
            by_hand.partial_fit(a, b, classes=[0, 1])
    np.testing.assert_array_equal(streamed.coefs_[0], by_hand.coefs_[0])


@pytest.mark.slow
def test_example_quick_mode_runs_on_a_local_cluster(tmp_path, mnist):
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--quick"], cwd=tmp_path,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    assert re.search(r"with 2 workers", out), out
    best = re.search(r"best parameters: (\{.*\})", out)
    assert best and "hidden_layer_sizes" in best.group(1), out
    test_acc = float(re.search(r"test accuracy of the refitted best model: ([0-9.]+)",
                               out).group(1))
    assert test_acc > 0.7, out
    assert re.search(r"grid search time: [0-9.]+ s for 5 fits", out), out


_WARM_CHILD = """
import runpy, sys
import numpy as np
example = runpy.run_path(sys.argv[1])
rng = np.random.default_rng(0)
X, y = rng.random((64, 784)).astype(np.float32), np.arange(64) % 10
example["warm_compile_cache"](X, y)
from fastmlp.kernels import train
print(sum(sum(k.stats.cache_hits.values()) + sum(k.stats.cache_misses.values())
          for k in (train.train_batches, train.predict)))
"""


@pytest.mark.slow
def test_example_fills_the_compile_cache_before_the_workers_start():
    # Under the default backend='auto' its small warm-up fit would run on
    # NumPy and leave the workers to compile the kernels all at once.
    done = subprocess.run([sys.executable, "-c", _WARM_CHILD, str(EXAMPLE)],
                          capture_output=True, text=True, timeout=600, check=True)
    assert int(done.stdout.split()[-1]) >= 2, done.stderr
