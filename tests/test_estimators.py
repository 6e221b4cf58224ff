"""The drop-in contract of FastMLPClassifier / FastMLPRegressor.

Same parameters, defaults, validation, errors, methods and fitted attributes
as scikit-learn's MLPClassifier / MLPRegressor; the fastmlp additions
(``backend``, ``dtype``, the classifier's ``loss``); and the estimators in
scikit-learn's tooling: Pipeline, GridSearchCV, cross_val_score, clone,
pickle / joblib (also loaded in a fresh interpreter), DataFrames, sparse input,
label types, multilabel and multi-output targets, partial_fit streams,
warm_start, early stopping and verbose output. Training trajectories are
compared in detail in test_trajectory.py.
"""

import inspect
import pickle
import re
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone, is_classifier
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import fastmlp
from fastmlp import FastMLPClassifier, FastMLPRegressor, config

PAIRS = [(MLPClassifier, FastMLPClassifier), (MLPRegressor, FastMLPRegressor)]
PAIR_IDS = ["classifier", "regressor"]

_X, _DIGIT = load_digits(return_X_y=True)
X = _X[:240] / 16.0
DIGIT = _DIGIT[:240]
Y_REG = X[:, 20] - X[:, 35] + 0.5 * X[:, 42]
Y_MULTI = np.column_stack([Y_REG, X[:, 10] * X[:, 50]])
Y_MULTILABEL = np.column_stack([DIGIT % 2, DIGIT > 4, DIGIT % 3 == 0]).astype(int)

# Small, fast models; random_state fixed so both libraries start identically.
SMALL = dict(hidden_layer_sizes=(12,), max_iter=5, random_state=0)
SGD = dict(SMALL, solver="sgd", learning_rate_init=0.05, activation="logistic")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _y_for(est):
    return DIGIT if is_classifier(est) else Y_REG


def _fastmlp_name(message, est):
    """A scikit-learn message as fastmlp words it (the class name differs)."""
    return message.replace(type(est).__name__.replace("Fast", ""), type(est).__name__)


def _params_bytes(est):
    return sum(np.asarray(a).nbytes for a in est.coefs_ + est.intercepts_)


