"""Subnormal floats are flushed to zero inside the kernels, and only there.

Why: see :mod:`fastmlp.kernels.fpenv` (Adam drives the weights of always-zero
inputs through the subnormal range, where x86 arithmetic is ~100x slower).
"""

import platform

import numpy as np
import pytest

from fastmlp import FastMLPClassifier
from fastmlp.engine import backends
from fastmlp.kernels.fpenv import subnormals_flushed
from fastmlp.engine.network import Network

TINY = np.float32(1e-20)  # TINY * TINY = 1e-40 is subnormal in float32
x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                         reason="flush-to-zero is set only on x86 (MXCSR)")


def _caller_keeps_subnormals():
    return float(np.multiply(TINY, TINY)) > 0.0


@x86
def test_block_flushes_and_restores_the_callers_mode():
    assert _caller_keeps_subnormals()
    with subnormals_flushed():
        assert float(np.multiply(TINY, TINY)) == 0.0
    assert _caller_keeps_subnormals()
    with pytest.raises(RuntimeError), subnormals_flushed():
        raise RuntimeError("boom")
    assert _caller_keeps_subnormals()


@x86
def test_kernels_treat_subnormal_weights_as_zero():
    network = Network([6, 4, 3], "logistic", "log_loss")
    rng = np.random.default_rng(0)
    params = rng.normal(size=network.n_params).astype(np.float32)
    X = rng.normal(size=(5, 6)).astype(np.float32)
    subnormal = params.copy()
    zero = params.copy()
    subnormal[:12] = np.float32(1e-39) * np.sign(params[:12])  # 3 input rows of W1
    zero[:12] = 0.0
    out = backends.predict("numba", network, subnormal, X)
    np.testing.assert_array_equal(out, backends.predict("numba", network, zero, X))
    assert _caller_keeps_subnormals()


@x86
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 7 epochs
def test_training_flushes_the_weights_that_decay_through_the_subnormal_range():
    from sklearn.neural_network import MLPClassifier

    # Inputs that are always zero get only the L2 gradient: with plain SGD
    # their weights halve every step (lr * alpha / batch = 0.5), so after 140
    # steps (7 epochs of 20 batches) they would be ~2**-143, below float32's
    # smallest normal number (2**-126).
    rng = np.random.default_rng(0)
    X = rng.random((400, 30), dtype=np.float32)
    X[:, :10] = 0.0
    y = rng.integers(0, 3, 400)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, learning_rate_init=0.5,
                  alpha=20.0, batch_size=20, max_iter=7, tol=0, n_iter_no_change=100,
                  random_state=0)
    theirs = np.abs(MLPClassifier(**params).fit(X, y).coefs_[0][:10])
    ours = np.abs(FastMLPClassifier(**params).fit(X, y).coefs_[0][:10])
    tiny = np.finfo(np.float32).tiny
    assert ((theirs > 0) & (theirs < tiny)).any()  # scikit-learn keeps subnormals
    assert ((ours > 0) & (ours < tiny)).sum() == 0
    # Ours stop at the bottom of the normal range: the step w / 2 would be
    # subnormal and is flushed to zero, so w no longer changes.
    assert (ours[theirs < tiny] < 2 * tiny).all()
    assert _caller_keeps_subnormals()
