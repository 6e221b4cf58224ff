"""The numba and numpy backends compute the same training, prediction and losses.

Both start from the same parameters and optimizer, see the same rows in the same
order, and must end with the same parameters, optimizer state and loss sums.

Tolerances (relative to the largest parameter): in float64 the two backends differ
only in summation order inside BLAS and the loops, ~1e-16 per operation, and a few
epochs on a tiny network leave them ~1e-16 apart (measured <= 7e-16, Adam included);
we assert 1e-10, far below any real difference (a skipped batch or a wrong step moves
parameters by ~1e-2). float32 bounds are stated where they are used.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neural_network import MLPClassifier

from fastmlp import config
from fastmlp.engine import backends
from fastmlp.engine.network import Network
from fastmlp.engine.optimizers import SGD, Adam

HIDDEN_ACTIVATIONS = ["logistic", "tanh", "relu", "identity"]
LOSS_CASES = [
    ("log_loss", 3),
    ("binary_log_loss", 1),
    ("binary_log_loss", 2),
    ("squared_error", 2),
    ("poisson", 2),
    ("sigmoid_squared_error", 2),
]
LOSS_IDS = [f"{loss}-{k}" for loss, k in LOSS_CASES]
OPTIMIZERS = {
    "sgd-nesterov": lambda n, dtype: SGD(n, dtype, 0.1, "constant", 0.9, True),
    "sgd-momentum": lambda n, dtype: SGD(n, dtype, 0.1, "constant", 0.9, False),
    "sgd-no-momentum": lambda n, dtype: SGD(n, dtype, 0.1, "constant", 0.0, False),
    "sgd-invscaling": lambda n, dtype: SGD(n, dtype, 0.1, "invscaling", 0.5, True, power_t=0.5),
    "adam": lambda n, dtype: Adam(n, dtype, 0.01),
}
N_ROWS = 10
BATCH_SIZE = 4  # 10 rows: batches of 4, 4 and a last partial batch of 2
ALPHA = 1e-2
EPOCHS = 3
F64_RTOL = 1e-10


def make_problem(activation, loss, n_outputs, seed=0, n_rows=N_ROWS, sparse=False):
    """A ``[4, 5, 3, K]`` network, initial parameters and a small data set."""
    rng = np.random.default_rng(seed)
    network = Network([4, 5, 3, n_outputs], activation, loss)
    params = rng.normal(scale=0.25 if loss == "poisson" else 0.5, size=network.n_params)
    X = rng.normal(size=(n_rows, 4))
    if loss == "log_loss":
        Y = np.eye(n_outputs)[rng.integers(0, n_outputs, n_rows)]
    elif loss in ("binary_log_loss", "sigmoid_squared_error"):
        Y = rng.integers(0, 2, (n_rows, n_outputs)).astype(np.float64)
    elif loss == "poisson":
        Y = rng.uniform(0.5, 3.0, (n_rows, n_outputs))
    else:
        Y = rng.normal(size=(n_rows, n_outputs))
    sample_weight = rng.uniform(0.5, 2.0, n_rows)
    if sparse:
        X[rng.random(X.shape) < 0.5] = 0.0
        X[1] = 0.0  # an empty row
        X = sp.csr_matrix(X)
    return network, params, X, Y, sample_weight


def optimizer_state(optimizer):
    """Copies of everything an optimizer carries between steps."""
    if isinstance(optimizer, SGD):
        return [optimizer.velocity.copy()], optimizer.learning_rate
    return [optimizer.ms.copy(), optimizer.vs.copy()], (optimizer.t, optimizer.learning_rate)


def train(backend, network, params0, X, Y, sample_weight, optimizer_name, *, shuffle,
          dtype=np.float64, batch_size=BATCH_SIZE, epochs=EPOCHS):
    """A few epochs the way the estimators run them; returns params, optimizer, loss sums."""
    trainer = backends.make_trainer(backend, network, X.astype(dtype), Y.astype(dtype),
                                    None if sample_weight is None else sample_weight.astype(dtype),
                                    batch_size, dtype)
    params = params0.astype(dtype)
    optimizer = OPTIMIZERS[optimizer_name](network.n_params, dtype)
    rng = np.random.default_rng(42)  # same shuffles for both backends
    n_batches = -(-N_ROWS // batch_size)
    loss_sums, seen = [], 0
    for _ in range(epochs):
        rows = rng.permutation(N_ROWS) if shuffle else None
        loss_sum, n_done = trainer.run(params, optimizer, rows, 0, n_batches, ALPHA)
        assert n_done == n_batches
        loss_sums.append(loss_sum)
        seen += N_ROWS
        optimizer.iteration_ends(seen)
    return params, optimizer, np.array(loss_sums)


def relative_error(actual, expected):
    """Largest absolute difference over the largest magnitude of ``expected``."""
    return np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
def test_backends_train_identically_float64(optimizer_name, activation, loss, n_outputs, sparse):
    network, params0, X, Y, sw = make_problem(activation, loss, n_outputs, sparse=sparse)
    for sample_weight in (None, sw):
        for shuffle in (False, True):
            case = f"weighted={sample_weight is not None} shuffle={shuffle}"
            p_nb, opt_nb, loss_nb = train("numba", network, params0, X, Y, sample_weight,
                                          optimizer_name, shuffle=shuffle)
            p_np, opt_np, loss_np = train("numpy", network, params0, X, Y, sample_weight,
                                          optimizer_name, shuffle=shuffle)
            assert relative_error(p_nb, p_np) < F64_RTOL, case
            # Training moved the parameters: the comparison is not of two no-ops.
            assert relative_error(p_np, params0) > 1e-4, case
            np.testing.assert_allclose(loss_nb, loss_np, rtol=F64_RTOL, err_msg=case)
            state_nb, scalars_nb = optimizer_state(opt_nb)
            state_np, scalars_np = optimizer_state(opt_np)
            assert scalars_nb == pytest.approx(scalars_np, rel=1e-15), case
            for s_nb, s_np in zip(state_nb, state_np):
                assert np.abs(s_nb - s_np).max() <= F64_RTOL * np.abs(s_np).max(), case


# float32: each operation rounds to ~6e-8. SGD's parameters stay within ~1e-7 of each
# other (measured <= 2.7e-7 over all activations and losses, dense or sparse); we
# allow 2e-6. Adam divides m by sqrt(v) + 1e-8: where v is tiny, the rounding of m and
# v is amplified in the step, and the backends drift ~1e-6 apart (measured <= 1.1e-6
# here, up to 3e-6 on other data); we allow 3e-5. The loss sums (logs and exps of float32
# activations) agree to <= 2.2e-6; we allow 1e-5. All bounds are far below the ~1e-2
# a real mistake (a skipped or repeated batch, a wrong step) produces.
F32_RTOL = {"adam": 3e-5}
F32_RTOL_SGD = 2e-6


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
def test_backends_train_identically_float32(optimizer_name, activation, loss, n_outputs, sparse):
    network, params0, X, Y, sw = make_problem(activation, loss, n_outputs, sparse=sparse)
    p_nb, _, loss_nb = train("numba", network, params0, X, Y, sw, optimizer_name,
                             shuffle=True, dtype=np.float32)
    p_np, _, loss_np = train("numpy", network, params0, X, Y, sw, optimizer_name,
                             shuffle=True, dtype=np.float32)
    assert p_nb.dtype == p_np.dtype == np.float32
    assert relative_error(p_nb, p_np) < F32_RTOL.get(optimizer_name, F32_RTOL_SGD)
    np.testing.assert_allclose(loss_nb, loss_np, rtol=1e-5)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("batch_size", [1, 3, N_ROWS], ids=["bs1", "bs3-partial", "bs-n"])
@pytest.mark.parametrize("optimizer_name", ["sgd-nesterov", "adam"])
def test_batch_sizes(optimizer_name, batch_size, weighted, sparse):
    network, params0, X, Y, sw = make_problem("relu", "log_loss", 3, sparse=sparse)
    sw = sw if weighted else None
    results = [train(backend, network, params0, X, Y, sw, optimizer_name, shuffle=True,
                     batch_size=batch_size) for backend in backends.BACKENDS]
    (p_nb, _, loss_nb), (p_np, _, loss_np) = results
    assert relative_error(p_nb, p_np) < F64_RTOL
    np.testing.assert_allclose(loss_nb, loss_np, rtol=F64_RTOL)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("optimizer_name", ["sgd-momentum", "adam"])
def test_rows_may_be_a_subset_of_x(optimizer_name, sparse):
    # Early stopping trains on a subset of X's rows: ``rows`` indexes X, and only the
    # rows it lists (in its order) are used, with their own sample weights.
    network, params0, X, Y, sw = make_problem("tanh", "poisson", 2, sparse=sparse)
    rows = np.array([7, 2, 9, 0, 4, 5, 1], dtype=np.int64)
    results = []
    for backend in backends.BACKENDS:
        trainer = backends.make_trainer(backend, network, X, Y, sw, 3, np.float64)
        params = params0.copy()
        optimizer = OPTIMIZERS[optimizer_name](network.n_params, np.float64)
        loss_sum, n_done = trainer.run(params, optimizer, rows, 0, 3, ALPHA)
        assert n_done == 3
        results.append((params, loss_sum))
    # The same as training on the subset itself, in that order, with rows=None.
    trainer = backends.make_trainer("numba", network, X[rows], Y[rows], sw[rows], 3, np.float64)
    params = params0.copy()
    loss_sum, _ = trainer.run(params, OPTIMIZERS[optimizer_name](network.n_params, np.float64),
                              None, 0, 3, ALPHA)
    results.append((params, loss_sum))
    for p, loss in results[1:]:
        assert relative_error(p, results[0][0]) < F64_RTOL
        assert loss == pytest.approx(results[0][1], rel=F64_RTOL)


@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_full_batch_sgd_step_is_the_loss_gradient_step(backend):
    # batch_size == n, rows=None, no momentum: one batch is one step of -lr * gradient
    # of the full-batch objective (independent code path: loss_and_gradient).
    network, params0, X, Y, sw = make_problem("tanh", "binary_log_loss", 2)
    loss, grad = backends.loss_and_gradient(backend, network, params0, X, Y, ALPHA, sw)
    trainer = backends.make_trainer(backend, network, X, Y, sw, N_ROWS, np.float64)
    params = params0.copy()
    loss_sum, n_done = trainer.run(params, SGD(network.n_params, np.float64, 0.1, "constant",
                                               0.0, False), None, 0, 1, ALPHA)
    assert n_done == 1
    assert loss_sum == pytest.approx(loss * N_ROWS, rel=1e-13)
    np.testing.assert_allclose(params, params0 - 0.1 * grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("optimizer_name", ["sgd-nesterov", "adam"])
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_run_in_chunks_is_bitwise_one_call(backend, optimizer_name, sparse):
    network, params0, X, Y, sw = make_problem("logistic", "log_loss", 3, n_rows=N_ROWS,
                                              sparse=sparse)
    rows = np.random.default_rng(3).permutation(N_ROWS)
    batch_size, n_batches = 2, 5
    outcomes = []
    for bounds in ([0, n_batches], [0, 1, 3, 4, n_batches]):
        trainer = backends.make_trainer(backend, network, X, Y, sw, batch_size, np.float64)
        params = params0.copy()
        optimizer = OPTIMIZERS[optimizer_name](network.n_params, np.float64)
        loss_sum, n_done = 0.0, 0
        for start, stop in zip(bounds[:-1], bounds[1:]):
            # The running sum is carried into each call, as the estimators do.
            loss_sum, chunk_done = trainer.run(params, optimizer, rows, start, stop, ALPHA,
                                               loss_sum)
            n_done += chunk_done
        outcomes.append((params, optimizer_state(optimizer), loss_sum, n_done))
    (p1, (s1, k1), l1, n1), (p2, (s2, k2), l2, n2) = outcomes
    np.testing.assert_array_equal(p1, p2)
    for a, b in zip(s1, s2):
        np.testing.assert_array_equal(a, b)
    assert k1 == k2 and n1 == n2 == n_batches
    assert l1 == l2  # summed in batch order whatever the chunking


def sklearn_forward(network, params, X):
    """scikit-learn's own forward pass on the same weights."""
    coefs, intercepts = network.views(params)
    mlp = MLPClassifier(activation=network.activation)
    mlp.coefs_, mlp.intercepts_ = list(coefs), list(intercepts)
    mlp.n_layers_ = len(network.layer_units)
    mlp.out_activation_ = network.out_activation
    return mlp._forward_pass_fast(X, check_input=False)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_predict_agrees_between_backends_and_with_sklearn(monkeypatch, activation, loss,
                                                          n_outputs, sparse):
    monkeypatch.setattr(config, "PREDICT_CHUNK_ROWS", 3)  # 10 rows: blocks of 3, 3, 3, 1
    network, params, X, _, _ = make_problem(activation, loss, n_outputs, sparse=sparse)
    expected = sklearn_forward(network, params, X)
    assert expected.shape == (N_ROWS, n_outputs)
    for backend in backends.BACKENDS:
        out = backends.predict(backend, network, params, X)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15, err_msg=backend)