def _assert_models_equal(a, b, rtol=1e-12, atol=1e-14):
    assert len(a.coefs_) == len(b.coefs_)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(wb, wa, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- API surface
def test_public_import_and_subclassing():
    assert fastmlp.FastMLPClassifier is FastMLPClassifier
    assert fastmlp.FastMLPRegressor is FastMLPRegressor
    assert issubclass(FastMLPClassifier, MLPClassifier)
    assert issubclass(FastMLPRegressor, MLPRegressor)
    assert is_classifier(FastMLPClassifier()) and not is_classifier(FastMLPRegressor())


@pytest.mark.parametrize("ref_cls, fast_cls", PAIRS, ids=PAIR_IDS)
def test_parameters_are_sklearns_with_the_same_defaults(ref_cls, fast_cls):
    ref, fast = ref_cls().get_params(), fast_cls().get_params()
    for name, default in ref.items():
        assert name in fast
        assert fast[name] == default, name
        assert type(fast[name]) is type(default), name
    extras = set(fast) - set(ref)
    expected = {"backend", "dtype"} | ({"loss", "class_weight"} if fast_cls is FastMLPClassifier
                                       else set())
    assert extras == expected
    assert fast["backend"] == "auto" and fast["dtype"] is None
    if fast_cls is FastMLPClassifier:
        assert fast["loss"] == "log_loss" and fast["class_weight"] is None

    # Same positional / keyword-only layout for sklearn's parameters.
    ref_sig = inspect.signature(ref_cls.__init__).parameters
    fast_sig = inspect.signature(fast_cls.__init__).parameters
    for name, p in ref_sig.items():
        assert fast_sig[name].kind == p.kind, name
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert [n for n, q in fast_sig.items() if q.kind is positional] == \
        [n for n, q in ref_sig.items() if q.kind is positional]


def test_documented_parameters_cover_all_parameters():
    # numpydoc: every constructor parameter appears in the class docstring.
    for cls in (FastMLPClassifier, FastMLPRegressor):
        doc = cls.__doc__
        for name in cls().get_params():
            assert re.search(rf"\b{name}\b", doc), (cls.__name__, name)


BAD_PARAMS = [
    dict(hidden_layer_sizes=-1), dict(hidden_layer_sizes=[3, 0]), dict(max_iter=-1),
    dict(max_iter=0), dict(shuffle=2), dict(alpha=-1), dict(learning_rate_init=0),
    dict(momentum=2), dict(momentum=-0.5), dict(nesterovs_momentum=2),
    dict(early_stopping=2), dict(validation_fraction=1), dict(validation_fraction=-0.5),
    dict(beta_1=1), dict(beta_1=-0.5), dict(beta_2=1), dict(beta_2=-0.5),
    dict(epsilon=0), dict(n_iter_no_change=0), dict(solver="hadoken"),
    dict(learning_rate="converge"), dict(activation="cloak"), dict(batch_size=0),
    dict(batch_size="big"), dict(max_fun=0), dict(tol=-1), dict(power_t=-1),
    dict(warm_start="yes"), dict(verbose="loud"), dict(random_state="seed"),
]


def _param_id(params):
    return "-".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.parametrize("bad", BAD_PARAMS, ids=_param_id)
@pytest.mark.parametrize("ref_cls, fast_cls", PAIRS, ids=PAIR_IDS)
def test_invalid_parameters_raise_sklearns_errors(ref_cls, fast_cls, bad):
    with pytest.raises(Exception) as ref_err:
        ref_cls(**bad).fit(X[:40], _y_for(ref_cls())[:40])
    fast = fast_cls(**bad)
    with pytest.raises(ref_err.type) as fast_err:
        fast.fit(X[:40], _y_for(fast)[:40])
    assert str(fast_err.value) == _fastmlp_name(str(ref_err.value), fast)


def test_regressor_loss_is_validated_like_sklearn():
    with pytest.raises(InvalidParameterError) as ref_err:
        MLPRegressor(loss="huber").fit(X, Y_REG)
    with pytest.raises(InvalidParameterError) as fast_err:
        FastMLPRegressor(loss="huber").fit(X, Y_REG)
    assert str(fast_err.value) == _fastmlp_name(str(ref_err.value), FastMLPRegressor())


@pytest.mark.parametrize("bad", [dict(backend="cuda"), dict(backend=None), dict(dtype="float16"),
                                 dict(dtype=np.int32), dict(dtype=np.float16), dict(dtype=3),
                                 dict(loss="hinge"), dict(loss="poisson")],
                         ids=_param_id)
def test_invalid_fastmlp_parameters_raise_invalid_parameter_error(bad):
    cls = FastMLPClassifier if "loss" in bad else FastMLPRegressor
    with pytest.raises(InvalidParameterError, match=f"The '{next(iter(bad))}' parameter"):
        cls(**bad).fit(X, _y_for(cls()))


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("ref_cls, fast_cls", PAIRS, ids=PAIR_IDS)
def test_same_methods_as_sklearn(ref_cls, fast_cls, solver):
    methods = ["fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "score",
               "decision_function", "transform"]
    ref, fast = ref_cls(solver=solver), fast_cls(solver=solver)
    for name in methods:
        assert hasattr(fast, name) == hasattr(ref, name), name
    if fast_cls is FastMLPClassifier:
        # partial_fit exists exactly for the stochastic solvers.
        assert hasattr(fast, "partial_fit") == (solver != "lbfgs")
        assert all(hasattr(fast, m) for m in ["predict_proba", "predict_log_proba"])
    assert inspect.signature(fast.fit).parameters.keys() == \
        inspect.signature(ref.fit).parameters.keys()
    if hasattr(ref, "partial_fit"):
        assert inspect.signature(fast.partial_fit).parameters.keys() == \
            inspect.signature(ref.partial_fit).parameters.keys()


def test_partial_fit_of_lbfgs_classifier_raises_sklearns_attribute_error():
    with pytest.raises(AttributeError) as ref_err:
        MLPClassifier(solver="lbfgs").partial_fit
    with pytest.raises(AttributeError) as fast_err:
        FastMLPClassifier(solver="lbfgs").partial_fit
    assert str(ref_err.value.__cause__) == str(fast_err.value.__cause__)


def _public_fitted(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


FITTED_CASES = {
    "multiclass-sgd": (0, dict(solver="sgd")),
    "multiclass-adam-early": (0, dict(solver="adam", early_stopping=True)),
    "multiclass-lbfgs": (0, dict(solver="lbfgs")),
    "binary-adam": (1, dict(solver="adam")),
    "multilabel-sgd": (2, dict(solver="sgd")),
    "reg-sgd": (3, dict(solver="sgd")),
    "reg-sgd-early": (3, dict(solver="sgd", early_stopping=True)),
    "reg-multi-lbfgs": (4, dict(solver="lbfgs")),
    "reg-poisson-adam": (5, dict(solver="adam", loss="poisson")),
}


@pytest.mark.parametrize("case", list(FITTED_CASES))
def test_fitted_attributes_have_sklearns_names_types_and_shapes(case):
    task, params = FITTED_CASES[case]
    y = [DIGIT, DIGIT % 2, Y_MULTILABEL, Y_REG, Y_MULTI, np.round(np.exp(Y_REG))][task]
    ref_cls, fast_cls = PAIRS[task >= 3]
    ref = ref_cls(**SMALL, **params).fit(X, y)
    fast = fast_cls(**SMALL, **params).fit(X, y)
    ref_attrs, fast_attrs = _public_fitted(ref), _public_fitted(fast)
    # fastmlp adds the backend the fit ran on, and beside validation_scores_
    # the validation loss curve (tests/test_validation_loss.py checks its values).
    added = {"backend_"} | ({"validation_loss_curve_"} if "validation_scores_" in ref_attrs
                            else set())
    assert fast_attrs.keys() == ref_attrs.keys() | added
    assert fast_attrs.pop("backend_") == "numba"
    curve = fast_attrs.pop("validation_loss_curve_", None)
    assert (curve is None) == (ref_attrs.get("validation_scores_") is None)
    for name, value in ref_attrs.items():
        got = fast_attrs[name]
        assert type(got) is type(value), name
        if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            assert [a.shape for a in got] == [a.shape for a in value], name
            assert [a.dtype for a in got] == [a.dtype for a in value], name
        elif isinstance(value, list):  # loss_curve_, validation_scores_
            assert [type(v) for v in got] == [type(v) for v in value], name
        elif isinstance(value, np.ndarray):
            assert got.shape == value.shape and got.dtype == value.dtype, name
            if value.dtype.kind in "OUSb":
                np.testing.assert_array_equal(got, value)
        elif isinstance(value, (str, int)) or value is None:
            assert got == value, name
    # The meanings are the same too (test_trajectory.py compares the values).
    assert fast.n_layers_ == 3 and fast.n_features_in_ == X.shape[1]
    assert fast.n_outputs_ == fast.coefs_[-1].shape[1]


# ---------------------------------------------------------------------------- errors
BAD_INPUT_CASES = {
    "nan-in-X": lambda c: c(**SMALL).fit(np.where(X > 0.9, np.nan, X), _y_for(c())),
    "inf-in-X": lambda c: c(**SMALL).fit(np.where(X > 0.9, np.inf, X), _y_for(c())),
    "X-y-lengths": lambda c: c(**SMALL).fit(X, _y_for(c())[:-3]),
    "X-1d": lambda c: c(**SMALL).fit(X[:, 0], _y_for(c())),
    "X-3d": lambda c: c(**SMALL).fit(X[:, :, None], _y_for(c())),
    "X-strings": lambda c: c(**SMALL).fit(np.full((10, 2), "a"), _y_for(c())[:10]),
    "empty-X": lambda c: c(**SMALL).fit(X[:0], _y_for(c())[:0]),
    "sample-weight-shape": lambda c: c(**SMALL).fit(X, _y_for(c()), sample_weight=np.ones(3)),
    "predict-unfitted": lambda c: c(**SMALL).predict(X),
    "predict-wrong-n-features": lambda c: c(**SMALL).fit(X, _y_for(c())).predict(X[:, :10]),
    "predict-nan": lambda c: c(**SMALL).fit(X, _y_for(c())).predict(X * np.nan),
    "validation-set-too-small": lambda c: c(**SMALL, early_stopping=True,
                                            validation_fraction=0.001).fit(X, _y_for(c())),
    "partial-fit-early-stopping": lambda c: c(**SGD, early_stopping=True).partial_fit(
        X, DIGIT, **({"classes": np.arange(10)} if is_classifier(c()) else {})),
    "hidden-layer-zero": lambda c: c(hidden_layer_sizes=(4, 0)).fit(X, _y_for(c())),
}


@pytest.mark.parametrize("case", list(BAD_INPUT_CASES))
@pytest.mark.parametrize("ref_cls, fast_cls", PAIRS, ids=PAIR_IDS)
def test_bad_input_raises_sklearns_errors(ref_cls, fast_cls, case):
    call = BAD_INPUT_CASES[case]
    with pytest.raises(Exception) as ref_err:
        call(ref_cls)
    with pytest.raises(Exception) as fast_err:
        call(fast_cls)
    assert fast_err.type is ref_err.type, (fast_err.value, ref_err.value)
    assert str(fast_err.value) == _fastmlp_name(str(ref_err.value), fast_cls())


CLASSIFIER_ERROR_CASES = {
    "continuous-y": lambda c: c(**SMALL).fit(X, Y_REG),
    "partial-fit-without-classes": lambda c: c(**SGD).partial_fit(X, DIGIT),
    "partial-fit-multilabel-without-classes": lambda c: c(**SGD).partial_fit(X, Y_MULTILABEL),
    "partial-fit-unknown-class": lambda c: c(**SGD).partial_fit(
        X[DIGIT < 5], DIGIT[DIGIT < 5], classes=np.arange(5)).partial_fit(X, DIGIT),
    "partial-fit-classes-not-superset": lambda c: c(**SGD).partial_fit(X, DIGIT, classes=[0, 1]),
    "partial-fit-classes-changed": lambda c: c(**SGD).partial_fit(
        X, DIGIT, classes=np.arange(10)).partial_fit(X, DIGIT, classes=np.arange(11)),
    "warm-start-new-classes": lambda c: c(**SMALL, warm_start=True).fit(
        X[DIGIT < 5], DIGIT[DIGIT < 5]).fit(X, DIGIT),
}


@pytest.mark.parametrize("case", list(CLASSIFIER_ERROR_CASES))
def test_classifier_label_errors_are_sklearns(case):
    call = CLASSIFIER_ERROR_CASES[case]
    with pytest.raises(Exception) as ref_err:
        call(MLPClassifier)
    with pytest.raises(Exception) as fast_err:
        call(FastMLPClassifier)
    assert fast_err.type is ref_err.type, (fast_err.value, ref_err.value)
    assert str(fast_err.value) == _fastmlp_name(str(ref_err.value), FastMLPClassifier())


def test_regressor_rejects_non_numeric_targets_like_sklearn():
    y = np.where(DIGIT > 4, "big", "small").astype(object)
    with pytest.raises(ValueError) as ref_err:
        MLPRegressor(**SMALL).fit(X, y)
    with pytest.raises(ValueError) as fast_err:
        FastMLPRegressor(**SMALL).fit(X, y)
    assert str(fast_err.value) == str(ref_err.value)


def test_not_fitted_error_is_sklearns():
    for cls in (FastMLPClassifier, FastMLPRegressor):
        with pytest.raises(NotFittedError, match=f"This {cls.__name__} instance is not fitted"):
            cls().predict(X)
    with pytest.raises(NotFittedError):
        FastMLPClassifier().predict_proba(X)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("ref_cls, fast_cls", PAIRS, ids=PAIR_IDS)
def test_convergence_warning_is_sklearns(ref_cls, fast_cls, solver):
    kwargs = dict(SMALL, solver=solver, max_iter=3)
    with pytest.warns(ConvergenceWarning) as ref_warn:
        ref_cls(**kwargs).fit(X, _y_for(ref_cls()))
    with pytest.warns(ConvergenceWarning) as fast_warn:
        fast_cls(**kwargs).fit(X, _y_for(fast_cls()))
    messages = [str(w.message) for w in ref_warn if w.category is ConvergenceWarning]
    assert [str(w.message) for w in fast_warn if w.category is ConvergenceWarning] == messages


def test_no_convergence_warning_when_training_converges():
    est = FastMLPClassifier(**{**SGD, "max_iter": 200}, tol=1e3, n_iter_no_change=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, DIGIT)
    assert est.n_iter_ == 3


# ---------------------------------------------------------------------------- additions
@pytest.mark.parametrize("X_dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                                               (np.int64, np.float64), (np.uint8, np.float64)])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_dtype_none_follows_sklearns_rule(solver, X_dtype, expected):
    Xd = (X * 16).astype(X_dtype) if np.dtype(X_dtype).kind in "iu" else X.astype(X_dtype)
    clf = FastMLPClassifier(**SMALL, solver=solver).fit(Xd, DIGIT)
    assert all(a.dtype == expected for a in clf.coefs_ + clf.intercepts_)
    proba = clf.predict_proba(Xd)
    # Same output dtype as sklearn's forward pass: float32 only for float32 X.
    assert proba.dtype == np.result_type(Xd.dtype, expected)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.float64, "float64"])
@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_explicit_dtype_sets_the_compute_dtype(fast_cls, dtype):
    y = _y_for(fast_cls())
    other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
    est = fast_cls(**SGD, dtype=dtype).fit(X.astype(other), y)  # the input's dtype is ignored
    assert all(a.dtype == np.dtype(dtype) for a in est.coefs_ + est.intercepts_)
    # Predictions agree with a float64 model to float32 rounding.
    ref = fast_cls(**SGD, dtype=np.float64).fit(X, y)
    if is_classifier(est):
        np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-5)
        assert accuracy_score(ref.predict(X), est.predict(X)) > 0.99
    else:
        np.testing.assert_allclose(est.predict(X), ref.predict(X), atol=1e-5)
    # partial_fit keeps training in the model's dtype.
    if np.dtype(dtype) == np.float32:
        est2 = fast_cls(**SGD, dtype=None)
        kwargs = {"classes": np.arange(10)} if is_classifier(est2) else {}
        est2.partial_fit(X.astype(np.float32), y, **kwargs)
        est2.partial_fit(X, y)  # float64 X now; the model stays float32
        assert est2.coefs_[0].dtype == np.float32


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_numpy_and_numba_backends_fit_the_same_model(fast_cls, solver):
    y = _y_for(fast_cls())
    a = fast_cls(**SMALL, solver=solver, backend="numba").fit(X, y)
    b = fast_cls(**SMALL, solver=solver, backend="numpy").fit(X, y)
    _assert_models_equal(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=1e-9, atol=1e-12)
    # The backend is a runtime choice: a model predicts the same with either.
    b.set_params(backend="numba")
    np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=1e-9, atol=1e-12)


