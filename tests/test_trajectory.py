"""Side by side with scikit-learn: fastmlp follows MLP's training trajectory.

Each test fits scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` and the
fastmlp estimator with the same parameters and ``random_state`` (so the same
initial weights, shuffles and validation split) and compares everything the
fit produces: ``coefs_``, ``intercepts_``, ``loss_``, ``loss_curve_``,
``n_iter_``, ``t_``, ``best_loss_``, ``validation_scores_``,
``best_validation_score_`` and how many random numbers were drawn.

float64 agrees to rounding (observed max abs difference ~1e-14), so float64
comparisons use ``rtol=1e-9`` (``atol=1e-12`` for values that are ~0).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastmlp import FastMLPClassifier, FastMLPRegressor

RTOL64, ATOL64 = 1e-9, 1e-12

# ---------------------------------------------------------------------------- data
_X, _DIGIT = load_digits(return_X_y=True)
X = _X[:300] / 16.0  # 300 rows: batches of 64 leave a partial last batch
DIGIT = _DIGIT[:300]
_rng = np.random.RandomState(0)
_W = _rng.uniform(-1, 1, size=(64, 2))


def _targets(task):
    """(estimator classes, y) for one learning task on the 300 digit rows."""
    if task == "binary":
        return (MLPClassifier, FastMLPClassifier), DIGIT % 2
    if task == "multiclass":
        return (MLPClassifier, FastMLPClassifier), DIGIT
    if task == "multilabel":
        return (MLPClassifier, FastMLPClassifier), np.column_stack(
            [DIGIT % 2, DIGIT > 4, DIGIT % 3 == 0]).astype(int)
    z = X @ _W / 8.0
    if task == "squared_error":
        return (MLPRegressor, FastMLPRegressor), z[:, 0]
    if task == "multioutput":
        return (MLPRegressor, FastMLPRegressor), z
    if task == "poisson":
        counts = np.random.RandomState(1).poisson(np.exp(z[:, 0]))
        return (MLPRegressor, FastMLPRegressor), counts.astype(float)
    raise ValueError(task)


TASKS = ["binary", "multiclass", "multilabel", "squared_error", "multioutput", "poisson"]
ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]

# Solver settings. The "stall" settings (huge tol, n_iter_no_change small) make
# the no-improvement logic fire within a few epochs: 'adaptive' then divides its
# learning rate by 5 (twice in 5 epochs), the others stop early.
_STALL = dict(tol=1e3, n_iter_no_change=1)
SOLVERS = {
    "sgd-constant": dict(solver="sgd", learning_rate_init=0.02),
    "sgd-constant-plain-momentum": dict(solver="sgd", learning_rate_init=0.02,
                                        nesterovs_momentum=False),
    "sgd-no-momentum": dict(solver="sgd", learning_rate_init=0.05, momentum=0.0),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.03),
    "sgd-invscaling-plain-momentum": dict(solver="sgd", learning_rate="invscaling",
                                          learning_rate_init=0.03, nesterovs_momentum=False),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.02,
                         **_STALL),
    "sgd-adaptive-plain-momentum": dict(solver="sgd", learning_rate="adaptive",
                                        learning_rate_init=0.02, nesterovs_momentum=False,
                                        **_STALL),
    "sgd-constant-stall": dict(solver="sgd", learning_rate_init=0.02, **_STALL),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "adam-stall": dict(solver="adam", learning_rate_init=0.01, tol=1e3, n_iter_no_change=2),
    "lbfgs": dict(solver="lbfgs"),
}
BASE = dict(hidden_layer_sizes=(10, 7), batch_size=64, max_iter=5)

FIT_ATTRS = ["coefs_", "intercepts_", "loss_", "loss_curve_", "n_iter_", "t_", "best_loss_",
             "validation_scores_", "best_validation_score_", "n_layers_", "n_outputs_",
             "out_activation_", "n_features_in_"]


# ---------------------------------------------------------------------------- helpers
def _fit_quietly(est, method, *args, **kwargs):
    """Call ``est.method(*args)``; return the ConvergenceWarning messages it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(est, method)(*args, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


def assert_same_fit(ref, fast, rtol=RTOL64, atol=ATOL64):
    """Every fitted attribute of ``fast`` equals ``ref``'s (floats to the tolerance)."""
    for name in FIT_ATTRS:
        assert hasattr(ref, name) == hasattr(fast, name), name
        if not hasattr(ref, name):
            continue
        a, b = getattr(ref, name), getattr(fast, name)
        if a is None or isinstance(a, (str, int, np.integer)):
            assert a == b, (name, a, b)
        elif isinstance(a, list):
            assert len(a) == len(b), (name, len(a), len(b))
            for i, (ai, bi) in enumerate(zip(a, b)):
                assert np.shape(ai) == np.shape(bi), (name, i)
                np.testing.assert_allclose(bi, ai, rtol=rtol, atol=atol, err_msg=f"{name}[{i}]")
        else:
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=name)


