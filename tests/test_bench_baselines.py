"""The idiomatic NumPy trainer of ``fastmlp bench`` computes what fastmlp and scikit-learn do.

Its speed is not tested here (the machine may be shared); its arithmetic is,
against fastmlp's reference backend and scikit-learn, batch by batch.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from fastmlp import FastMLPClassifier
from fastmlp.bench.baselines import NumpyMLPClassifier

HYPER = dict(activation="logistic", solver="sgd", momentum=0.9, learning_rate="constant",
             learning_rate_init=0.1, alpha=1e-3, shuffle=True, max_iter=1)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def trio(hidden, batch_size, dtype, nesterov=True, seed=0):
    """The NumPy trainer, fastmlp's reference backend and scikit-learn, from one seed."""
    hyper = dict(HYPER, nesterovs_momentum=nesterov, hidden_layer_sizes=hidden,
                 batch_size=batch_size)
    mine = NumpyMLPClassifier(hidden, batch_size, HYPER["learning_rate_init"],
                              HYPER["momentum"], nesterov, HYPER["alpha"], True,
                              np.random.RandomState(seed), dtype)
    reference = FastMLPClassifier(**hyper, random_state=np.random.RandomState(seed),
                                  backend="numpy", dtype=dtype)
    sklearn = MLPClassifier(**hyper, random_state=np.random.RandomState(seed))
    return mine, reference, sklearn


def epoch(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.partial_fit(X, y, classes=np.arange(10))


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("hidden", [(16,), (12, 7)])
def test_few_batches_match_the_reference_backend_float64(digits, hidden, nesterov):
    X, y = digits
    X, y = X[:100], y[:100]  # 4 batches of 32 and one of 4 per epoch
    mine, reference, sklearn = trio(hidden, 32, "float64", nesterov)
    for _ in range(2):
        for model in (mine, reference, sklearn):
            epoch(model, X, y)
        for W, W_ref in zip(mine.coefs_ + mine.intercepts_,
                            reference.coefs_ + reference.intercepts_):
            np.testing.assert_allclose(W, W_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mine.loss_curve_, reference.loss_curve_, rtol=1e-13)
    # scikit-learn's own operations in its own order: the same bits.
    for W, W_skl in zip(mine.coefs_ + mine.intercepts_, sklearn.coefs_ + sklearn.intercepts_):
        np.testing.assert_array_equal(W, W_skl)
    np.testing.assert_array_equal(mine.predict_proba(X), sklearn.predict_proba(X))


def test_float32_follows_the_reference_to_float32_rounding(digits):
    X, y = digits
    X = X.astype(np.float32)
    mine, reference, _ = trio((32,), 64, "float32")
    for _ in range(3):
        epoch(mine, X, y)
        epoch(reference, X, y)
    assert mine.coefs_[0].dtype == np.float32
    for W, W_ref in zip(mine.coefs_, reference.coefs_):
        np.testing.assert_allclose(W, W_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mine.loss_curve_, reference.loss_curve_, rtol=1e-5)
    assert mine.score(X, y) == pytest.approx(reference.score(X, y), abs=2 / len(y))


def test_buffers_are_reused_across_batches_and_epochs(digits):
    X, y = digits
    mine = NumpyMLPClassifier((8,), 50, random_state=0, dtype="float64")
    mine.partial_fit(X, y, classes=np.arange(10))
    buffers = [mine._xb, *mine._acts, *mine._deltas, mine._params, mine._velocity]
    ids = [id(b) for b in buffers]
    mine.partial_fit(X, y)
    assert [id(b) for b in [mine._xb, *mine._acts, *mine._deltas, mine._params,
                            mine._velocity]] == ids
    # The per-layer views write into the one flat parameter buffer.
    assert all(np.shares_memory(W, mine._params) for W in mine.coefs_ + mine.intercepts_)


def test_bad_input_says_what_is_wrong(digits):
    X, y = digits
    with pytest.raises(ValueError, match="classes must be passed"):
        NumpyMLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="at least 3 classes"):
        NumpyMLPClassifier().partial_fit(X[y < 2], y[y < 2], classes=[0, 1])
    model = NumpyMLPClassifier((4,), random_state=0).partial_fit(X, y, classes=np.arange(10))
    with pytest.raises(ValueError, match="labels not in classes"):
        model.partial_fit(X[:5], np.array([0, 1, 2, 3, 42]))


def test_a_deep_copy_trains_on_as_the_original_does():
    # The benchmarks copy a trained model every round: the copy's layer views must follow its own
    # steps, and the original must not move with it.
    import copy

    X = np.random.default_rng(0).random((300, 6))
    y = np.arange(300) % 3
    model = NumpyMLPClassifier((8,), batch_size=16, random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    clone = copy.deepcopy(model)
    before = model.coefs_[0].copy()
    clone.partial_fit(X, y)
    np.testing.assert_array_equal(model.coefs_[0], before)
    model.partial_fit(X, y)
    for a, b in zip(model.coefs_ + model.intercepts_, clone.coefs_ + clone.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict_proba(X), clone.predict_proba(X))