def test_classifier_squared_error_loss_learns_xor_with_sigmoid_outputs():
    # Seed 000: sigmoid network trained on half squared error learns XOR.
    X_xor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y_xor = np.array([0, 1, 1, 0])
    clf = FastMLPClassifier((3,), activation="logistic", solver="lbfgs", loss="squared_error",
                            alpha=0.0, random_state=1, max_iter=500, tol=1e-10).fit(X_xor, y_xor)
    assert clf.out_activation_ == "logistic"
    np.testing.assert_array_equal(clf.predict(X_xor), y_xor)
    p = clf.predict_proba(X_xor)[:, 1]
    # loss_ is half the squared error of the sigmoid outputs, averaged over rows.
    assert clf.loss_ == pytest.approx(0.5 * np.mean((p - y_xor) ** 2), rel=1e-6, abs=1e-12)


def test_classifier_squared_error_loss_multiclass_probabilities_sum_to_one():
    clf = FastMLPClassifier(**SGD, loss="squared_error").fit(X, DIGIT)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    # A different objective from log_loss, so a different model.
    other = FastMLPClassifier(**SGD).fit(X, DIGIT)
    assert not np.allclose(other.coefs_[0], clf.coefs_[0])


# ---------------------------------------------------------------------------- sklearn tooling
def test_pipeline_grid_search_and_cross_val_score():
    grids = []
    for cls in (MLPClassifier, FastMLPClassifier):
        pipe = make_pipeline(StandardScaler(), cls(**{**SGD, "max_iter": 20}))
        name = cls.__name__.lower()
        grids.append(GridSearchCV(pipe, {f"{name}__hidden_layer_sizes": [(8,), (16,)],
                                         f"{name}__learning_rate_init": [0.01, 0.1]}, cv=3))
        grids[-1].fit(X, DIGIT)
    ref, grid = grids
    # The same search as with sklearn's MLP: same scores, same winner.
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], rtol=1e-12)
    assert grid.best_params_ == {k.replace("mlp", "fastmlp"): v
                                 for k, v in ref.best_params_.items()}
    assert grid.best_score_ > 0.6  # 20 epochs on 160 rows; chance is 0.1
    assert isinstance(grid.best_estimator_[-1], FastMLPClassifier)
    np.testing.assert_array_equal(grid.predict(X), ref.predict(X))
    scores = cross_val_score(make_pipeline(StandardScaler(), FastMLPRegressor(
        **{**SGD, "learning_rate_init": 0.01, "max_iter": 30})), X, Y_REG, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    # Same cross-validation scores as sklearn's MLP in the same pipeline.
    ref_scores = cross_val_score(make_pipeline(StandardScaler(), MLPRegressor(
        **{**SGD, "learning_rate_init": 0.01, "max_iter": 30})), X, Y_REG, cv=3)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-9)