FASTMLP_ONLY = ("backend", "dtype")


def _pair(task, **params):
    (ref_cls, fast_cls), y = _targets(task)
    kwargs = {**BASE, **params}
    ref_kwargs = {k: v for k, v in kwargs.items() if k not in FASTMLP_ONLY}
    return ref_cls(**ref_kwargs), fast_cls(**kwargs), y


def _fit_pair(task, X_fit=X, sample_weight=None, **params):
    ref, fast, y = _pair(task, **params)
    # Same seed, separate RandomState objects: their final states show both
    # estimators drew the same random numbers (init, split, shuffles).
    seed = params.get("random_state", 0)
    ref.set_params(random_state=np.random.RandomState(seed))
    fast.set_params(random_state=np.random.RandomState(seed))
    ref_warn = _fit_quietly(ref, "fit", X_fit, y, sample_weight=sample_weight)
    fast_warn = _fit_quietly(fast, "fit", X_fit, y, sample_weight=sample_weight)
    assert fast_warn == ref_warn
    _assert_same_rng(ref, fast)
    return ref, fast, y


def _assert_same_rng(ref, fast):
    s_ref, s_fast = ref.random_state.get_state(), fast.random_state.get_state()
    np.testing.assert_array_equal(s_fast[1], s_ref[1])
    assert s_fast[2:] == s_ref[2:]


def _weights(n, seed):
    return np.random.RandomState(seed).uniform(0.2, 3.0, size=n)


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_every_solver_activation_and_task_matches_sklearn(solver, activation, task):
    ref, fast, _ = _fit_pair(task, activation=activation, **SOLVERS[solver])
    assert_same_fit(ref, fast)


def test_stall_settings_really_exercise_the_no_improvement_logic():
    # Guard for the grid above: the stall settings stop or adapt early.
    ref, fast, _ = _fit_pair("multiclass", activation="logistic", **SOLVERS["sgd-constant-stall"])
    # best_loss_ starts at inf, so the first epoch always "improves"; epochs 2
    # and 3 do not, and 2 > n_iter_no_change=1 stops after epoch 3.
    assert fast.n_iter_ == ref.n_iter_ == 3
    ref, fast, _ = _fit_pair("multiclass", activation="logistic", **SOLVERS["sgd-adaptive"])
    assert fast.n_iter_ == ref.n_iter_ == 5  # adaptive: divide by 5 after epochs 3 and 5
    assert fast._optimizer.learning_rate == pytest.approx(0.02 / 25)
    assert ref._optimizer.learning_rate == pytest.approx(0.02 / 25)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", ["sgd-constant", "adam", "lbfgs"])
def test_early_stopping_sample_weight_and_shuffle_match_sklearn(solver, task, early_stopping,
                                                                 weighted, shuffle):
    sw = _weights(X.shape[0], 2) if weighted else None
    ref, fast, _ = _fit_pair(task, sample_weight=sw, activation="logistic",
                             early_stopping=early_stopping, shuffle=shuffle, **SOLVERS[solver])
    assert_same_fit(ref, fast)
    if early_stopping and solver != "lbfgs":
        assert len(fast.validation_scores_) == fast.n_iter_


