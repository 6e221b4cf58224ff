"""Inference: ``predict_proba`` throughput on the MNIST test images (10000 rows in full mode).

Every library predicts with the *same* weights (a 784-128-10 net trained for
one epoch by fastmlp, cast to the benchmarked dtype), so the probabilities
must agree and only the time differs.
"""

import numpy as np
import pytest

from _benchkit import (
    DTYPES,
    RoundTimer,
    forward_flops,
    layer_units,
    make_classifier,
    quiet_partial_fit,
    rate_info,
    require_torch,
    torch_threads,
)

# Smoke mode runs BLAS single-threaded (see conftest.smoke_single_thread).
pytestmark = pytest.mark.usefixtures("smoke_single_thread")

HIDDEN = (128,)
#: Probabilities must match the float64 NumPy reference to this: float64 sums
#: of 784 products in another order differ by ~1e-15; float32 rounding of the
#: weights, inputs and 784-term sums gives ~1e-6 on a probability.
ATOL = {"float32": 1e-4, "float64": 1e-10}


@pytest.fixture(scope="module")
def trained_weights(mnist, smoke):
    """float64 weights of a 784-128-10 net after one epoch at batch 128 (smoke: two, fewer rows)."""
    X, y, _, _ = mnist.arrays("float64")
    model = make_classifier("numba", HIDDEN, 128, "float64")
    for _ in range(2 if smoke else 1):
        quiet_partial_fit(model, X, y, np.arange(10))
    return [c.copy() for c in model.coefs_], [b.copy() for b in model.intercepts_]


def model_with_weights(lib, dtype, weights, mnist, smoke=False):
    """A fitted model of ``lib`` whose weights are replaced by ``weights`` cast to ``dtype``."""
    coefs, intercepts = ([a.astype(dtype) for a in group] for group in weights)
    if lib == "torch":
        from _torchref import TorchSGDNet

        return TorchSGDNet(coefs, intercepts, None, 0.1, 0.9, 0.0, 128, torch_threads(smoke))
    X, y, _, _ = mnist.arrays(dtype)
    # One partial_fit on a few rows creates the fitted state (classes, layers);
    # the weights are then overwritten.
    model = quiet_partial_fit(make_classifier(lib, HIDDEN, 32, dtype), X[:200], y[:200],
                              np.arange(10))
    model.coefs_, model.intercepts_ = coefs, intercepts
    return model


@pytest.fixture(scope="module")
def reference_proba(trained_weights, mnist):
    """float64 probabilities of the NumPy backend: what every library must reproduce."""
    _, _, X_test, _ = mnist.arrays("float64")
    return model_with_weights("numpy", "float64", trained_weights, mnist).predict_proba(X_test)


@pytest.mark.benchmark(group="inference predict_proba 784-128-10")
@pytest.mark.parametrize(("lib", "dtype"), [
    pytest.param(lib, dtype, id=f"{lib}-{dtype}")
    for dtype in DTYPES for lib in ("numba", "numpy", "sklearn", "torch")
    if not (lib == "torch" and dtype != "float32")])
def test_predict_proba(benchmark, lib, dtype, trained_weights, reference_proba, mnist, smoke,
                       gemm):
    """Throughput of one ``predict_proba`` over all test rows; probabilities must match."""
    require_torch(lib)
    _, _, X_test, y_test = mnist.arrays(dtype)
    model = model_with_weights(lib, dtype, trained_weights, mnist, smoke)
    model.predict_proba(X_test[:100])  # compiles (or loads the cache), untimed
    timer = RoundTimer()
    proba = benchmark(timer.wrap(model.predict_proba), X_test)
    accuracy = float(np.mean(proba.argmax(axis=1) == y_test))
    max_diff = float(np.abs(proba - reference_proba).max())
    units = layer_units(X_test.shape[1], HIDDEN, 10)
    benchmark.extra_info.update(
        lib=lib, dtype=dtype, n_samples=int(X_test.shape[0]), layers="-".join(map(str, units)),
        test_accuracy=accuracy, max_abs_diff_vs_reference=max_diff, smoke=bool(smoke),
        **rate_info(forward_flops(units, X_test.shape[0]), X_test.shape[0], timer.best,
                    gemm, dtype))
    if lib == "torch":
        benchmark.extra_info["torch_threads"] = torch_threads(smoke)
    assert proba.shape == (X_test.shape[0], 10)
    assert max_diff < ATOL[dtype]
    assert accuracy > 0.5