@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_clone_copies_parameters_not_fit(fast_cls):
    est = fast_cls(**SGD, backend="numpy", dtype="float32").fit(X, _y_for(fast_cls()))
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "coefs_")


def _fitted_models():
    return {
        "clf": FastMLPClassifier(**SGD).fit(X, DIGIT),
        "clf-lbfgs-str": FastMLPClassifier(**{**SMALL, "solver": "lbfgs"}).fit(
            X, np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                         "eight", "nine"])[DIGIT]),
        "reg-adam": FastMLPRegressor(**SMALL).fit(X, Y_MULTI),
    }


def _outputs(est):
    return est.predict_proba(X) if is_classifier(est) else est.predict(X)


@pytest.mark.parametrize("dumper", ["pickle", "joblib"])
def test_pickle_and_joblib_round_trips(dumper, tmp_path):
    for name, est in _fitted_models().items():
        path = tmp_path / f"{name}.bin"
        if dumper == "pickle":
            path.write_bytes(pickle.dumps(est))
            loaded = pickle.loads(path.read_bytes())
        else:
            joblib.dump(est, path)
            loaded = joblib.load(path)
        np.testing.assert_array_equal(_outputs(loaded), _outputs(est))
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        assert loaded.get_params() == est.get_params()


def test_unpickled_model_keeps_training_like_the_original():
    # The optimizer state travels with the model: partial_fit after a round
    # trip continues exactly as without one.
    a = FastMLPClassifier(**{**SMALL, "solver": "adam"}).partial_fit(X, DIGIT,
                                                                      classes=np.arange(10))
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(X, DIGIT)
    b.partial_fit(X, DIGIT)
    _assert_models_equal(a, b, rtol=0, atol=0)
    assert a.loss_curve_ == b.loss_curve_


