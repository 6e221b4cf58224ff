"""Deployment without fastmlp: to_sklearn, and ONNX through skl2onnx and onnxruntime."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastmlp import FastMLPClassifier, FastMLPRegressor
from fastmlp.export import to_sklearn


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:500] / 16, y[:500]


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _targets(X, y):
    return {
        "multiclass": y,
        "binary": y % 2,
        "strings": np.array(["even", "odd"])[y % 2],
        "multilabel": np.stack([y % 2, y > 4], axis=1).astype(int),
        "multilabel3": np.stack([y % 2, y > 4, y > 7], axis=1).astype(int),
    }


CLASSIFIERS = [dict(solver="adam"), dict(solver="sgd", activation="logistic",
                                         learning_rate_init=0.1),
               dict(solver="lbfgs", activation="tanh")]
REGRESSORS = [("squared_error", 1), ("squared_error", 2), ("poisson", 1)]


def _regression_target(X, loss, n_outputs):
    T = np.stack([X[:, 20] + 0.5 * X[:, 43], X[:, 10] - X[:, 50]], axis=1)[:, :n_outputs]
    T = np.exp(T) if loss == "poisson" else T
    return T.ravel() if n_outputs == 1 else T


# ---- to_sklearn -------------------------------------------------------------------

@pytest.mark.parametrize("params", CLASSIFIERS)
@pytest.mark.parametrize("kind", ["multiclass", "binary", "strings", "multilabel"])
def test_to_sklearn_classifier_predicts_the_same(digits, params, kind):
    X, y = digits
    target = _targets(X, y)[kind]
    clf = _fit(FastMLPClassifier((16,), max_iter=20, random_state=0, **params), X, target)
    mlp = to_sklearn(clf)
    assert type(mlp) is MLPClassifier
    np.testing.assert_array_equal(mlp.predict(X), clf.predict(X))
    np.testing.assert_allclose(mlp.predict_proba(X), clf.predict_proba(X), rtol=1e-10,
                               atol=1e-14)
    assert mlp.get_params()["solver"] == params["solver"]
    assert mlp.coefs_[0] is not clf.coefs_[0]


@pytest.mark.parametrize("loss, n_outputs", REGRESSORS)
def test_to_sklearn_regressor_predicts_the_same(digits, loss, n_outputs):
    X, _ = digits
    T = _regression_target(X, loss, n_outputs)
    reg = _fit(FastMLPRegressor(loss, hidden_layer_sizes=(16,), max_iter=30, random_state=0,
                                learning_rate_init=0.01), X, T)
    mlp = to_sklearn(reg)
    assert type(mlp) is MLPRegressor and mlp.loss == loss
    np.testing.assert_allclose(mlp.predict(X), reg.predict(X), rtol=1e-10, atol=1e-14)


def test_to_sklearn_result_needs_no_fastmlp_and_trains_on(digits):
    X, y = digits
    clf = _fit(FastMLPClassifier((16,), solver="sgd", max_iter=5, random_state=0),
               X, y)
    mlp = to_sklearn(clf)
    blob = pickle.dumps(mlp)
    assert b"fastmlp" not in blob
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))
    restored.partial_fit(X, y)  # scikit-learn trains it on, from the same weights
    assert restored.t_ == clf.t_ + X.shape[0]
    assert len(restored.loss_curve_) == len(clf.loss_curve_) + 1
    assert not np.array_equal(restored.coefs_[0], clf.coefs_[0])


def test_to_sklearn_refusals(digits):
    X, y = digits
    with pytest.raises(Exception, match="not fitted"):
        to_sklearn(FastMLPClassifier())
    clf = _fit(FastMLPClassifier((8,), loss="squared_error", max_iter=3), X, y)
    with pytest.raises(ValueError, match="loss='squared_error' on more than two classes"):
        to_sklearn(clf)


# ---- ONNX ---------------------------------------------------------------------------

def _onnx_outputs(model, X):
    skl2onnx = pytest.importorskip("skl2onnx", reason="ONNX export needs skl2onnx "
                                   "(extra 'onnx')")
    ort = pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime "
                              "(extra 'onnx')")
    import fastmlp.export  # noqa: F401  (registers the converters)

    X32 = X.astype(np.float32)
    onx = skl2onnx.to_onnx(model, X32[:1], options={"zipmap": False}
                           if hasattr(model, "predict_proba") else None)
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X32})


@pytest.mark.parametrize("params", CLASSIFIERS)
@pytest.mark.parametrize("kind", ["multiclass", "binary", "strings", "multilabel",
                                  "multilabel3"])
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_onnx_classifier_agrees(digits, params, kind, in_pipeline):
    X, y = digits
    target = _targets(X, y)[kind]
    clf = FastMLPClassifier((16,), max_iter=20, random_state=0, **params)
    model = _fit(make_pipeline(StandardScaler(), clf) if in_pipeline else clf, X, target)
    labels, proba = _onnx_outputs(model, X)
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)  # float32 graph
    expected = model.predict(X)
    if kind == "strings":
        expected = expected.astype(object)
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize("loss, n_outputs", REGRESSORS)
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_onnx_regressor_agrees(digits, loss, n_outputs, in_pipeline):
    X, _ = digits
    T = _regression_target(X, loss, n_outputs)
    reg = FastMLPRegressor(loss, hidden_layer_sizes=(16,), max_iter=30, random_state=0,
                           learning_rate_init=0.01)
    model = _fit(make_pipeline(StandardScaler(), reg) if in_pipeline else reg, X, T)
    (pred,) = _onnx_outputs(model, X)
    assert pred.shape == (X.shape[0], n_outputs)
    expected = model.predict(X).reshape(pred.shape)
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-5)


def test_onnx_refuses_what_it_cannot_reproduce(digits):
    X, y = digits
    clf = _fit(FastMLPClassifier((8,), loss="squared_error", max_iter=3), X, y)
    with pytest.raises(ValueError, match="loss='squared_error' on more than two classes"):
        _onnx_outputs(clf, X)


def _fresh_process(code):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_fastmlp_leaves_skl2onnx_alone():
    assert _fresh_process("import sys, fastmlp; print('skl2onnx' in sys.modules)") == "False"


def test_fastmlp_imported_after_skl2onnx_registers_itself():
    pytest.importorskip("skl2onnx", reason="ONNX export needs skl2onnx (extra 'onnx')")
    code = ("import skl2onnx, numpy as np, fastmlp\n"
            "X = np.random.RandomState(0).rand(40, 3).astype(np.float32)\n"
            "reg = fastmlp.FastMLPRegressor(hidden_layer_sizes=(4,), solver='lbfgs', "
            "backend='numpy')"
            ".fit(X, X[:, 0])\n"
            "print(len(skl2onnx.to_onnx(reg, X[:1]).graph.node) > 0)")
    assert _fresh_process(code) == "True"
