"""Gradients of both backends against central finite differences and each other.

Every hidden activation x every output/loss pair, on a network with two hidden
layers (units ``[4, 5, 3, K]``), with an L2 penalty and with sample weights.

Tolerance of the finite-difference checks (float64, ``h = 1e-6``): the central
difference has a truncation error ``h**2 / 6 * |f'''| ~ 1e-13`` and a rounding
error ``~ eps * |loss| / h ~ 2e-16 * O(1) / 1e-6 ~ 1e-10``, so analytic and
numerical gradients agree to ~1e-9 of the gradient's scale (measured: typically
1e-9, at most 3e-8 where saturated outputs make the loss large).
We assert ``rtol=1e-6`` element-wise plus ``atol=1e-6 * max|grad|`` (components
that are nearly zero carry only the absolute rounding error): a margin of ~1000x
typically and >30x in the worst case, while a genuine mistake (a wrong derivative, a
missing L2 term or sample weight, a factor of 2) is off by 1e-3 to 1 of the scale.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neural_network import MLPRegressor

from fastmlp import config
from fastmlp.engine import backends
from fastmlp.engine import reference
from fastmlp.engine.network import Network

HIDDEN_ACTIVATIONS = ["logistic", "tanh", "relu", "identity"]
# (loss, number of outputs). squared_error uses one output for the finite-difference
# check: see test_squared_error_gradient_is_n_outputs_times_reported_loss_gradient.
LOSS_CASES = [
    ("log_loss", 3),
    ("binary_log_loss", 1),
    ("binary_log_loss", 2),  # multilabel
    ("squared_error", 1),
    ("poisson", 2),
    ("sigmoid_squared_error", 2),
]
LOSS_IDS = [f"{loss}-{k}" for loss, k in LOSS_CASES]
N_ROWS = 8
ALPHA = 0.3
H = 1e-6
FD_RTOL = 1e-6
# Two float64 backends differ only in summation order: measured <= 4e-16 of the scale.
BACKEND_RTOL = 1e-12


def make_targets(loss, n_outputs, n_rows, rng):
    """Valid targets for ``loss``: one-hot, 0/1 indicators, positive counts, or reals."""
    if loss == "log_loss":
        return np.eye(n_outputs)[rng.integers(0, n_outputs, n_rows)]
    if loss in ("binary_log_loss", "sigmoid_squared_error"):
        return rng.integers(0, 2, (n_rows, n_outputs)).astype(np.float64)
    if loss == "poisson":
        return rng.uniform(0.5, 3.0, (n_rows, n_outputs))
    return rng.normal(size=(n_rows, n_outputs))


def hidden_pre_activations(network, params, X):
    """Pre-activations Z of every hidden layer (to keep relu away from its kink)."""
    coefs, intercepts = network.views(params)
    A, Zs = X, []
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        Z = A @ W + b
        Zs.append(Z)
        A = reference.ACTIVATION_FUNCTIONS[network.activation](Z)
    return Zs


def make_problem(activation, loss, n_outputs, seed, n_rows=N_ROWS, layers=(4, 5, 3)):
    """A tiny network, parameters and data with no relu pre-activation near 0."""
    rng = np.random.default_rng(seed)
    network = Network(list(layers) + [n_outputs], activation, loss)
    # Poisson's exp output: small weights keep exp(Z) moderate.
    scale = 0.25 if loss == "poisson" else 0.6
    for _ in range(1000):
        X = rng.normal(size=(n_rows, layers[0]))
        params = rng.normal(scale=scale, size=network.n_params)
        # A step of h=1e-6 moves a pre-activation by ~1e-5 at most; staying 1e-3
        # away from 0 means no finite difference straddles relu's kink.
        if all(np.abs(Z).min() > 1e-3 for Z in hidden_pre_activations(network, params, X)):
            break
    else:  # pragma: no cover - the loop finds a sample within a few tries
        raise RuntimeError("could not draw relu-safe parameters")
    Y = make_targets(loss, n_outputs, n_rows, rng)
    sample_weight = rng.uniform(0.5, 2.0, n_rows)
    return network, params, X, Y, sample_weight


def finite_difference_gradient(backend, network, params, X, Y, alpha, sample_weight):
    """Central differences of the backend's own loss, one parameter at a time."""
    objective = backends.FullBatchObjective(backend, network, X, Y, sample_weight, np.float64)
    grad = np.empty_like(params)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = H
        loss_plus = objective(params + step, alpha)[0]
        loss_minus = objective(params - step, alpha)[0]
        grad[i] = (loss_plus - loss_minus) / (2 * H)
    return grad


