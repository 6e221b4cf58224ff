"""scikit-learn's callback API (sklearn.callback) on both estimators: epochs as tasks."""

import importlib.util
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastmlp import FastMLPClassifier, FastMLPRegressor
from fastmlp import _callbacks

needs_callbacks = pytest.mark.skipif(not _callbacks.HAS_CALLBACKS,
                                     reason="scikit-learn < 1.9 has no sklearn.callback")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16, y[:600]


class Recorder:
    """A FitCallback recording its events; asks to stop at the end of epoch ``stop_at``."""

    def __init__(self, stop_at=None):
        self.stop_at = stop_at
        self.events = []
        self.scores = []

    def setup(self, estimator, context):
        self.events.append(("setup",))

    def teardown(self, estimator, context):
        self.events.append(("teardown",))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, fitted_estimator=None):
        self.events.append(("begin", context.task_name, context.task_id))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, fitted_estimator=None):
        self.events.append(("end", context.task_name, context.task_id))
        if fitted_estimator is not None and context.task_name != "fit":
            self.scores.append(fitted_estimator.score(X, y))
        return context.task_name != "fit" and context.task_id == self.stop_at

    def epochs(self, name="epoch"):
        return [e[2] for e in self.events if e[0] == "end" and e[1] == name]


def _sgd(**params):
    params = {"solver": "sgd", "learning_rate_init": 0.1, **params}
    return FastMLPClassifier((16,), activation="logistic", random_state=0, **params)


@needs_callbacks
@pytest.mark.parametrize("Est", [FastMLPClassifier, FastMLPRegressor])
def test_each_epoch_is_a_task(digits, Est):
    X, y = digits
    rec = Recorder()
    est = Est(hidden_layer_sizes=(16,), max_iter=7, random_state=0, tol=0).set_callbacks(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ == 7
    expected = [("setup",), ("begin", "fit", 0)]
    for i in range(7):
        expected += [("begin", "epoch", i), ("end", "epoch", i)]
    expected += [("end", "fit", 0), ("teardown",)]
    assert rec.events == expected
    # fitted_estimator is the model at the end of each epoch, not the final one.
    assert rec.scores[-1] == pytest.approx(est.score(X, y))
    assert len(set(rec.scores)) > 1


@needs_callbacks
def test_partial_fit_is_one_epoch_task(digits):
    X, y = digits
    rec = Recorder()
    clf = _sgd().set_callbacks(rec)
    clf.partial_fit(X, y, classes=np.unique(y))
    clf.partial_fit(X, y)
    tasks = [e for e in rec.events if e[0] == "begin"]
    assert tasks == [("begin", "partial_fit", 0), ("begin", "epoch", 0)] * 2


@needs_callbacks
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_callback_stops_the_fit_after_that_epoch(digits, solver, early_stopping):
    X, y = digits
    params = dict(solver=solver, learning_rate_init=0.1 if solver == "sgd" else 0.01,
                  max_iter=40, tol=0, n_iter_no_change=100,
                  early_stopping=early_stopping)
    rec = Recorder(stop_at=5)
    clf = _sgd(**params).set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    assert rec.epochs() == list(range(6))
    # The fit leaves a usable model: the reference fit of 6 epochs, the same
    # weights (with early stopping: the best epoch's, restored).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = _sgd(**{**params, "max_iter": 6}).fit(X, y)
    for a, b in zip(clf.coefs_ + clf.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X))
    if early_stopping:
        assert len(clf.validation_scores_) == 6
        assert clf.best_validation_score_ == max(clf.validation_scores_)


@needs_callbacks
def test_lbfgs_iterations_are_tasks_and_can_stop(digits):
    X, y = digits
    rec = Recorder(stop_at=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a requested stop is no failure
        clf = FastMLPClassifier((16,), solver="lbfgs", max_iter=50, random_state=0)
        clf.set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 4
    assert rec.epochs("lbfgs-iter") == list(range(5))  # the last one never ran
    assert rec.scores[3] == pytest.approx(clf.score(X, y))


@needs_callbacks
def test_failed_fit_tears_callbacks_down_and_changes_nothing(digits):
    X, y = digits
    rec = Recorder()
    clf = _sgd(max_iter=3).set_callbacks(rec)
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(X_bad, y)
    assert rec.events[0] == ("setup",) and rec.events[-1] == ("teardown",)
    assert not hasattr(clf, "coefs_")
    assert set(vars(clf)) == {*clf.get_params(), "_skl_callbacks"}


@needs_callbacks
def test_no_callbacks_no_context(digits):
    X, y = digits
    clf = _sgd(max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert not any(k.startswith(("_callback", "_skl_callbacks", "_epoch_events"))
                   for k in vars(clf))


@needs_callbacks
def test_clone_keeps_callbacks():
    rec = Recorder()
    assert clone(_sgd().set_callbacks(rec))._skl_callbacks == [rec]


@needs_callbacks
def test_progress_bar_in_grid_search(digits, capsys):
    pytest.importorskip("rich", reason="ProgressBar needs rich (extra 'progress')")
    from sklearn.callback import ProgressBar

    X, y = digits
    rec = Recorder()
    search = GridSearchCV(_sgd(max_iter=4).set_callbacks(rec), {"alpha": [1e-4, 1e-2]}, cv=2)
    search.set_callbacks(ProgressBar())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    out = capsys.readouterr().out
    # Four cross-validation fits and the refit, each under GridSearchCV's task.
    assert out.count("FastMLPClassifier - fit") == 5
    assert "GridSearchCV - fit" in out
    # The estimator's own callback saw every epoch of every fit.
    assert rec.epochs() == list(range(4)) * 5


def test_the_callback_api_follows_the_installed_scikit_learn():
    has_api = importlib.util.find_spec("sklearn.callback") is not None
    assert _callbacks.HAS_CALLBACKS == has_api
    for est in (FastMLPClassifier(), FastMLPRegressor()):
        assert hasattr(est, "set_callbacks") == has_api


@needs_callbacks
def test_scoring_monitor_scores_every_epoch(digits):
    from sklearn.callback import ScoringMonitor

    X, y = digits
    monitor = ScoringMonitor(scoring="accuracy")
    clf = _sgd(max_iter=5, tol=0).set_callbacks(monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    rows = monitor.get_logs().data
    epochs = sorted((r["task_id"], r["accuracy"]) for r in rows if r["task_name"] == "epoch")
    assert [task_id for task_id, _ in epochs] == list(range(5))
    assert epochs[-1][1] == clf.score(X, y)  # the last epoch's model is the fitted one
    (fit_row,) = [r for r in rows if r["task_name"] == "fit"]
    assert fit_row["accuracy"] == clf.score(X, y)
