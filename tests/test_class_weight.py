"""class_weight for FastMLPClassifier: compute_sample_weight's weights, times sample_weight."""

import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.class_weight import compute_sample_weight

from fastmlp import FastMLPClassifier, FastMLPRegressor


@pytest.fixture(scope="module")
def imbalanced():
    X, y = load_digits(return_X_y=True)
    keep = (y != 3) | (np.arange(y.shape[0]) % 5 == 0)  # class 3 rare
    return X[keep] / 16, y[keep] % 4


def _fit(est, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **fit_params)


def _assert_same_model(a, b):
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.loss_curve_ if hasattr(a, "loss_curve_") else a.loss_,
                               b.loss_curve_ if hasattr(b, "loss_curve_") else b.loss_,
                               rtol=1e-10)


SOLVERS = [dict(solver="sgd", learning_rate_init=0.1), dict(solver="adam"),
           dict(solver="lbfgs"), dict(solver="adam", early_stopping=True)]
CLASS_WEIGHTS = ["balanced", {0: 1.0, 1: 0.5, 2: 2.0, 3: 4.0}]


@pytest.mark.parametrize("params", SOLVERS)
@pytest.mark.parametrize("class_weight", CLASS_WEIGHTS)
@pytest.mark.parametrize("with_sample_weight", [False, True])
def test_class_weight_equals_its_sample_weight(imbalanced, params, class_weight,
                                               with_sample_weight):
    X, y = imbalanced
    sample_weight = (np.random.RandomState(0).uniform(0.2, 3.0, y.shape[0])
                     if with_sample_weight else None)
    equivalent = compute_sample_weight(class_weight, y)
    if sample_weight is not None:
        equivalent = equivalent * sample_weight  # both combine by multiplication
    common = dict(hidden_layer_sizes=(16,), activation="logistic", max_iter=15,
                  random_state=0, **params)
    weighted = _fit(FastMLPClassifier(class_weight=class_weight, **common), X, y,
                    sample_weight=sample_weight)
    reference = _fit(FastMLPClassifier(**common), X, y, sample_weight=equivalent)
    _assert_same_model(weighted, reference)
    unweighted = _fit(FastMLPClassifier(**common), X, y, sample_weight=sample_weight)
    assert not np.allclose(weighted.coefs_[0], unweighted.coefs_[0])


def test_string_labels_and_partial_fit_with_a_dict(imbalanced):
    X, y = imbalanced
    labels = np.array(["zero", "one", "two", "three"])[y]
    class_weight = {"zero": 1.0, "one": 3.0, "two": 0.5, "three": 2.0}
    common = dict(hidden_layer_sizes=(8,), solver="sgd", random_state=0)
    weighted = FastMLPClassifier(class_weight=class_weight, **common)
    reference = FastMLPClassifier(**common)
    for rows in np.array_split(np.arange(y.shape[0]), 3):
        weighted.partial_fit(X[rows], labels[rows], classes=np.unique(labels))
        reference.partial_fit(X[rows], labels[rows], classes=np.unique(labels),
                              sample_weight=compute_sample_weight(class_weight, labels[rows]))
    _assert_same_model(weighted, reference)


def test_partial_fit_refuses_balanced_as_sgdclassifier_does(imbalanced):
    X, y = imbalanced
    with pytest.raises(ValueError) as sgd_error:
        SGDClassifier(class_weight="balanced").partial_fit(X, y, classes=np.unique(y))
    clf = FastMLPClassifier((8,), solver="sgd", class_weight="balanced", random_state=0)
    with pytest.raises(ValueError, match=re.escape(str(sgd_error.value))):
        clf.partial_fit(X, y, classes=np.unique(y))
    assert not hasattr(clf, "coefs_")  # nothing was set
    fitted = _fit(FastMLPClassifier((8,), max_iter=2, class_weight="balanced",
                                    random_state=0), X, y)
    before = [c.copy() for c in fitted.coefs_]
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        fitted.partial_fit(X, y)
    for a, b in zip(before, fitted.coefs_):
        np.testing.assert_array_equal(a, b)


def test_multilabel_targets_are_refused(imbalanced):
    X, y = imbalanced
    Y = np.stack([y == 0, y == 1], axis=1).astype(int)
    clf = FastMLPClassifier((8,), max_iter=2, class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight is not supported for multilabel"):
        clf.fit(X, Y)
    assert not hasattr(clf, "coefs_")
    _fit(FastMLPClassifier((8,), max_iter=2), X, Y)  # without class_weight it trains


@pytest.mark.parametrize("bad", ["balance", 3, [1.0, 2.0]])
def test_parameter_validation_in_sklearns_words(imbalanced, bad):
    X, y = imbalanced
    with pytest.raises(InvalidParameterError) as sgd_error:
        SGDClassifier(class_weight=bad).fit(X, y)
    expected = str(sgd_error.value).replace("SGDClassifier", "FastMLPClassifier")
    with pytest.raises(InvalidParameterError, match=re.escape(expected)):
        FastMLPClassifier(class_weight=bad).fit(X, y)


def test_a_class_missing_from_the_dict_gets_sklearns_error(imbalanced):
    X, y = imbalanced
    with pytest.raises(ValueError, match=r"The classes, \[3\], are not in class_weight"):
        FastMLPClassifier(class_weight={0: 1.0, 1: 1.0, 2: 1.0, 7: 2.0}).fit(X, y)


def test_regressor_has_no_class_weight():
    assert "class_weight" not in FastMLPRegressor().get_params()
    assert FastMLPClassifier().get_params()["class_weight"] is None