@pytest.mark.parametrize("task", ["multiclass", "binary", "squared_error"])
def test_early_stopping_until_it_stops_matches_sklearn(task):
    # Long enough for the validation score to stall: stop and best-weight restore.
    ref, fast, _ = _fit_pair(task, activation="logistic", solver="sgd", learning_rate_init=0.2,
                             early_stopping=True, n_iter_no_change=2, tol=1e-3, max_iter=60)
    assert_same_fit(ref, fast)
    assert fast.n_iter_ < 60  # it did stop early


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["sgd-constant", "adam", "lbfgs"])
@pytest.mark.parametrize("task", ["multiclass", "squared_error"])
def test_sparse_input_matches_sklearn(task, solver, fmt):
    X_sparse = sp.csr_matrix(X) if fmt == "csr" else sp.csc_matrix(X)
    ref, fast, _ = _fit_pair(task, X_fit=X_sparse, activation="relu", early_stopping=True,
                             **SOLVERS[solver])
    assert_same_fit(ref, fast)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", ["sgd-constant", "adam", "lbfgs"])
def test_numpy_backend_matches_sklearn_and_numba(solver, task, weighted, early_stopping):
    sw = _weights(X.shape[0], 3) if weighted else None
    ref, fast_np, y = _fit_pair(task, sample_weight=sw, activation="tanh",
                                early_stopping=early_stopping, backend="numpy",
                                **SOLVERS[solver])
    assert_same_fit(ref, fast_np)
    fast_nb = fast_np.__class__(**{**fast_np.get_params(), "backend": "numba",
                                   "random_state": 0})
    _fit_quietly(fast_nb, "fit", X, y, sample_weight=sw)
    assert_same_fit(fast_np, fast_nb)


# float32: scikit-learn and fastmlp both compute in float32 when X is float32,
# but not with the same operations: sklearn's float32 path mixes in float64
# (a float64 regression target makes its output deltas float64; its L-BFGS
# unpacks float64 parameters, so it effectively computes in float64 and returns
# float64 coefs_) and it sums in a different order. The differences are float32
# rounding (eps 6e-8) accumulated over the updates, bounded here by
# (rtol, atol) pairs whose rtol covers larger values such as Poisson losses:
# - SGD: a few ulps of weights of magnitude <~1 after 5 epochs x 5 batches
#   (observed <= 5e-7 on weights; 8.5e-7 on a loss of ~2) -> (1e-6, 1e-6);
# - Adam divides each gradient by its running RMS, so the relative rounding
#   error of a tiny gradient becomes an absolute error of order
#   learning_rate_init * that relative error in the step, and these add up over
#   the 25 steps (observed <= 2e-6 on weights, 4e-6 on loss_curve_)
#   -> (1e-5, 2e-5);
# - L-BFGS: float32 vs float64 gradients steer 5 quasi-Newton iterations and
#   their line searches; weights grow to ~9 and differ by ~1e-5 of that
#   (observed <= 6.4e-5) -> (1e-5, 2e-4).
FLOAT32_TOL = {"sgd-constant": (1e-6, 1e-6), "sgd-invscaling": (1e-6, 1e-6),
               "adam": (1e-5, 2e-5), "lbfgs": (1e-5, 2e-4)}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", list(FLOAT32_TOL))
def test_float32_matches_sklearn_float32_within_rounding(solver, task):
    X32 = X.astype(np.float32)
    ref, fast, _ = _fit_pair(task, X_fit=X32, activation="logistic", **SOLVERS[solver])
    assert all(c.dtype == np.float32 for c in fast.coefs_ + fast.intercepts_)
    rtol, atol = FLOAT32_TOL[solver]
    assert_same_fit(ref, fast, rtol=rtol, atol=atol)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", ["sgd-constant", "adam", "lbfgs"])
def test_warm_start_sequence_matches_sklearn(solver, task, early_stopping):
    ref, fast, y = _pair(task, activation="relu", warm_start=True, random_state=0,
                         early_stopping=early_stopping, **{**SOLVERS[solver], "max_iter": 3})
    for _ in range(3):
        _unalias_best_weights(ref)
        assert _fit_quietly(fast, "fit", X, y) == _fit_quietly(ref, "fit", X, y)
        assert_same_fit(ref, fast)
        if early_stopping and solver != "lbfgs":
            # Validation scores (and the loss curve) keep growing across warm fits.
            assert len(fast.validation_scores_) == len(fast.loss_curve_)


