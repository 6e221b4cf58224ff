"""Bad input raises what scikit-learn raises, and a failed call leaves a fitted model untouched.

Every case is run side by side on scikit-learn's estimator and ours: the
exception type must be the same (ValueError, NotFittedError,
InvalidParameterError, ...) and our message must name the problem.
"""

import copy
import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils._param_validation import InvalidParameterError

from fastmlp import FastMLPClassifier, FastMLPRegressor, config
from fastmlp.engine import backends


@pytest.fixture(params=["kernels", "numpy"])
def auto_path(request, monkeypatch):
    """A case on both paths the default ``backend='auto'`` can take.

    For the tests whose errors can come from either path (scikit-learn's
    validation of X before NumPy trains, or the kernels' own check of the
    rows they train on). The others name their backend, call ``partial_fit``
    (always the kernels), or fail in parameter validation, before any path.
    """
    seconds = 0.0 if request.param == "kernels" else np.inf
    monkeypatch.setattr(config, "AUTO_NUMPY_SECONDS", seconds)
    return request.param

RNG = np.random.RandomState(0)
X = RNG.rand(60, 4)
Y_CLS = np.arange(60) % 3
Y_REG = X @ RNG.rand(4)


def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


X_NAN = _with(X, 3, 1, np.nan)
X_INF = _with(X, 5, 2, np.inf)
X_NEG_INF = _with(X, 7, 0, -np.inf)