@pytest.mark.parametrize("loss, n_outputs", LOSS_CASES, ids=LOSS_IDS)
def test_predict_float32(loss, n_outputs):
    network, params, X, _, _ = make_problem("tanh", loss, n_outputs)
    expected = sklearn_forward(network, params, X)
    for backend in backends.BACKENDS:
        out = backends.predict(backend, network, params.astype(np.float32), X)
        assert out.dtype == np.float32
        # float32 rounding through three small layers: ~1e-7 of the output scale.
        assert relative_error(out, expected) < 1e-5, backend


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_trainer_does_not_copy_x_and_reuses_its_workspace(dtype):
    network, params0, X, Y, sw = make_problem("relu", "log_loss", 3, n_rows=N_ROWS)
    X = np.ascontiguousarray(X, dtype=dtype)
    trainer = backends.make_trainer("numba", network, X, Y, sw, BATCH_SIZE, dtype)
    assert np.shares_memory(trainer.X[0], X)
    buffers = ("xb", "acts", "deltas", "gbufs", "first", "iscrs", "fscrs", "partials")
    before = {name: (id(getattr(trainer.work, name)), getattr(trainer.work, name).size)
              for name in buffers}
    before["sync"] = id(trainer.sync), trainer.sync.size
    params = params0.astype(dtype)
    for optimizer in (SGD(network.n_params, dtype), Adam(network.n_params, dtype)):
        for rows in (None, np.random.default_rng(0).permutation(N_ROWS)):
            trainer.run(params, optimizer, rows, 0, 3, ALPHA)
            trainer.run(params, optimizer, rows, 1, 2, ALPHA)
    after = {name: (id(getattr(trainer.work, name)), getattr(trainer.work, name).size)
             for name in buffers}
    after["sync"] = id(trainer.sync), trainer.sync.size
    assert after == before
    assert np.shares_memory(trainer.X[0], X)
    assert np.isfinite(params).all()


@pytest.mark.parametrize("activation", ["logistic", "tanh", "relu"])
@pytest.mark.parametrize("loss, n_outputs", [("log_loss", 3), ("binary_log_loss", 2),
                                             ("sigmoid_squared_error", 2)])
def test_huge_pre_activations_stay_finite(activation, loss, n_outputs):
    network, params, X, Y, _ = make_problem(activation, loss, n_outputs)
    X = X * 1e4  # pre-activations of order 1e4: exp() overflows if not guarded
    for backend in backends.BACKENDS:
        with np.errstate(over="ignore"):  # an overflow to inf inside exp is allowed...
            out = backends.predict(backend, network, params, X)
            loss_value, grad = backends.loss_and_gradient(backend, network, params, X, Y, ALPHA)
        assert np.isfinite(out).all(), backend  # ...a NaN or inf in the result is not
        assert ((out >= 0) & (out <= 1)).all(), backend
        if loss == "log_loss":
            np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
        assert np.isfinite(loss_value) and np.isfinite(grad).all(), backend
