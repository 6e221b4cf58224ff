"""``backend='auto'``: calls too small to win back loading the kernels run on NumPy.

The choice is made from shapes and parameters alone, so a given fit always
runs (and rounds) the same way, whatever ran before it in the process.
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastmlp import FastMLPClassifier, FastMLPRegressor, config
from fastmlp.engine import backends

# The suite pins 'auto' to the kernels (conftest.py); here it is as shipped.
pytestmark = pytest.mark.usefixtures("auto_as_shipped")

RNG = np.random.default_rng(0)
X_SMALL = RNG.random((200, 64))
Y_SMALL = RNG.integers(0, 3, 200)
#: The fit of benchmarks/bench_jit.py: 5 epochs of 7 mini-batches.
TINY = dict(hidden_layer_sizes=(16,), activation="logistic", solver="sgd", batch_size=32,
            max_iter=5, random_state=0)


def _weights(est):
    return est.coefs_ + est.intercepts_


def test_rule_is_numpys_estimated_time_against_the_threshold():
    limit = config.AUTO_NUMPY_SECONDS
    n = int(limit / config.NUMPY_SECONDS_PER_BATCH)
    assert backends.auto_backend(n - 1, 0.0) == "numpy"
    assert backends.auto_backend(n + 1, 0.0) == "numba"
    flops = limit * config.NUMPY_FLOPS_PER_SECOND
    assert backends.auto_backend(0, 0.99 * flops) == "numpy"
    assert backends.auto_backend(0, 1.01 * flops) == "numba"
    # Both terms add up.
    assert backends.auto_backend(n // 2 + 1, 0.5 * flops) == "numba"


def test_zero_threshold_always_runs_the_kernels(monkeypatch):
    monkeypatch.setattr(config, "AUTO_NUMPY_SECONDS", 0.0)
    assert backends.auto_backend(0, 0.0) == "numba"
    assert FastMLPClassifier(**TINY).fit(X_SMALL, Y_SMALL).backend_ == "numba"


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("cls, y", [(FastMLPClassifier, Y_SMALL),
                                    (FastMLPRegressor, X_SMALL[:, 0])],
                         ids=["classifier", "regressor"])
def test_small_fit_runs_numpy_exactly_as_backend_numpy(cls, y, solver):
    params = {**TINY, "solver": solver}
    auto = cls(**params).fit(X_SMALL, y)
    ref = cls(**params, backend="numpy").fit(X_SMALL, y)
    assert auto.backend_ == ref.backend_ == "numpy"
    for a, b in zip(_weights(auto), _weights(ref)):
        np.testing.assert_array_equal(a, b)
    assert auto.loss_ == ref.loss_
    np.testing.assert_array_equal(auto.predict(X_SMALL), ref.predict(X_SMALL))


def test_larger_fit_runs_the_kernels_exactly_as_backend_numba():
    X, y = load_digits(return_X_y=True)
    params = dict(hidden_layer_sizes=(64,), activation="logistic", solver="sgd",
                  batch_size=32, max_iter=20, tol=0.0, random_state=0)
    auto = FastMLPClassifier(**params).fit(X / 16, y)  # 20 epochs x 57 batches
    ref = FastMLPClassifier(**params, backend="numba").fit(X / 16, y)
    assert auto.backend_ == ref.backend_ == "numba"
    for a, b in zip(_weights(auto), _weights(ref)):
        np.testing.assert_array_equal(a, b)


def test_partial_fit_runs_the_kernels_however_small():
    est = FastMLPClassifier(**TINY).fit(X_SMALL, Y_SMALL)
    assert est.backend_ == "numpy"
    est.partial_fit(X_SMALL[:10], Y_SMALL[:10])
    assert est.backend_ == "numba"
    assert FastMLPClassifier(**TINY).partial_fit(X_SMALL[:10], Y_SMALL[:10],
                                                 classes=[0, 1, 2]).backend_ == "numba"


def test_choice_does_not_depend_on_the_kernels_being_loaded():
    first = FastMLPClassifier(**TINY).fit(X_SMALL, Y_SMALL)
    FastMLPClassifier(**TINY, backend="numba").fit(X_SMALL, Y_SMALL)  # kernels loaded now
    again = FastMLPClassifier(**TINY).fit(X_SMALL, Y_SMALL)
    assert first.backend_ == again.backend_ == "numpy"
    for a, b in zip(_weights(first), _weights(again)):
        np.testing.assert_array_equal(a, b)


def test_predictions_choose_by_their_own_size(monkeypatch):
    # 64-512-3 (34k parameters): 200 rows are NumPy's, 8000 rows the kernels'.
    est = FastMLPClassifier(**{**TINY, "hidden_layer_sizes": (512,), "max_iter": 1})
    est.fit(X_SMALL, Y_SMALL)
    X_big = np.random.default_rng(1).random((8000, 64))
    ran = []
    real = backends.predict
    monkeypatch.setattr(backends, "predict",
                        lambda backend, *args: ran.append(backend) or real(backend, *args))
    small, big = est.predict_proba(X_SMALL), est.predict_proba(X_big)
    assert ran == ["numpy", "numba"]
    np.testing.assert_array_equal(small, est.set_params(backend="numpy").predict_proba(X_SMALL))
    np.testing.assert_array_equal(big, est.set_params(backend="numba").predict_proba(X_big))


def test_bad_shapes_leave_the_error_to_validation():
    with pytest.raises(ValueError, match="Expected 2D array"):
        FastMLPClassifier(**TINY).fit(X_SMALL[:, 0], Y_SMALL)


_FRESH = """
import sys
import numpy as np
import fastmlp
imported = "numba" in sys.modules
rng = np.random.default_rng(0)
X, y = rng.random((200, 64)), rng.integers(0, 3, 200)
est = fastmlp.FastMLPClassifier(hidden_layer_sizes=(16,), activation="logistic",
                                solver="sgd", batch_size=32, max_iter=5, random_state=0)
est.fit(X, y).predict(X)
print(imported, est.backend_, "numba" in sys.modules)
"""


@pytest.mark.slow
def test_small_fit_in_a_fresh_process_never_imports_numba():
    done = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True,
                          timeout=300, check=True)
    assert done.stdout.split() == ["False", "numpy", "False"], done.stderr


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_small_fits_in_threads_are_the_same_bits_as_one_after_another():
    # 'auto' keeps BLAS at one thread per product on NumPy too (an explicit
    # backend='numpy' does not), so overlapping fits round as lone ones.
    X, y = load_digits(return_X_y=True)
    X = X / 16

    def fit(seed):
        est = FastMLPClassifier((128,), activation="logistic", solver="sgd", max_iter=1,
                                learning_rate_init=0.1, tol=0.0, random_state=seed)
        est.fit(X, y)  # (catch_warnings is not thread-safe: the mark filters)
        assert est.backend_ == "numpy"
        return _weights(est)

    alone = [fit(seed) for seed in range(4)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, range(4)))
    for a, b in zip(alone, together):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)