def _unalias_best_weights(ref):
    """Work around a scikit-learn bug before a warm fit with early stopping.

    After an early-stopping fit, sklearn's ``coefs_`` *is* its ``_best_coefs``
    list, and the next warm fit trains those arrays in place. If that fit never
    beats ``best_validation_score_``, sklearn "restores" the mutated arrays,
    i.e. the last epoch's weights, not the best ones. fastmlp trains a copy and
    restores the true best weights (see the test below); copying sklearn's
    weights first gives sklearn the same, intended, behaviour.
    """
    if hasattr(ref, "coefs_"):
        ref.coefs_ = [c.copy() for c in ref.coefs_]
        ref.intercepts_ = [b.copy() for b in ref.intercepts_]


def test_warm_early_stopping_fit_without_improvement_keeps_the_previous_best():
    fast = FastMLPClassifier(**{**BASE, **SOLVERS["sgd-constant"], "max_iter": 3},
                             activation="relu", warm_start=True, early_stopping=True,
                             random_state=0)
    y = DIGIT % 2
    _fit_quietly(fast, "fit", X, y)
    best_score = fast.best_validation_score_
    best = [c.copy() for c in fast.coefs_ + fast.intercepts_]
    _fit_quietly(fast, "fit", X, y)
    # Guard: with these settings the second fit does not improve on the first.
    assert fast.best_validation_score_ == best_score
    assert max(fast.validation_scores_[3:]) < best_score
    for restored, before in zip(fast.coefs_ + fast.intercepts_, best):
        np.testing.assert_array_equal(restored, before)


def _new_weights(est, seed):
    rng = np.random.RandomState(seed)
    coefs = [rng.uniform(-0.5, 0.5, c.shape) for c in est.coefs_]
    intercepts = [rng.uniform(-0.5, 0.5, b.shape) for b in est.intercepts_]
    return coefs, intercepts


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "multioutput"])
@pytest.mark.parametrize("solver", ["sgd-constant", "adam", "lbfgs"])
def test_warm_start_starts_from_assigned_weights_like_sklearn(solver, task):
    ref, fast, y = _pair(task, activation="logistic", random_state=0, **SOLVERS[solver])
    _fit_quietly(ref, "fit", X, y)
    _fit_quietly(fast, "fit", X, y)
    coefs, intercepts = _new_weights(ref, seed=5)
    for est in (ref, fast):
        # New arrays replacing the fitted ones; sklearn mutates the arrays it
        # trains in place, so each estimator gets its own copies.
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        est.set_params(warm_start=True)
    _fit_quietly(ref, "fit", X, y)
    _fit_quietly(fast, "fit", X, y)
    assert_same_fit(ref, fast)

    # And the same with a single layer edited in place.
    for est in (ref, fast):
        est.coefs_[0][:3] = 0.25
        est.intercepts_[-1][...] = -0.1
    _fit_quietly(ref, "fit", X, y)
    _fit_quietly(fast, "fit", X, y)
    assert_same_fit(ref, fast)


def test_warm_fit_from_assigned_weights_differs_from_the_untouched_warm_fit():
    # Guard: the assigned weights really are where training starts.
    _, fast, y = _pair("multiclass", activation="logistic", random_state=0, warm_start=True,
                       **SOLVERS["sgd-constant"])
    _fit_quietly(fast, "fit", X, y)
    untouched = fast.__class__(**fast.get_params())
    _fit_quietly(untouched, "fit", X, y)
    _fit_quietly(untouched, "fit", X, y)
    fast.coefs_, fast.intercepts_ = _new_weights(fast, seed=5)
    _fit_quietly(fast, "fit", X, y)
    assert not np.allclose(fast.coefs_[0], untouched.coefs_[0])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("solver", ["sgd-constant", "sgd-adaptive", "adam"])