_FRESH_PROCESS = """
import pickle, sys
import joblib, numpy as np
from fastmlp import config
config.AUTO_NUMPY_SECONDS = float(sys.argv[1])  # the parent's, so both predict alike
X = np.load(sys.argv[2])
for path in sys.argv[3:]:
    est = joblib.load(path) if path.endswith(".joblib") else pickle.load(open(path, "rb"))
    out = est.predict_proba(X) if hasattr(est, "classes_") else est.predict(X)
    np.save(path + ".out.npy", out)
"""


@pytest.mark.slow
@pytest.mark.parametrize("auto", ["kernels", "as-shipped"])
def test_models_load_and_predict_in_a_fresh_process(auto, tmp_path, request):
    if auto == "as-shipped":
        request.getfixturevalue("auto_as_shipped")  # small predictions on NumPy
    models = _fitted_models()
    paths = []
    for name, est in models.items():
        paths.append(tmp_path / f"{name}.pkl")
        paths[-1].write_bytes(pickle.dumps(est))
        paths.append(tmp_path / f"{name}.joblib")
        joblib.dump(est, paths[-1])
    np.save(tmp_path / "X.npy", X)
    subprocess.run([sys.executable, "-c", _FRESH_PROCESS, repr(config.AUTO_NUMPY_SECONDS),
                    str(tmp_path / "X.npy"),
                    *map(str, paths)], check=True, timeout=300, cwd=tmp_path)
    for path in paths:
        est = models[path.stem]
        np.testing.assert_array_equal(np.load(str(path) + ".out.npy"), _outputs(est))


# Optimizer state buffers kept for partial_fit / warm continuation, as sklearn.
_STATE_BUFFERS = {"sgd": 1, "adam": 2, "lbfgs": 0}


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_pickles_are_small(solver, early_stopping):
    # No compiled objects, workspaces or copies of the data: a pickle holds the
    # weights, the optimizer state scikit-learn also keeps, the best weights of
    # early stopping (which are coefs_ after the fit) and small bookkeeping.
    Xl = np.tile(X, (4, 1))  # data much bigger than the model
    kwargs = dict(SMALL, hidden_layer_sizes=(32,), solver=solver, early_stopping=early_stopping)
    est = FastMLPClassifier(**kwargs).fit(Xl, np.tile(DIGIT, 4))
    size = len(pickle.dumps(est))
    bound = (1 + _STATE_BUFFERS[solver]) * _params_bytes(est) + 8_000
    assert size < bound, (size, _params_bytes(est))
    if solver == "sgd":
        assert size < 3 * _params_bytes(est) + 8_000
    # And never more than what sklearn's own MLP pickles.
    ref = MLPClassifier(**kwargs).fit(Xl, np.tile(DIGIT, 4))
    assert size <= len(pickle.dumps(ref)) + 200


