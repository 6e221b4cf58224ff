"""Property tests: shapes, dtypes and label sets drawn by hypothesis.

Each example fits a tiny network on both backends; whatever the shapes, the fitted attributes and
the outputs have the shapes and dtypes scikit-learn's MLP gives, and the two backends agree.
"""

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmlp import FastMLPClassifier, FastMLPRegressor

DTYPES = st.sampled_from([np.float32, np.float64])
HIDDEN = st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple)
SOLVERS = st.sampled_from(["sgd", "adam", "lbfgs"])
# The same examples on every run (CI stays reproducible); for fresh ones, run e.g.
# ``pytest tests/test_properties.py --hypothesis-seed=random`` with more examples.
FEW = settings(max_examples=12, deadline=None, derandomize=True)
# The backends sum in different orders, so three epochs agree to rounding: float32 rounds each
# operation to ~6e-8, and the updates compound it (tests/test_backends.py states the per-step bounds).
RTOL = {np.float32: 1e-4, np.float64: 1e-9}


def _fit_both(est_cls, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [est_cls(backend=b, max_iter=3, random_state=0, **params).fit(X, y)
                for b in ("numba", "numpy")]


@FEW
@given(n=st.integers(5, 40), d=st.integers(1, 12), n_classes=st.integers(2, 5),
       hidden=HIDDEN, dtype=DTYPES, solver=SOLVERS, seed=st.integers(0, 2**16))
def test_classifier_shapes_dtypes_and_backends(n, d, n_classes, hidden, dtype, solver, seed):
    rng = np.random.RandomState(seed)
    X = rng.rand(n, d).astype(dtype)
    y = np.arange(n) % n_classes * 10  # every class present (n >= 5), labels not 0..k-1
    fitted = _fit_both(FastMLPClassifier, X, y, hidden_layer_sizes=hidden, solver=solver)
    for est in fitted:
        units = [d, *hidden, 1 if n_classes == 2 else n_classes]
        assert [c.shape for c in est.coefs_] == list(zip(units[:-1], units[1:]))
        assert [b.shape for b in est.intercepts_] == [(u,) for u in units[1:]]
        assert all(c.dtype == dtype for c in est.coefs_ + est.intercepts_)
        proba = est.predict_proba(X)
        assert proba.shape == (n, n_classes) and proba.dtype == dtype
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=RTOL[dtype])
        assert set(est.predict(X)) <= set(y)
    numba_est, numpy_est = fitted
    np.testing.assert_allclose(numba_est.predict_proba(X), numpy_est.predict_proba(X),
                               rtol=RTOL[dtype], atol=RTOL[dtype] / 10)


@FEW
@given(n=st.integers(4, 40), d=st.integers(1, 12), n_targets=st.integers(1, 3),
       hidden=HIDDEN, dtype=DTYPES, solver=SOLVERS, seed=st.integers(0, 2**16))
def test_regressor_shapes_dtypes_and_backends(n, d, n_targets, hidden, dtype, solver, seed):
    rng = np.random.RandomState(seed)
    X = rng.rand(n, d).astype(dtype)
    y = rng.rand(n, n_targets) if n_targets > 1 else rng.rand(n)
    fitted = _fit_both(FastMLPRegressor, X, y, hidden_layer_sizes=hidden, solver=solver)
    for est in fitted:
        out = est.predict(X)
        assert out.shape == y.shape and out.dtype == dtype
        assert est.coefs_[-1].shape == (hidden[-1], n_targets)
    numba_est, numpy_est = fitted
    np.testing.assert_allclose(numba_est.predict(X), numpy_est.predict(X),
                               rtol=RTOL[dtype], atol=RTOL[dtype] / 10)