@pytest.mark.parametrize("task", TASKS)
def test_partial_fit_stream_matches_sklearn(task, solver, weighted):
    ref, fast, y = _pair(task, activation="tanh", random_state=0, **SOLVERS[solver])
    sw = _weights(X.shape[0], 4) if weighted else None
    chunks = np.array_split(np.arange(X.shape[0]), 4)
    for i, rows in enumerate(chunks):
        kwargs = {} if sw is None else {"sample_weight": sw[rows]}
        if i == 0 and is_classifier(ref):  # required on the first call, multilabel too
            kwargs["classes"] = np.unique(y) if y.ndim == 1 else np.arange(y.shape[1])
        assert (_fit_quietly(fast, "partial_fit", X[rows], y[rows], **kwargs)
                == _fit_quietly(ref, "partial_fit", X[rows], y[rows], **kwargs))
        assert_same_fit(ref, fast)
    assert fast.t_ == X.shape[0]


@pytest.mark.parametrize("solver", ["sgd-constant", "adam"])
def test_partial_fit_after_fit_and_fit_after_partial_fit_match_sklearn(solver):
    ref, fast, y = _pair("multiclass", activation="logistic", random_state=0,
                         **SOLVERS[solver])
    steps = [("fit", X, y, {}), ("partial_fit", X[:100], y[:100], {}),
             ("partial_fit", X[100:], y[100:], {}),
             ("fit", X, y, {}),  # not warm: starts over
             ("partial_fit", X[::2], y[::2], {})]
    for method, Xs, ys, kwargs in steps:
        assert (_fit_quietly(fast, method, Xs, ys, **kwargs)
                == _fit_quietly(ref, method, Xs, ys, **kwargs))
        assert_same_fit(ref, fast)


def test_partial_fit_with_classes_missing_from_the_first_chunk_matches_sklearn():
    ref, fast, y = _pair("multiclass", activation="logistic", random_state=0,
                         **SOLVERS["sgd-constant"])
    first = DIGIT < 5  # the first chunk has only half the classes
    for est in (ref, fast):
        est.partial_fit(X[first], y[first], classes=np.arange(10))
        est.partial_fit(X[~first], y[~first])
    assert_same_fit(ref, fast)
    np.testing.assert_allclose(fast.predict_proba(X), ref.predict_proba(X), rtol=RTOL64,
                               atol=ATOL64)


@pytest.mark.parametrize("task", TASKS)
def test_predictions_match_sklearn(task):
    ref, fast, _ = _fit_pair(task, activation="logistic", **SOLVERS["adam"])
    np.testing.assert_allclose(fast.predict(X), ref.predict(X), rtol=RTOL64, atol=ATOL64)
    if task in ("binary", "multiclass", "multilabel"):
        np.testing.assert_allclose(fast.predict_proba(X), ref.predict_proba(X), rtol=RTOL64,
                                   atol=ATOL64)
        np.testing.assert_allclose(fast.predict_log_proba(X), ref.predict_log_proba(X),
                                   rtol=RTOL64, atol=ATOL64)
    assert fast.score(X, _targets(task)[1]) == pytest.approx(ref.score(X, _targets(task)[1]),
                                                             rel=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, "auto", 299, 300])
def test_batch_sizes_match_sklearn(batch_size):
    # 'auto' is min(200, n): 200 here, then a partial batch of 100.
    ref, fast, _ = _fit_pair("multiclass", activation="logistic", batch_size=batch_size,
                             **{**SOLVERS["sgd-constant"], "max_iter": 2})
    assert_same_fit(ref, fast)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_batch_size_larger_than_n_samples_warns_and_clips_like_sklearn():
    ref, fast, y = _pair("binary", activation="logistic", random_state=0, batch_size=1000,
                         **SOLVERS["sgd-constant"])
    for est in (ref, fast):
        with pytest.warns(UserWarning, match="batch_size"):
            est.fit(X, y)
    assert_same_fit(ref, fast)


def test_longer_sgd_run_stays_within_rounding_of_sklearn():
    # 40 epochs, 200 updates: rounding differences do not grow into a different model.
    ref, fast, _ = _fit_pair("multiclass", activation="logistic", hidden_layer_sizes=(32,),
                             solver="sgd", learning_rate_init=0.1, max_iter=40)
    assert_same_fit(ref, fast, rtol=1e-8, atol=1e-11)