# ---------------------------------------------------------------------------- input types
@pytest.fixture
def pd():
    """pandas, for the DataFrame tests only (a test extra: its absence skips just these)."""
    return pytest.importorskip("pandas", reason="pandas (test extra) is needed for DataFrame tests")


@pytest.mark.parametrize("ref_cls, fast_cls", PAIRS, ids=PAIR_IDS)
def test_dataframe_input_sets_feature_names_and_warns_like_sklearn(pd, ref_cls, fast_cls):
    columns = [f"pixel_{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    y = pd.Series(_y_for(fast_cls()))
    ref = ref_cls(**SGD).fit(df, y)
    fast = fast_cls(**SGD).fit(df, y)
    np.testing.assert_array_equal(fast.feature_names_in_, np.array(columns, dtype=object))
    np.testing.assert_allclose(fast.predict(df), ref.predict(df), rtol=1e-9, atol=1e-12)

    # Fitted with names, predicting with an array: sklearn's warning.
    def _messages(est, data):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.predict(data)
        return [str(w.message) for w in caught]

    # Or with the columns in another order: sklearn's error.
    fast_msgs = _messages(fast, X)
    assert fast_msgs == [_fastmlp_name(m, fast) for m in _messages(ref, X)]
    assert len(fast_msgs) == 1
    shuffled = df[columns[::-1]]
    with pytest.raises(ValueError) as ref_err:
        ref.predict(shuffled)
    with pytest.raises(ValueError) as fast_err:
        fast.predict(shuffled)
    assert str(fast_err.value) == str(ref_err.value)

    # Fitted without names, predicting with a DataFrame: sklearn's warning too.
    plain = fast_cls(**SGD).fit(X, y.to_numpy())
    ref_plain = ref_cls(**SGD).fit(X, y.to_numpy())
    assert not hasattr(plain, "feature_names_in_")
    assert _messages(plain, df) == [_fastmlp_name(m, plain) for m in _messages(ref_plain, df)]


def test_dataframe_warning_text_names_the_fastmlp_class(pd):
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    clf = FastMLPClassifier(**SGD).fit(df, DIGIT)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                         "FastMLPClassifier was fitted with feature names"):
        clf.predict(X)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_sparse_input_fits_and_predicts_like_dense(fast_cls, fmt):
    Xs = sp.csr_matrix(X).asformat(fmt)
    y = _y_for(fast_cls())
    dense = fast_cls(**SGD).fit(X, y)
    sparse = fast_cls(**SGD).fit(Xs, y)
    _assert_models_equal(dense, sparse, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.predict(Xs), dense.predict(X), rtol=1e-9, atol=1e-12)
    # sparse arrays (not just matrices) too
    np.testing.assert_allclose(sparse.predict(sp.csr_array(X)), dense.predict(X), rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("labels", [
    np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]),
    np.arange(10) * 7 - 20,  # negative and non-contiguous integers
    np.arange(10).astype(float) - 3,
    np.array([True, False] * 5),  # binary booleans
], ids=["strings", "integers", "floats", "booleans"])
def test_label_types_match_sklearn(labels):
    y = labels[DIGIT]
    ref = MLPClassifier(**SGD).fit(X, y)
    fast = FastMLPClassifier(**SGD).fit(X, y)
    np.testing.assert_array_equal(fast.classes_, ref.classes_)
    assert fast.classes_.dtype == ref.classes_.dtype
    pred = fast.predict(X)
    assert pred.dtype == ref.predict(X).dtype
    np.testing.assert_array_equal(pred, ref.predict(X))
    assert set(pred) <= set(labels)
    assert fast.score(X, y) == ref.score(X, y)


def test_string_labels_binary_predict_proba_columns_follow_classes():
    y = np.where(DIGIT % 2 == 0, "even", "odd")
    clf = FastMLPClassifier(**{**SGD, "max_iter": 30}).fit(X, y)
    assert list(clf.classes_) == ["even", "odd"]
    proba = clf.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))


def test_multilabel_classifier_matches_sklearn():
    ref = MLPClassifier(**SGD).fit(X, Y_MULTILABEL)
    fast = FastMLPClassifier(**SGD).fit(X, Y_MULTILABEL)
    assert fast.out_activation_ == "logistic" and fast.n_outputs_ == 3
    pred = fast.predict(X)
    assert pred.shape == Y_MULTILABEL.shape
    np.testing.assert_array_equal(pred, ref.predict(X))
    proba = fast.predict_proba(X)
    assert proba.shape == Y_MULTILABEL.shape  # one independent probability per label
    np.testing.assert_allclose(proba, ref.predict_proba(X), rtol=1e-9, atol=1e-12)
    assert fast.score(X, Y_MULTILABEL) == ref.score(X, Y_MULTILABEL)  # subset accuracy