def assert_close_to_scale(actual, expected, rtol, scale_rtol=None):
    """Element-wise rtol plus an absolute tolerance relative to the largest component."""
    scale_rtol = rtol if scale_rtol is None else scale_rtol
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=scale_rtol * np.abs(expected).max())


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_gradient_matches_finite_differences(activation, loss, n_outputs, weighted):
    network, params, X, Y, sw = make_problem(activation, loss, n_outputs, seed=n_outputs)
    sw = sw if weighted else None
    results = {}
    for backend in backends.BACKENDS:
        loss_value, grad = backends.loss_and_gradient(backend, network, params, X, Y, ALPHA, sw)
        assert grad.shape == params.shape and grad.dtype == np.float64
        fd = finite_difference_gradient(backend, network, params, X, Y, ALPHA, sw)
        assert_close_to_scale(grad, fd, FD_RTOL)
        results[backend] = loss_value, grad
    (loss_nb, grad_nb), (loss_np, grad_np) = results["numba"], results["numpy"]
    assert loss_nb == pytest.approx(loss_np, rel=BACKEND_RTOL)
    assert_close_to_scale(grad_nb, grad_np, BACKEND_RTOL)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_squared_error_gradient_is_n_outputs_times_reported_loss_gradient(backend, weighted):
    # sklearn's quirk, followed on purpose: with K outputs the reported loss is
    # 0.5 * mean over outputs of the squared error, but the output delta A - Y is
    # the derivative of 0.5 * SUM over outputs. So the data part of the gradient
    # is K times the derivative of the reported data loss, while the L2 part
    # alpha * W / N is not scaled:  grad = K * d(data loss)/dw + alpha * W / N.
    n_outputs = 3
    network, params, X, Y, sw = make_problem("tanh", "squared_error", n_outputs, seed=7)
    sw = sw if weighted else None
    n_weight = N_ROWS if sw is None else sw.sum()
    loss_value, grad = backends.loss_and_gradient(backend, network, params, X, Y, ALPHA, sw)

    fd_data = finite_difference_gradient(backend, network, params, X, Y, 0.0, sw)
    l2_grad = np.zeros_like(params)
    l2_grad[: network.coef_offsets[-1]] = ALPHA * params[: network.coef_offsets[-1]] / n_weight
    assert_close_to_scale(grad, n_outputs * fd_data + l2_grad, FD_RTOL)
    # ... and so it is NOT the gradient of the reported loss.
    fd_full = finite_difference_gradient(backend, network, params, X, Y, ALPHA, sw)
    assert np.abs(grad - fd_full).max() > 0.1 * np.abs(grad).max()

    # The reported loss: 0.5 * (weighted) mean over rows and mean over outputs.
    coefs, intercepts = network.views(params)
    A = reference.forward(coefs, intercepts, X, "tanh", "identity")[-1]
    data = 0.5 * np.average(((Y - A) ** 2).mean(axis=1), weights=sw)
    l2 = 0.5 * ALPHA * sum((W**2).sum() for W in coefs) / n_weight
    assert loss_value == pytest.approx(data + l2, rel=1e-13)

    # Both are exactly what scikit-learn's own MLPRegressor._backprop returns.
    mlp = MLPRegressor(hidden_layer_sizes=(5, 3), activation="tanh", alpha=ALPHA)
    mlp.coefs_, mlp.intercepts_ = [W.copy() for W in coefs], [b.copy() for b in intercepts]
    mlp.n_layers_, mlp.out_activation_ = 4, "identity"
    activations = [X] + [None] * 3
    coef_grads = [np.empty_like(W) for W in coefs]
    intercept_grads = [np.empty_like(b) for b in intercepts]
    sk_loss, cg, ig = mlp._backprop(X, Y, sw, activations, [None] * 3, coef_grads,
                                    intercept_grads)
    assert loss_value == pytest.approx(sk_loss, rel=1e-13)
    assert_close_to_scale(grad, np.concatenate([g.ravel() for g in cg + ig]), BACKEND_RTOL)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_sparse_input_gives_dense_loss_and_gradient(backend, loss, n_outputs, weighted):
    network, params, X, Y, sw = make_problem("logistic", loss, n_outputs, seed=3)
    sw = sw if weighted else None
    X[np.random.default_rng(0).random(X.shape) < 0.5] = 0.0  # half the entries are zero
    X[2] = 0.0  # and one row is empty
    dense = backends.loss_and_gradient(backend, network, params, X, Y, ALPHA, sw)
    sparse = backends.loss_and_gradient(backend, network, params, sp.csr_matrix(X), Y,
                                        ALPHA, sw)
    assert sparse[0] == pytest.approx(dense[0], rel=BACKEND_RTOL)
    assert_close_to_scale(sparse[1], dense[1], BACKEND_RTOL)


