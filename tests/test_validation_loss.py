"""validation_loss_curve_: the training loss on the early-stopping rows, after each epoch."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import train_test_split

from fastmlp import FastMLPClassifier, FastMLPRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:800] / 16, y[:800]


def _held_out_rows(est, X, y):
    """The early-stopping split of a fit with an integer random_state, drawn again.

    scikit-learn's MLP draws the initial weights (two uniform arrays per
    layer) and then splits with the same RandomState, stratified only for
    one output column (binary labels).
    """
    rs = np.random.RandomState(est.random_state)
    for coef in est.coefs_:
        rs.uniform(size=coef.shape)
        rs.uniform(size=coef.shape[1])
    binary = est.n_outputs_ == 1 and hasattr(est, "classes_")
    _, val = train_test_split(np.arange(X.shape[0]), random_state=rs,
                              test_size=est.validation_fraction,
                              stratify=y if binary else None)
    return X[val], y[val]


def _l2_term(est, batch_rows):
    return 0.5 * est.alpha * sum(float(np.sum(c * c)) for c in est.coefs_) / batch_rows


def _fit(est, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **fit_params)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("binary", [False, True])
def test_classifier_curve_matches_the_restored_model(digits, solver, binary):
    X, y = digits
    y = y % 2 if binary else y
    clf = _fit(FastMLPClassifier((32,), activation="logistic", solver=solver, alpha=1e-2,
                                 learning_rate_init=0.1 if solver == "sgd" else 0.01,
                                 batch_size=64, early_stopping=True, max_iter=30,
                                 random_state=0), X, y)
    curve = clf.validation_loss_curve_
    assert len(curve) == clf.n_iter_ == len(clf.validation_scores_)
    assert all(isinstance(v, np.float64) and np.isfinite(v) for v in curve)
    X_val, y_val = _held_out_rows(clf, X, y)
    # The split is the fit's: the restored model scores best_validation_score_ on it.
    assert accuracy_score(y_val, clf.predict(X_val)) == clf.best_validation_score_
    best = int(np.argmax(clf.validation_scores_))  # the first best epoch is restored
    expected = (log_loss(y_val, clf.predict_proba(X_val), labels=clf.classes_)
                + _l2_term(clf, batch_rows=64))
    assert curve[best] == pytest.approx(expected, rel=1e-10)


def test_regressor_curve_and_sample_weight(digits):
    X, y = digits
    target = X[:, 20] + 0.5 * X[:, 43]
    w = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    reg = _fit(FastMLPRegressor(hidden_layer_sizes=(16,), solver="adam", alpha=1e-3,
                                batch_size=50, early_stopping=True, max_iter=40,
                                learning_rate_init=0.01, random_state=3), X, target,
               sample_weight=w)
    curve = reg.validation_loss_curve_
    assert len(curve) == reg.n_iter_
    rows = np.arange(X.shape[0])
    val_rows, _ = _held_out_rows(reg, rows[:, None], rows)
    val_rows = val_rows.ravel()
    X_val, t_val, w_val = X[val_rows], target[val_rows], w[val_rows]
    assert r2_score(t_val, reg.predict(X_val), sample_weight=w_val) == pytest.approx(
        reg.best_validation_score_, rel=1e-12)
    best = int(np.argmax(reg.validation_scores_))
    data = 0.5 * np.average((t_val - reg.predict(X_val)) ** 2, weights=w_val)
    expected = data + _l2_term(reg, batch_rows=50 * w_val.mean())
    assert curve[best] == pytest.approx(expected, rel=1e-10)


def test_curve_is_there_exactly_where_validation_scores_are(digits):
    X, y = digits
    sgd = _fit(FastMLPClassifier((8,), solver="sgd", max_iter=3, random_state=0), X, y)
    assert sgd.validation_scores_ is None and sgd.validation_loss_curve_ is None
    lbfgs = _fit(FastMLPClassifier((8,), solver="lbfgs", max_iter=3, random_state=0), X, y)
    assert not hasattr(lbfgs, "validation_scores_")
    assert not hasattr(lbfgs, "validation_loss_curve_")
    streamed = FastMLPClassifier((8,), solver="sgd", random_state=0)
    streamed.partial_fit(X, y, classes=np.unique(y))
    assert streamed.validation_scores_ is None and streamed.validation_loss_curve_ is None


def test_warm_start_extends_the_curve_like_the_scores(digits):
    X, y = digits
    clf = FastMLPClassifier((16,), solver="adam", early_stopping=True, warm_start=True,
                            max_iter=4, tol=0, random_state=0)
    _fit(clf, X, y)
    _fit(clf, X, y)
    assert len(clf.validation_loss_curve_) == len(clf.validation_scores_) == 8


def test_a_diverged_early_stopping_fit_records_every_epoch():
    # scikit-learn's diverging case (its issue #29504): early stopping ends the fit at the diverged
    # epoch; the validation loss still has one value per epoch, the last one non-finite.
    from sklearn.datasets import load_iris

    from fastmlp import FastMLPRegressor

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = FastMLPRegressor(activation="identity", solver="sgd", learning_rate_init=1,
                               early_stopping=True, max_iter=50, random_state=0).fit(X, y)
    assert len(est.validation_loss_curve_) == est.n_iter_ == len(est.validation_scores_)
    assert not np.isfinite(est.validation_loss_curve_[-1])
