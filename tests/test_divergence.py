"""Divergence: training stops, the last finite weights are kept, a ValueError says what to do.

The data here is finite (so input validation accepts it) but makes training
blow up: a learning rate far too high for SGD, an absurd one for Adam, or
inputs of magnitude 1e150 (1e30 in float32).
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastmlp import FastMLPClassifier, FastMLPRegressor, TrainingDivergedError
from fastmlp.engine import backends
from fastmlp.engine.network import Network

RNG = np.random.RandomState(0)
X = RNG.randn(300, 6)
Y_CLS = (X[:, 0] > 0).astype(int)
Y_REG = X @ RNG.randn(6)
# name -> (estimator factory, X scale per dtype or None, y): each diverges
# within a few epochs.
DIVERGING = {
    "sgd-learning-rate": (lambda **kw: FastMLPRegressor(
        hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.5, batch_size=10, **kw),
        None, Y_REG),
    "adam-learning-rate": (lambda **kw: FastMLPRegressor(
        hidden_layer_sizes=(10, 10, 10), solver="adam", learning_rate_init=1e60,
        batch_size=10, **kw), None, Y_REG),
    "sgd-huge-inputs": (lambda **kw: FastMLPClassifier(
        hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.1, **kw),
        {np.float64: 1e150, np.float32: 1e30}, Y_CLS),
    "adam-huge-inputs": (lambda **kw: FastMLPRegressor(
        hidden_layer_sizes=(10,), solver="adam", batch_size=10, **kw),
        {np.float64: 1e155, np.float32: 1e30}, Y_REG),
}


class _Recorder:
    """Wraps every trainer's compiled calls to record the parameters before each one.

    Calls of batches within an epoch (``run``) and, on the numba backend, of
    whole epochs (``run_epochs``).
    """

    def __init__(self, monkeypatch):
        self.starts = []
        self.results = []  # per call: whether it ended non-finite
        make_trainer = backends.make_trainer

        def recording_make_trainer(*args, **kwargs):
            trainer = make_trainer(*args, **kwargs)
            run = trainer.run

            def recording_run(params, optimizer, rows, b_start, b_stop, alpha, loss_sum=0.0):
                self.starts.append(params.copy())
                loss_sum, n_done = run(params, optimizer, rows, b_start, b_stop, alpha, loss_sum)
                self.results.append(n_done < b_stop - b_start or not np.isfinite(loss_sum)
                                    or not np.isfinite(params).all())
                return loss_sum, n_done

            trainer.run = recording_run
            if hasattr(trainer, "run_epochs"):
                run_epochs = trainer.run_epochs

                def recording_run_epochs(params, *args):
                    self.starts.append(params.copy())
                    losses, diverged = run_epochs(params, *args)
                    self.results.append(diverged or not np.isfinite(params).all())
                    return losses, diverged

                trainer.run_epochs = recording_run_epochs
            return trainer

        monkeypatch.setattr(backends, "make_trainer", recording_make_trainer)

    def diverged(self):
        """Whether each recorded call ended non-finite."""
        return self.results


def _flat(est):
    units = [est.coefs_[0].shape[0]] + [c.shape[1] for c in est.coefs_]
    return Network(units, est.activation, "squared_error").pack(
        est.coefs_, est.intercepts_, est.coefs_[0].dtype)


def _assert_usable(est, X_ok, finite_outputs=True):
    """Finite weights; predictions finite, or (finite but huge weights) a clear error."""
    assert all(np.isfinite(p).all() for p in est.coefs_ + est.intercepts_)
    predict = est.predict_proba if hasattr(est, "predict_proba") else est.predict
    if finite_outputs:
        assert np.isfinite(predict(X_ok)).all()
    else:
        try:
            out = predict(X_ok)
        except ValueError as error:
            assert "NaN or inf" in str(error)
        else:
            assert np.isfinite(out).all()


def _assert_guidance(message):
    # scikit-learn's sentence for the same failure, then what happened and what to do.
    assert message.startswith("Solver produced non-finite parameter weights. The input data "
                              "may contain large values and need to be preprocessed. ")
    assert "diverged" in message
    assert "Scale the inputs" in message
    assert "learning_rate_init" in message


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", sorted(DIVERGING))
def test_fit_divergence_restores_last_finite_weights(monkeypatch, case, backend, dtype):
    factory, scale, y = DIVERGING[case]
    X_fit = (X * scale[dtype] if scale else X).astype(dtype)
    recorder = _Recorder(monkeypatch)
    est = factory(random_state=0, max_iter=50, backend=backend)
    with pytest.raises(TrainingDivergedError) as info:
        est.fit(X_fit, y)
    assert isinstance(info.value, ValueError)
    _assert_guidance(str(info.value))
    # Training stopped at the first compiled call that went non-finite, and the
    # weights are exactly those at the start of that call.
    assert recorder.diverged() == [False] * (len(recorder.results) - 1) + [True]
    np.testing.assert_array_equal(_flat(est), recorder.starts[-1])
    assert est.coefs_[0].dtype == dtype
    assert all(np.isfinite(est.loss_curve_)) and len(est.loss_curve_) == est.n_iter_
    # Weights restored after a step on inputs of 1e150 may be too large for
    # inputs of 1: then predict says so rather than returning NaN.
    _assert_usable(est, X.astype(dtype), finite_outputs=scale is None)


@pytest.mark.parametrize("case", sorted(DIVERGING))
def test_sklearn_also_fails_on_these_cases(case):
    # The cases are genuinely divergent: scikit-learn's own MLP ends with
    # non-finite weights and a ValueError (after running every epoch).
    factory, scale, y = DIVERGING[case]
    ours = factory()
    sk_cls = MLPClassifier if isinstance(ours, FastMLPClassifier) else MLPRegressor
    params = {k: v for k, v in ours.get_params().items() if k in sk_cls().get_params()}
    sk = sk_cls(**{**params, "random_state": 0, "max_iter": 20})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="non-finite"):
            sk.fit(X * scale[np.float64] if scale else X, y)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_partial_fit_divergence_keeps_model_and_can_continue(monkeypatch, backend):
    est = FastMLPClassifier((10,), solver="sgd", learning_rate_init=0.01, batch_size=10,
                            random_state=0, backend=backend)
    est.partial_fit(X, Y_CLS, classes=[0, 1])
    recorder = _Recorder(monkeypatch)
    with pytest.raises(TrainingDivergedError) as info:
        est.partial_fit(X * 1e150, Y_CLS)
    _assert_guidance(str(info.value))
    np.testing.assert_array_equal(_flat(est), recorder.starts[-1])
    _assert_usable(est, X, finite_outputs=False)
    # The optimizer state went back with the weights: training continues normally.
    est.partial_fit(X, Y_CLS)
    _assert_usable(est, X)
    assert np.isfinite(est.loss_)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_partial_fit_learning_rate_divergence(backend):
    est = FastMLPRegressor(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.5,
                           batch_size=10, random_state=0, backend=backend)
    with pytest.raises(TrainingDivergedError, match="Scale the inputs"):
        for _ in range(20):
            est.partial_fit(X, Y_REG)
    _assert_usable(est, X)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_warm_start_divergence_keeps_earlier_epochs(monkeypatch, backend):
    est = FastMLPRegressor(hidden_layer_sizes=(10,), solver="adam", learning_rate_init=0.01,
                           batch_size=10, max_iter=5, random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    curve = list(est.loss_curve_)
    recorder = _Recorder(monkeypatch)
    est.set_params(warm_start=True, solver="sgd", learning_rate_init=0.5)
    with pytest.raises(TrainingDivergedError) as info:
        est.fit(X, Y_REG)
    _assert_guidance(str(info.value))
    np.testing.assert_array_equal(_flat(est), recorder.starts[-1])
    assert est.loss_curve_[:len(curve)] == curve
    assert all(np.isfinite(est.loss_curve_))
    _assert_usable(est, X)


# With early stopping, scikit-learn (issue #29504) raises nothing: the diverged
# epoch is scored on the validation rows with the non-finite weights (NaN for a
# regressor; a classifier's argmax still picks classes) and the fit ends with the
# weights of the best validation score. On iris the loss diverges after a few
# good epochs.
IRIS = load_iris()
EARLY_STOPPING_CASES = {
    "first-epoch": (FastMLPRegressor, MLPRegressor, dict(
        hidden_layer_sizes=(10,), learning_rate_init=0.5, batch_size=10), X, Y_REG),
    "iris-sklearn-29504": (FastMLPRegressor, MLPRegressor, dict(
        hidden_layer_sizes=100, activation="identity", learning_rate_init=1),
        IRIS.data, IRIS.target),
    "classifier-huge-inputs": (FastMLPClassifier, MLPClassifier, dict(
        hidden_layer_sizes=(10,), learning_rate_init=0.1), IRIS.data * 1e150, IRIS.target),
}


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", sorted(EARLY_STOPPING_CASES))
def test_divergence_with_early_stopping_keeps_best_weights_like_sklearn(case, backend):
    ours_cls, sk_cls, params, X_fit, y = EARLY_STOPPING_CASES[case]
    params = {**params, "solver": "sgd", "early_stopping": True, "max_iter": 20,
              "random_state": 0}
    ours = ours_cls(backend=backend, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow, in NumPy
        with pytest.warns(ConvergenceWarning, match="Training diverged.*best validation"):
            ours.fit(X_fit, y)
    sk = sk_cls(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X_fit, y)
    # scikit-learn trains on, but its weights stay non-finite, so every later
    # epoch scores as the diverged one did and cannot change the best weights.
    n = ours.n_iter_
    assert n < sk.n_iter_
    assert np.isnan(ours.loss_curve_[-1]) and np.isnan(sk.loss_curve_[n - 1])
    assert isinstance(ours.validation_scores_[-1], float)
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_[:n], rtol=1e-9)
    np.testing.assert_array_equal(sk.validation_scores_[n - 1:], sk.validation_scores_[n - 1])
    assert ours.best_validation_score_ == pytest.approx(sk.best_validation_score_, rel=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    _assert_usable(ours, X_fit, finite_outputs=case != "classifier-huge-inputs")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("est_cls, y", [(FastMLPRegressor, Y_REG), (FastMLPClassifier, Y_CLS)])
def test_lbfgs_divergence(backend, est_cls, y):
    # With inputs of 1e200 the loss is NaN from the start; scipy stops at once
    # and returns the initial weights with a NaN loss.
    est = est_cls(hidden_layer_sizes=(10,), solver="lbfgs", random_state=0, backend=backend)
    with pytest.raises(TrainingDivergedError, match="Scale the inputs") as info:
        est.fit(X * 1e200, y)
    assert str(info.value).startswith("Solver produced non-finite parameter weights.")
    _assert_usable(est, X)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_lbfgs_warm_start_divergence_keeps_previous_model(backend):
    est = FastMLPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=20,
                           random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    coefs = [c.copy() for c in est.coefs_ + est.intercepts_]
    loss, n_iter = est.loss_, est.n_iter_
    est.set_params(warm_start=True)
    with pytest.raises(TrainingDivergedError):
        est.fit(X * 1e200, Y_REG)
    for before, after in zip(coefs, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(before, after)
    assert (est.loss_, est.n_iter_) == (loss, n_iter)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba", "score"])
def test_classifier_never_returns_nan_silently(method, bad):
    est = FastMLPClassifier((5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, np.arange(300) % 3)
    est.coefs_[0][2, 1] = bad
    args = (X, np.arange(300) % 3) if method == "score" else (X,)
    with pytest.raises(ValueError, match="NaN or inf"):
        getattr(est, method)(*args)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_regressor_never_returns_nan_silently(backend):
    est = FastMLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    est.intercepts_[-1][0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        est.predict(X)


def test_validation_score_of_non_finite_model_is_nan():
    # Early stopping scores the validation split without input checks; like
    # scikit-learn, a non-finite prediction gives a NaN score there, not an error
    # (so early stopping treats it as "no improvement").
    est = FastMLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y_REG)
    est.intercepts_[-1][0] = np.inf
    assert np.isnan(est._score(X, Y_REG))