@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_float32_matches_float64(backend, loss, n_outputs):
    # float32 rounds each operation to ~6e-8 (half its eps 1.2e-7); through three
    # layers of products of <= 5 terms, the loss and the gradient stay within
    # ~1e-6 of their scale (measured <= 2.5e-7). 1e-5 of the scale leaves margin
    # for other BLAS kernels while still catching float32-specific errors (a
    # wrong clipping eps, float64 constants truncated, a mixed-up buffer).
    network, params, X, Y, sw = make_problem("tanh", loss, n_outputs, seed=5)
    loss64, grad64 = backends.loss_and_gradient(backend, network, params, X, Y, ALPHA, sw)
    f32 = np.float32
    loss32, grad32 = backends.loss_and_gradient(backend, network, params.astype(f32),
                                                X.astype(f32), Y.astype(f32), ALPHA,
                                                sw.astype(f32))
    assert grad32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    assert np.abs(grad32 - grad64).max() <= 1e-5 * np.abs(grad64).max()


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("loss, n_outputs", [("log_loss", 3), ("poisson", 2)])
def test_numba_full_batch_blocks_accumulate_exactly(monkeypatch, loss, n_outputs, sparse):
    # The numba objective walks the rows FULL_BATCH_BLOCK_ROWS at a time; blocks of
    # 3 + 3 + 2 rows must give the one-block result (to summation order).
    network, params, X, Y, sw = make_problem("relu", loss, n_outputs, seed=11)
    X = sp.csr_matrix(X) if sparse else X
    whole = backends.loss_and_gradient("numba", network, params, X, Y, ALPHA, sw)
    monkeypatch.setattr(config, "FULL_BATCH_BLOCK_ROWS", 3)
    blocked = backends.loss_and_gradient("numba", network, params, X, Y, ALPHA, sw)
    assert blocked[0] == pytest.approx(whole[0], rel=BACKEND_RTOL)
    assert_close_to_scale(blocked[1], whole[1], BACKEND_RTOL)
    # Reused buffers: evaluating the same objective twice gives the same result.
    objective = backends.FullBatchObjective("numba", network, X, Y, sw, np.float64)
    first = objective(params, ALPHA)
    objective(params * 0.5, ALPHA)
    second = objective(params, ALPHA)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_gradient_is_computed_in_the_params_dtype(backend, sparse):
    # The compute dtype is the parameters' dtype whatever the dtype of X, Y and the
    # sample weights (documented: "same dtype and layout as params").
    network, params, X, Y, sw = make_problem("logistic", "log_loss", 3, seed=2)
    X = sp.csr_matrix(X) if sparse else X
    f32 = np.float32
    loss_mixed, grad_mixed = backends.loss_and_gradient(backend, network, params.astype(f32),
                                                        X, Y, ALPHA, sw)
    loss32, grad32 = backends.loss_and_gradient(backend, network, params.astype(f32),
                                                X.astype(f32), Y.astype(f32), ALPHA,
                                                sw.astype(f32))
    assert grad_mixed.dtype == np.float32
    assert loss_mixed == loss32
    np.testing.assert_array_equal(grad_mixed, grad32)
