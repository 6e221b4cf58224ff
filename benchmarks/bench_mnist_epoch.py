"""Seconds per training epoch on MNIST, 784-128-10 sigmoid, SGD with Nesterov momentum.

fastmlp's ``numba`` and ``numpy`` backends, scikit-learn's MLPClassifier and,
when installed, PyTorch CPU eager (float32) side by side for batch sizes 32,
128 and 512 in float32 and float64. See ``_benchkit.run_epoch_benchmark`` for
what is and is not timed.
"""

import numpy as np
import pytest

from _benchkit import (
    DTYPES,
    FLOOR_RTOL,
    epoch_params,
    make_classifier,
    quiet_partial_fit,
    require_torch,
    run_epoch_benchmark,
)

# Smoke mode runs BLAS single-threaded (see conftest.smoke_single_thread).
pytestmark = pytest.mark.usefixtures("smoke_single_thread")

HIDDEN = (128,)
#: Timed epochs per configuration in full mode (one epoch is ~0.2-2 s).
ROUNDS = 5


@pytest.mark.benchmark(group="mnist-epoch 784-128-10")
@pytest.mark.parametrize(("lib", "dtype", "batch_size"), epoch_params())
def test_epoch(benchmark, lib, dtype, batch_size, mnist, smoke, gemm, machine_check):
    """One epoch per round; the loss must fall and the model beat chance by far."""
    require_torch(lib)
    accuracy, losses = run_epoch_benchmark(
        benchmark, lib, dtype, batch_size, HIDDEN, mnist, smoke, gemm, ROUNDS, machine_check)
    if lib == "floor":  # the two first-layer products only: they must be right
        assert benchmark.extra_info["floor_error"] < FLOOR_RTOL[dtype]
        return
    first_loss, loss = losses
    # The timed epoch continues from the first: it must lower the loss.
    # (PyTorch's loss lacks the L2 term, ~1e-3 here, far below the decrease.)
    assert loss < first_loss
    # After two epochs (smoke: 8 to 32 batches each); 10 classes, chance is 0.1.
    assert accuracy > (0.5 if smoke else 0.85)


# Relative agreement of losses and weights between libraries after the same
# batches from the same start. float64: the orders of summation differ (BLAS
# blocking vs. the kernels), giving ~1e-16 per operation and ~1e-13 after the
# few hundred steps here; 1e-9 leaves a wide margin yet catches any math
# difference (a wrong term changes the loss at 1e-3 or more). float32: the
# same mechanism from u = 6e-8 gives ~1e-5 on the weights after a few hundred
# steps (each update moves the weights by ~1e-2 relative, rounding differences
# accumulate like a random walk); 1e-4 still catches any math difference.
RTOL = {"float32": 1e-4, "float64": 1e-9}


@pytest.mark.parametrize("hidden", [HIDDEN, (256, 128)], ids=["784-128-10", "784-256-128-10"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_libraries_agree(dtype, hidden, mnist):
    """numba, numpy and scikit-learn: same loss curve and weights for the same start and batches."""
    X, y, _, _ = mnist.arrays(dtype)
    X, y = X[:1024], y[:1024]
    results = {}
    for lib in ("numba", "numpy", "sklearn"):
        model = make_classifier(lib, hidden, 32, dtype)
        quiet_partial_fit(model, X, y, np.arange(10))
        quiet_partial_fit(model, X, y)
        assert model.coefs_[0].dtype == np.dtype(dtype)
        results[lib] = model
    ref = results["numpy"]
    for lib in ("numba", "sklearn"):
        model = results[lib]
        np.testing.assert_allclose(model.loss_curve_, ref.loss_curve_, rtol=RTOL[dtype])
        for got, want in zip(model.coefs_ + model.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_allclose(got, want, rtol=RTOL[dtype],
                                       atol=RTOL[dtype] * np.abs(want).max())


def test_torch_reference_matches_sklearn_math(mnist):
    """The PyTorch reference does scikit-learn's update: same weights after an unshuffled epoch.

    float64 and ``shuffle=False`` in scikit-learn, rows in order in PyTorch,
    started from scikit-learn's weights *and momentum* after one epoch, so this
    also checks the velocity conversion and the per-batch L2 scaling (2048 rows
    at batch size 96 end with a shorter batch).
    """
    require_torch("torch")
    from _torchref import TorchSGDNet

    X, y, _, _ = mnist.arrays("float64")
    X, y = X[:2048], y[:2048]
    model = make_classifier("sklearn", HIDDEN, 96, "float64", shuffle=False)
    quiet_partial_fit(model, X, y, np.arange(10))
    net = TorchSGDNet.from_sklearn(model, threads=1, seed=None)
    net.epoch(*TorchSGDNet.tensors(X, y))
    quiet_partial_fit(model, X, y)
    for got, want in zip(net.weights, model.coefs_):
        np.testing.assert_allclose(got.detach().numpy().T, want, rtol=1e-9, atol=1e-12)
    for got, want in zip(net.biases, model.intercepts_):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-9, atol=1e-12)