def _fitted(est_cls, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est_cls(hidden_layer_sizes=(5,), max_iter=3, random_state=0, **params).fit(X, y)


def _new(est_cls, **params):
    return est_cls(hidden_layer_sizes=(5,), max_iter=3, random_state=0, **params)


# (id, call(est_cls, y) -> anything, key phrase our message must contain)
CASES = [
    ("fit-nan", lambda E, y: _new(E).fit(X_NAN, y), r"Input X contains NaN"),
    ("fit-inf", lambda E, y: _new(E).fit(X_INF, y), r"Input X contains infinity"),
    ("fit-neg-inf", lambda E, y: _new(E).fit(X_NEG_INF, y), r"Input X contains infinity"),
    ("fit-lbfgs-nan", lambda E, y: _new(E, solver="lbfgs").fit(X_NAN, y), r"contains NaN"),
    ("partial_fit-nan", lambda E, y: _fitted(E, y).partial_fit(X_NAN, y), r"contains NaN"),
    ("partial_fit-inf", lambda E, y: _fitted(E, y).partial_fit(X_INF, y), r"infinity"),
    ("predict-nan", lambda E, y: _fitted(E, y).predict(X_NAN), r"Input X contains NaN"),
    ("predict-inf", lambda E, y: _fitted(E, y).predict(X_INF), r"Input X contains infinity"),
    ("empty-X", lambda E, y: _new(E).fit(np.empty((0, 4)), np.empty(0)), r"0 sample\(s\)"),
    ("empty-features", lambda E, y: _new(E).fit(np.empty((60, 0)), y), r"0 feature\(s\)"),
    ("predict-empty", lambda E, y: _fitted(E, y).predict(np.empty((0, 4))), r"0 sample\(s\)"),
    ("1d-X", lambda E, y: _new(E).fit(X[:, 0], y), r"Expected 2D array, got 1D array"),
    ("1d-X-predict", lambda E, y: _fitted(E, y).predict(X[0]), r"Expected 2D array"),
    ("3d-X", lambda E, y: _new(E).fit(X.reshape(60, 2, 2), y), r"dim 3"),
    ("string-features", lambda E, y: _new(E).fit(np.full((60, 2), "a"), y),
     r"could not convert string to float"),
    ("object-features", lambda E, y: _new(E).fit(np.array([[1.0, "b"]] * 60, dtype=object), y),
     r"could not convert string to float"),
    ("complex-features", lambda E, y: _new(E).fit(X + 1j, y), r"Complex data not supported"),
    ("length-mismatch", lambda E, y: _new(E).fit(X, y[:-1]),
     r"inconsistent numbers of samples: \[60, 59\]"),
    ("sample-weight-length", lambda E, y: _new(E).fit(X, y, sample_weight=np.ones(5)),
     r"sample_weight\.shape == \(5,\), expected \(60,\)"),
    ("y-nan", lambda E, y: _new(E).fit(X, np.where(np.arange(60) == 4, np.nan, y)),
     r"Input y contains NaN"),
    ("predict-n-features", lambda E, y: _fitted(E, y).predict(X[:, :3]),
     r"X has 3 features, but \w+ is expecting 4 features"),
    ("partial_fit-n-features", lambda E, y: _fitted(E, y).partial_fit(X[:, :3], y),
     r"X has 3 features, but \w+ is expecting 4 features"),
    ("warm-start-n-features",
     lambda E, y: _fitted(E, y).set_params(warm_start=True).fit(X[:, :3], y),
     r"X has 3 features, but \w+ is expecting 4 features"),
    ("predict-before-fit", lambda E, y: _new(E).predict(X), r"not fitted yet"),
    ("score-before-fit", lambda E, y: _new(E).score(X, y), r"not fitted yet"),
    ("partial_fit-early-stopping", lambda E, y: _fitted(E, y, early_stopping=True)
     .partial_fit(X, y), r"partial_fit does not support early_stopping=True"),
    ("validation-set-too-small",
     lambda E, y: _new(E, early_stopping=True, validation_fraction=0.01).fit(X, y),
     r"validation set is too small"),
    ("zero-width-layer", lambda E, y: _new(E).set_params(hidden_layer_sizes=(5, 0)).fit(X, y),
     r"hidden_layer_sizes must be > 0"),
    ("negative-width-layer", lambda E, y: _new(E).set_params(hidden_layer_sizes=(-3,)).fit(X, y),
     r"hidden_layer_sizes must be > 0"),
    # Past scikit-learn's parameter validation; backend='auto' reads the sizes first.
    # scikit-learn's check `np.array(sizes) <= 0` fails in NumPy, whose wording
    # differs: "ufunc 'less_equal' did not contain a loop" (NumPy 2) or
    # "'<=' not supported between instances" (NumPy 1).
    ("text-width-layer", lambda E, y: _new(E).set_params(hidden_layer_sizes=("a",)).fit(X, y),
     r"'less_equal' did not contain a loop|'<=' not supported between instances"),
    ("none-width-layer", lambda E, y: _new(E).set_params(hidden_layer_sizes=(None,)).fit(X, y),
     r"not supported between"),
]

# Hyper-parameters scikit-learn's parameter validation rejects.
INVALID_PARAMS = [
    ("learning_rate_init", -0.1), ("learning_rate_init", 0.0), ("alpha", -1.0),
    ("momentum", 1.5), ("momentum", -0.1), ("batch_size", 0), ("batch_size", -5),
    ("activation", "softsign"), ("solver", "rmsprop"), ("max_iter", 0), ("tol", -1.0),
    ("learning_rate", "cyclic"), ("power_t", -1.0), ("beta_1", 1.0), ("beta_2", -0.5),
    ("epsilon", 0.0), ("validation_fraction", 1.0), ("n_iter_no_change", 0), ("max_fun", 0),
    ("hidden_layer_sizes", "wide"),
]

CLASSIFIER_CASES = [
    # (scikit-learn's MLPRegressor exposes partial_fit for lbfgs too: its
    # available_if check is never called.)
    ("partial_fit-lbfgs", lambda E, y: _new(E, solver="lbfgs").partial_fit(X, y),
     r"partial_fit"),
    ("partial_fit-first-call-no-classes", lambda E, y: _new(E).partial_fit(X, y),
     r"classes must be passed on the first call to partial_fit"),
    ("partial_fit-class-not-in-classes",
     lambda E, y: _new(E).partial_fit(X, y, classes=[0, 1]), r"`y` has classes not in"),
    ("partial_fit-new-class-after-fit", lambda E, y: _fitted(E, y).partial_fit(X, y + 1),
     r"`y` has classes not in `self.classes_`"),
    ("partial_fit-other-classes", lambda E, y: _fitted(E, y).partial_fit(X, y, classes=[0, 1, 2, 3]),
     r"is not the same as on last call to partial_fit"),
    ("warm-start-new-class", lambda E, y: _fitted(E, y).set_params(warm_start=True).fit(X, y + 1),
     r"warm_start can only be used where `y` has the same classes"),
]

PAIRS = {"classifier": (MLPClassifier, FastMLPClassifier, Y_CLS),
         "regressor": (MLPRegressor, FastMLPRegressor, Y_REG)}


def _raised(call, est_cls, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(Exception) as info:
            call(est_cls, y)
    return info.value


def _check_like_sklearn(call, kind, phrase):
    sk_cls, our_cls, y = PAIRS[kind]
    theirs = _raised(call, sk_cls, y)
    ours = _raised(call, our_cls, y)
    assert type(ours) is type(theirs), (ours, theirs)
    assert re.search(phrase, str(ours)), str(ours)


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("case_id, call, phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_like_sklearn(auto_path, kind, case_id, call, phrase):
    _check_like_sklearn(call, kind, phrase)


@pytest.mark.parametrize("case_id, call, phrase", CLASSIFIER_CASES,
                         ids=[c[0] for c in CLASSIFIER_CASES])
def test_bad_classes_raise_like_sklearn(auto_path, case_id, call, phrase):
    _check_like_sklearn(call, "classifier", phrase)


@pytest.mark.parametrize("kind", sorted(PAIRS))
@pytest.mark.parametrize("name, value", INVALID_PARAMS, ids=[f"{n}={v}" for n, v in INVALID_PARAMS])
def test_invalid_hyperparameter_raises_like_sklearn(kind, name, value):
    _check_like_sklearn(lambda E, y: _new(E).set_params(**{name: value}).fit(X, y), kind,
                        rf"The '{name}' parameter of \w+ must be")
    # Parameter validation also guards partial_fit.
    sk_cls, our_cls, y = PAIRS[kind]
    if name != "solver":
        with pytest.raises(InvalidParameterError, match=name):
            _new(our_cls, solver="sgd").set_params(**{name: value}).partial_fit(
                X, y, **({"classes": np.unique(y)} if kind == "classifier" else {}))


@pytest.mark.parametrize("est_cls", [FastMLPClassifier, FastMLPRegressor])
@pytest.mark.parametrize("name, value", [("backend", "cuda"), ("dtype", "float16"),
                                         ("dtype", np.int32), ("loss", "hinge")])
def test_invalid_fastmlp_parameters(est_cls, name, value):
    # fastmlp's own parameters are validated by the same machinery.
    with pytest.raises(InvalidParameterError, match=rf"The '{name}' parameter of {est_cls.__name__}"):
        _new(est_cls).set_params(**{name: value}).fit(X, Y_CLS)


# ---- a failed call leaves a fitted model exactly as it was --------------------------------


def _snapshot(est):
    return copy.deepcopy(vars(est))


def _assert_same(a, b, path="est"):
    """Recursive, bitwise comparison of two attribute trees."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.tobytes() == b.tobytes(), f"{path} changed"
    elif isinstance(a, np.random.RandomState):
        _assert_same(a.get_state(legacy=False), b.get_state(legacy=False), path)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {set(a) ^ set(b)} differ"
        for key in a:
            _assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{path}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        _assert_same(vars(a), vars(b), path)
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


FAILING_CALLS = {
    "fit-nan": lambda est, y: est.fit(X_NAN, y),
    "fit-inf": lambda est, y: est.fit(X_INF, y),
    "fit-y-nan": lambda est, y: est.fit(X, np.where(np.arange(60) == 4, np.nan, y)),
    # Fails only after input validation re-learned n_features_in_ (and classes_).
    "fit-other-shape-bad-weights": lambda est, y: est.fit(
        X[:50, :3], np.concatenate([y[:49], y[:1] + 7]), sample_weight=np.ones(3)),
    "fit-validation-set-too-small": lambda est, y: est.set_params(
        early_stopping=True, validation_fraction=0.01).fit(X, y),
    "fit-invalid-alpha": lambda est, y: est.set_params(alpha=-1.0).fit(X, y),
    "fit-zero-width-layer": lambda est, y: est.set_params(hidden_layer_sizes=(0,)).fit(X, y),
    "partial_fit-nan": lambda est, y: est.partial_fit(X_NAN, y),
    "partial_fit-n-features": lambda est, y: est.partial_fit(X[:, :3], y),
    "partial_fit-bad-weights": lambda est, y: est.partial_fit(X, y, sample_weight=np.ones(2)),
    "predict-n-features": lambda est, y: est.predict(X[:, :3]),
    "predict-nan": lambda est, y: est.predict(X_NAN),
    "score-n-features": lambda est, y: est.score(X[:, :3], y),
}
CLASSIFIER_FAILING_CALLS = {
    "partial_fit-new-class": lambda est, y: est.partial_fit(X, y + 1),
    "partial_fit-other-classes": lambda est, y: est.partial_fit(X, y, classes=[0, 1, 2, 5]),
    "fit-new-class": lambda est, y: est.fit(X, y + 1),
    "predict_proba-n-features": lambda est, y: est.predict_proba(X[:, :2]),
}


def _fit_model(est_cls, y, solver, warm_start, backend):
    est = _fitted(est_cls, y, solver=solver, backend=backend, batch_size=16)
    # A second call so that the loss curve and optimizer state are non-trivial.
    est.set_params(warm_start=True)
    _fitted_again(est, y)
    est.set_params(warm_start=warm_start)
    return est


def _fitted_again(est, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)


def _check_failure_leaves_model(est, y, call):
    before = _snapshot(est)
    predictions = est.predict(X)
    with pytest.raises(ValueError):  # every case here is a ValueError or a subclass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            call(est, y)
    # set_params in the call changed a hyper-parameter: that is the user's doing.
    est.set_params(**{k: before[k] for k in est.get_params()})
    _assert_same(_snapshot(est), before)
    np.testing.assert_array_equal(est.predict(X), predictions)


# lbfgs has no partial_fit and no early stopping: those calls do not fail for it.
LBFGS_CALLS = [c for c in sorted(FAILING_CALLS)
               if "partial_fit" not in c and c != "fit-validation-set-too-small"]


@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("solver, call_id",
                         [(s, c) for s in ("sgd", "adam") for c in sorted(FAILING_CALLS)]
                         + [("lbfgs", c) for c in LBFGS_CALLS])
def test_failed_call_leaves_fitted_classifier_unchanged(call_id, solver, warm_start):
    est = _fit_model(FastMLPClassifier, Y_CLS, solver, warm_start, "numba")
    _check_failure_leaves_model(est, Y_CLS, FAILING_CALLS[call_id])


# A cold fit (warm_start=False) may learn new classes: only a warm one fails.
CLASS_CALLS = [(c, w) for c in sorted(CLASSIFIER_FAILING_CALLS) for w in (False, True)
               if not (c == "fit-new-class" and not w)]


@pytest.mark.parametrize("call_id, warm_start", CLASS_CALLS)
def test_failed_class_check_leaves_fitted_classifier_unchanged(call_id, warm_start):
    est = _fit_model(FastMLPClassifier, Y_CLS, "sgd", warm_start, "numba")
    _check_failure_leaves_model(est, Y_CLS, CLASSIFIER_FAILING_CALLS[call_id])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("call_id", sorted(FAILING_CALLS))
def test_failed_call_leaves_fitted_regressor_unchanged(call_id, backend):
    est = _fit_model(FastMLPRegressor, Y_REG, "adam", True, backend)
    _check_failure_leaves_model(est, Y_REG, FAILING_CALLS[call_id])


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("method", ["warm_fit", "partial_fit"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_failure_during_training_restores_in_place_state(monkeypatch, method, solver):
    # loss_curve_ is appended to and the optimizer state updated in place while
    # training; an error after some epochs must not leave those half-updated.
    est = _fit_model(FastMLPClassifier, Y_CLS, solver, True, "numba")
    before = _snapshot(est)
    calls = {"n": 0}
    make_trainer = backends.make_trainer

    def failing_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        # Compiled calls of batches (run) and of whole epochs (run_epochs, after
        # the first epoch of a fit): the fourth fails, some epochs in.
        for name in ("run", "run_epochs"):
            setattr(trainer, name, _then_fail(getattr(trainer, name)))
        return trainer

    def _then_fail(run):
        def run_then_fail(*a, **k):
            calls["n"] += 1
            if calls["n"] > 3:
                raise _Boom("simulated failure in the middle of training")
            return run(*a, **k)
        return run_then_fail

    monkeypatch.setattr(backends, "make_trainer", failing_trainer)
    with pytest.raises(_Boom):
        if method == "partial_fit":
            for _ in range(10):
                est.partial_fit(X, Y_CLS)
                before = _snapshot(est)
        else:
            est.set_params(max_iter=50).fit(X, Y_CLS)
    est.set_params(max_iter=before["max_iter"])
    _assert_same(_snapshot(est), before)


def test_failed_first_partial_fit_leaves_estimator_unfitted():
    est = _new(FastMLPClassifier)
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(X_NAN, Y_CLS, classes=[0, 1, 2])
    with pytest.raises(NotFittedError):
        est.predict(X)
    # The failed call did not pin the classes: a corrected first call may use others.
    est.partial_fit(X, Y_CLS + 1, classes=[1, 2, 3, 4])
    np.testing.assert_array_equal(est.classes_, [1, 2, 3, 4])


# ---- NaN and inf found by the kernels while training -------------------------------------
# The numba backend skips scikit-learn's separate pass over X for sgd and adam:
# the kernels check each batch's rows whose first-layer products are not finite
# (layers._rows_nonfinite) and the estimator then reports the input with
# scikit-learn's message.

X_BIG = RNG.rand(400, 4)
Y_BIG = np.arange(400) % 3


@pytest.mark.parametrize("value, message", [(np.nan, "Input X contains NaN"),
                                            (np.inf, "Input X contains infinity"),
                                            (-np.inf, "Input X contains infinity")])
@pytest.mark.parametrize("row", [0, 217, 399])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_nonfinite_row_in_a_late_chunk_reported_and_model_unchanged(monkeypatch, value,
                                                                    message, row, solver):
    # One batch per compiled call: the bad row is met after earlier calls have
    # already updated the weights, which must all be undone.
    from fastmlp import config

    monkeypatch.setattr(config, "CHUNK_SECONDS", 1e-12)
    est = _fitted(FastMLPClassifier, Y_CLS, solver=solver, batch_size=16)
    X_bad = _with(X_BIG, row, row % 4, value)
    for call in (lambda: est.partial_fit(X_bad, Y_BIG),
                 lambda: est.set_params(warm_start=True).fit(X_bad, Y_BIG)):
        before = _snapshot(est)
        with pytest.raises(ValueError, match=message):
            call()
        est.set_params(warm_start=before["warm_start"])
        _assert_same(_snapshot(est), before)


@pytest.mark.parametrize("tiled", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("row", [0, 37, 63, 200, 255])
def test_nonfinite_row_found_by_two_part_kernel(monkeypatch, tiled, shuffle, row):
    # A first layer large enough to be split in two parts (each checks its own
    # units' products of all the batch's rows): rows in place (tiles) and
    # gathered (BLAS), in shuffled and in stored order.
    from fastmlp import config

    monkeypatch.setattr(config, "TILED_PRODUCTS", tiled)
    rng = np.random.RandomState(1)
    X2 = rng.rand(256, 300).astype(np.float32)
    y2 = np.arange(256) % 3
    est = FastMLPClassifier((128,), solver="sgd", batch_size=64, shuffle=shuffle,
                            random_state=0).partial_fit(X2, y2, classes=[0, 1, 2])
    before = _snapshot(est)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.partial_fit(_with(X2, row, 299 - row, np.nan), y2)
    _assert_same(_snapshot(est), before)


def test_nonfinite_in_sparse_rows_reported():
    import scipy.sparse as sp

    est = _fitted(FastMLPClassifier, Y_CLS, solver="sgd")
    X_sparse = sp.csr_matrix(_with(X, 41, 2, np.inf))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.partial_fit(X_sparse, Y_CLS)


def test_nonfinite_in_early_stopping_rows_reported(monkeypatch):
    # The validation rows are never trained on: they are checked on their own.
    from fastmlp import _mlp_base

    split = {}
    original = _mlp_base.train_test_split

    def recording_split(*args, **kwargs):
        train, val = original(*args, **kwargs)
        split["val"] = val
        return train, val

    monkeypatch.setattr(_mlp_base, "train_test_split", recording_split)
    _new(FastMLPClassifier, early_stopping=True, solver="sgd").fit(X, Y_CLS)
    est = _new(FastMLPClassifier, early_stopping=True, solver="sgd")
    val = split["val"]
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(_with(X, val[0], 1, np.nan), Y_CLS)
    np.testing.assert_array_equal(split["val"], val)  # the same split: the row was held out
    assert not hasattr(est, "coefs_")


def test_float64_values_beyond_float32_reported_as_too_large(auto_path):
    est = _new(FastMLPClassifier, dtype="float32", solver="sgd")
    with pytest.raises(ValueError, match=r"infinity or a value too large for dtype\('float32'\)"):
        est.fit(_with(X, 9, 3, 1e300), Y_CLS)


def test_rows_nonfinite_kernel_looks_at_exactly_its_rows():
    from fastmlp.kernels import layers

    dense = np.ones((9, 37), dtype=np.float32)
    order = np.array([4, 0, 8, 2, 6, 1, 3, 7, 5], dtype=np.int64)
    no_rows = np.empty(0, dtype=np.int64)
    empty, empty_ptr = np.empty(0, np.float32), np.empty(0, np.int64)
    for value in (np.nan, np.inf, -np.inf):
        for col in range(37):  # every position of the vector loop and its tail
            dense[6, col] = value
            # rows order: row 6 is at position 4 of the epoch
            assert layers._rows_nonfinite(dense, empty, empty_ptr, order, 3, 2)
            assert not layers._rows_nonfinite(dense, empty, empty_ptr, order, 0, 4)
            assert not layers._rows_nonfinite(dense, empty, empty_ptr, order, 5, 4)
            # stored order
            assert layers._rows_nonfinite(dense, empty, empty_ptr, no_rows, 6, 1)
            assert not layers._rows_nonfinite(dense, empty, empty_ptr, no_rows, 0, 6)
            dense[6, col] = np.finfo(np.float32).max  # large but finite
            assert not layers._rows_nonfinite(dense, empty, empty_ptr, order, 0, 9)
            dense[6, col] = 1.0
    import scipy.sparse as sp

    csr = sp.csr_matrix(np.where(np.arange(37) % 3 == 0, 1.0, 0.0) * np.ones((9, 1)))
    csr.data[csr.indptr[6] + 2] = np.nan
    blank = np.empty((0, 37))
    ptr = csr.indptr.astype(np.int64)
    assert layers._rows_nonfinite(blank, csr.data, ptr, order, 4, 1)
    assert not layers._rows_nonfinite(blank, csr.data, ptr, order, 0, 4)


@pytest.mark.parametrize("shuffle", [True, False])
def test_kernel_stops_at_the_batch_holding_the_bad_row(shuffle):
    # -inf in a row whose first-layer weights are all positive: every hidden
    # unit's logistic is exactly 0, so that batch's loss is finite and only the
    # next update would turn non-finite. The row check stops at the batch itself.
    from fastmlp.engine.network import Network
    from fastmlp.engine.optimizers import SGD

    network = Network([3, 4, 2], "logistic", "log_loss")
    coefs = [np.full((3, 4), 0.5), np.full((4, 2), 0.1)]
    params = network.pack(coefs, [np.zeros(4), np.zeros(2)], np.float64)
    Xk = RNG.rand(40, 3)
    Xk[22, 1] = -np.inf
    Y = np.eye(2)[np.arange(40) % 2]
    trainer = backends.make_trainer("numba", network, Xk, Y, None, 4, np.float64)
    rows = RNG.permutation(40) if shuffle else None
    position = int(np.flatnonzero(rows == 22)[0]) if shuffle else 22
    loss_sum, n_done = trainer.run(params, SGD(network.n_params, np.float64), rows, 0, 10, 0.0)
    assert n_done == position // 4 + 1
    assert np.isnan(loss_sum)


@pytest.mark.parametrize("tiled", [True, False])
def test_overflowing_products_of_finite_rows_are_not_bad_input(monkeypatch, tiled):
    # Finite rows whose first-layer products overflow to inf: the products alone
    # would point at the rows, the exact check of the rows clears them, and the
    # batches train on as scikit-learn's would (the logistic saturates at 1,
    # every loss stays finite). A learning rate of 0 keeps the weights fixed.
    from fastmlp import config
    from fastmlp.engine.network import Network
    from fastmlp.engine.optimizers import SGD

    monkeypatch.setattr(config, "TILED_PRODUCTS", tiled)
    network = Network([3, 4, 2], "logistic", "log_loss")
    coefs = [np.full((3, 4), 0.5), np.full((4, 2), 0.1)]
    params = network.pack(coefs, [np.zeros(4), np.zeros(2)], np.float32)
    Xk = RNG.uniform(0.8, 1.0, size=(40, 3)).astype(np.float32)
    Xk[5:35] *= np.float32(3e38)  # 0.5 * 3 * 2.4e38 > 3.4e38: the products overflow
    Y = np.eye(2)[np.arange(40) % 2]
    trainer = backends.make_trainer("numba", network, Xk, Y, None, 4, np.float32)
    with np.errstate(over="ignore"):
        assert np.isinf(Xk[5:35] @ coefs[0].astype(np.float32)).all()
    loss_sum, n_done = trainer.run(params, SGD(network.n_params, np.float32, 0.0),
                                   RNG.permutation(40), 0, 10, 0.0)
    assert n_done == 10
    assert np.isfinite(loss_sum)