def test_multioutput_regressor_matches_sklearn():
    ref = MLPRegressor(**SGD).fit(X, Y_MULTI)
    fast = FastMLPRegressor(**SGD).fit(X, Y_MULTI)
    assert fast.predict(X).shape == Y_MULTI.shape
    np.testing.assert_allclose(fast.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)
    assert fast.score(X, Y_MULTI) == pytest.approx(ref.score(X, Y_MULTI), rel=1e-12)
    # A single-column 2-D target warns and predicts 1-D, like sklearn.
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        fast.fit(X, Y_REG[:, None])
    assert fast.predict(X).shape == (X.shape[0],)


def test_list_input_is_accepted_like_sklearn():
    fast = FastMLPClassifier(**SGD).fit(X.tolist(), DIGIT.tolist())
    ref = MLPClassifier(**SGD).fit(X.tolist(), DIGIT.tolist())
    np.testing.assert_allclose(fast.predict_proba(X.tolist()), ref.predict_proba(X.tolist()),
                               rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------- training semantics
def test_partial_fit_stream_matches_sklearn_and_requires_classes_first():
    ref, fast = MLPClassifier(**SGD), FastMLPClassifier(**SGD)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        fast.partial_fit(X[:60], DIGIT[:60])
    assert not hasattr(fast, "coefs_")  # the failed first call left no trace
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), 4)):
        kwargs = {"classes": np.arange(10)} if i == 0 else {}
        ref.partial_fit(X[rows], DIGIT[rows], **kwargs)
        fast.partial_fit(X[rows], DIGIT[rows], **kwargs)
        assert fast.n_iter_ == 1 and fast.t_ == rows[-1] + 1
    assert len(fast.loss_curve_) == 4
    _assert_models_equal(ref, fast, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(fast.predict(X), ref.predict(X))


def test_regressor_partial_fit_stream_matches_sklearn():
    ref, fast = MLPRegressor(**SGD), FastMLPRegressor(**SGD)
    for rows in np.array_split(np.arange(X.shape[0]), 3):
        ref.partial_fit(X[rows], Y_REG[rows])
        fast.partial_fit(X[rows], Y_REG[rows])
    _assert_models_equal(ref, fast, rtol=1e-9, atol=1e-12)
    assert fast.loss_curve_ == pytest.approx(ref.loss_curve_, rel=1e-9)


@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_warm_start_continues_training(fast_cls):
    y = _y_for(fast_cls())
    warm = fast_cls(**SGD, warm_start=True).fit(X, y)
    first = [c.copy() for c in warm.coefs_]
    warm.fit(X, y)
    # Continues: the loss curve and sample count grow, n_iter_ counts this fit.
    assert len(warm.loss_curve_) == 2 * SGD["max_iter"]
    assert warm.n_iter_ == SGD["max_iter"]
    assert warm.t_ == 2 * SGD["max_iter"] * X.shape[0]
    assert not np.allclose(warm.coefs_[0], first[0])
    # Without warm_start, fit starts over from the same initial weights.
    cold = fast_cls(**SGD).fit(X, y)
    cold.fit(X, y)
    assert len(cold.loss_curve_) == SGD["max_iter"]
    _assert_models_equal(cold, fast_cls(**SGD).fit(X, y), rtol=0, atol=0)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_warm_start_from_assigned_weights_matches_sklearn(solver):
    kwargs = dict(SMALL, solver=solver, activation="logistic", warm_start=True)
    ref, fast = MLPClassifier(**kwargs).fit(X, DIGIT), FastMLPClassifier(**kwargs).fit(X, DIGIT)
    rng = np.random.RandomState(7)
    coefs = [rng.normal(scale=0.3, size=c.shape) for c in fast.coefs_]
    intercepts = [rng.normal(scale=0.3, size=b.shape) for b in fast.intercepts_]
    for est in (ref, fast):
        est.coefs_ = [c.copy() for c in coefs]
        est.intercepts_ = [b.copy() for b in intercepts]
        est.fit(X, DIGIT)
    _assert_models_equal(ref, fast, rtol=1e-9, atol=1e-12)
    # Guard: a warm fit from the fitted (not the assigned) weights ends elsewhere.
    untouched = FastMLPClassifier(**kwargs).fit(X, DIGIT).fit(X, DIGIT)
    assert not np.allclose(untouched.coefs_[0], fast.coefs_[0])


@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_early_stopping_restores_the_weights_of_the_best_validation_epoch(fast_cls):
    ref_cls = MLPClassifier if fast_cls is FastMLPClassifier else MLPRegressor
    y = _y_for(fast_cls())
    kwargs = dict(SGD, max_iter=40, early_stopping=True, n_iter_no_change=3, tol=1e-3)
    fast = fast_cls(**kwargs).fit(X, y)
    ref = ref_cls(**kwargs).fit(X, y)
    assert len(fast.validation_scores_) == fast.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(fast.validation_scores_, ref.validation_scores_, rtol=1e-9)
    assert fast.best_validation_score_ == max(fast.validation_scores_)
    assert fast.best_loss_ is None
    best_epoch = int(np.argmax(fast.validation_scores_)) + 1
    assert best_epoch < fast.n_iter_  # guard: it stopped after the best epoch
    _assert_models_equal(ref, fast, rtol=1e-9, atol=1e-12)
    # The restored weights are those after the best epoch: training exactly
    # that many epochs (same split and shuffles) ends on the same weights.
    until_best = fast_cls(**{**kwargs, "max_iter": best_epoch,
                             "n_iter_no_change": 1000}).fit(X, y)
    _assert_models_equal(until_best, fast, rtol=0, atol=0)
    assert until_best.validation_scores_ == fast.validation_scores_[:best_epoch]


def test_early_stopping_split_of_imbalanced_binary_target_matches_sklearn():
    # sklearn stratifies the validation split of single-output targets.
    y = (DIGIT == 3).astype(int)  # 10% positives
    kwargs = dict(SGD, early_stopping=True, validation_fraction=0.25)
    ref = MLPClassifier(**kwargs).fit(X, y)
    fast = FastMLPClassifier(**kwargs).fit(X, y)
    np.testing.assert_allclose(fast.validation_scores_, ref.validation_scores_, rtol=1e-9)
    _assert_models_equal(ref, fast, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_predict_log_proba_and_score(fast_cls):
    y = _y_for(fast_cls())
    est = fast_cls(**SGD).fit(X, y)
    sw = np.random.RandomState(0).uniform(0.1, 2, size=X.shape[0])
    if is_classifier(est):
        proba = est.predict_proba(X)
        np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-12)
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
        assert est.score(X, y) == accuracy_score(y, est.predict(X))
        assert est.score(X, y, sample_weight=sw) == pytest.approx(
            accuracy_score(y, est.predict(X), sample_weight=sw))
        binary = fast_cls(**SGD).fit(X, y % 2)
        np.testing.assert_allclose(binary.predict_log_proba(X), np.log(binary.predict_proba(X)))
    else:
        assert est.score(X, y) == pytest.approx(r2_score(y, est.predict(X)))
        assert est.score(X, y, sample_weight=sw) == pytest.approx(
            r2_score(y, est.predict(X), sample_weight=sw))


@pytest.mark.parametrize("fast_cls", [FastMLPClassifier, FastMLPRegressor])
def test_sample_weight_changes_the_fit_like_sklearn(fast_cls):
    ref_cls = MLPClassifier if fast_cls is FastMLPClassifier else MLPRegressor
    y = _y_for(fast_cls())
    sw = np.random.RandomState(1).uniform(0.1, 3, size=X.shape[0])
    fast = fast_cls(**SGD).fit(X, y, sample_weight=sw)
    _assert_models_equal(ref_cls(**SGD).fit(X, y, sample_weight=sw), fast, rtol=1e-9,
                         atol=1e-12)
    assert not np.allclose(fast_cls(**SGD).fit(X, y).coefs_[0], fast.coefs_[0])
    # Integer weights equal repeated rows in the full-batch (lbfgs) objective.
    w = np.random.RandomState(2).randint(0, 3, size=X.shape[0])
    lb = dict(SMALL, solver="lbfgs", max_iter=20)
    weighted = fast_cls(**lb).fit(X, y, sample_weight=w)
    repeated = fast_cls(**lb).fit(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    _assert_models_equal(weighted, repeated, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_prints_sklearns_epoch_lines_plus_elapsed_time(capsys, early_stopping):
    kwargs = dict(SGD, verbose=True, early_stopping=early_stopping)
    MLPClassifier(**kwargs).fit(X, DIGIT)
    ref_out = capsys.readouterr().out.splitlines()
    fast = FastMLPClassifier(**kwargs).fit(X, DIGIT)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(ref_out)
    pattern = re.compile(r"^(Iteration (\d+), loss = \d+\.\d{8}), elapsed = (\d+\.\d{2}) s$")
    iteration_lines = [line for line in out if line.startswith("Iteration")]
    assert len(iteration_lines) == fast.n_iter_
    elapsed = []
    for n, (line, ref_line) in enumerate(zip(out, ref_out)):
        match = pattern.match(line)
        if ref_line.startswith("Iteration"):
            assert match, line
            assert match.group(1) == ref_line  # sklearn's text, same loss to 8 decimals
            elapsed.append(float(match.group(3)))
        else:
            assert line == ref_line  # "Validation score: ..." lines
    assert elapsed == sorted(elapsed)  # elapsed time since the start of the fit
    assert [float(line.split("loss = ")[1].split(",")[0]) for line in iteration_lines] == \
        pytest.approx(fast.loss_curve_, abs=1e-8)


def test_not_verbose_prints_nothing(capsys):
    FastMLPClassifier(**SGD).fit(X, DIGIT)
    FastMLPClassifier(**{**SMALL, "solver": "lbfgs"}).fit(X, DIGIT)
    assert capsys.readouterr().out == ""


def test_set_params_and_refit():
    est = FastMLPClassifier(**SGD).fit(X, DIGIT)
    est.set_params(hidden_layer_sizes=(5, 4), backend="numpy")
    est.fit(X, DIGIT)
    assert [c.shape for c in est.coefs_] == [(64, 5), (5, 4), (4, 10)]
    assert est.n_layers_ == 4


def test_get_params_is_unchanged_by_fit():
    est = FastMLPRegressor(**SGD, dtype="float32")
    before = est.get_params()
    est.fit(X, Y_REG)
    assert est.get_params() == before


def test_repr_shows_changed_parameters_only():
    text = repr(FastMLPClassifier(backend="numpy", hidden_layer_sizes=(7,)))
    assert text == "FastMLPClassifier(backend='numpy', hidden_layer_sizes=(7,))"
