"""L-BFGS on MNIST: a whole ``fit`` with ``solver="lbfgs"``, 784-128-10 sigmoid, float32.

Each L-BFGS iteration evaluates the loss and gradient over all training rows
(plus line-search evaluations), so this times the full-batch path: fastmlp's
kernels deal blocks of rows to the fit's threads, NumPy and scikit-learn
multiply whole matrices with all BLAS threads.
"""

import numpy as np
import pytest

from _benchkit import RoundTimer, epoch_flops, layer_units, make_classifier, quiet_fit, rate_info

# Smoke mode runs BLAS single-threaded (see conftest.smoke_single_thread).
pytestmark = pytest.mark.usefixtures("smoke_single_thread")

HIDDEN = (128,)
DTYPE = "float32"
#: L-BFGS iterations per fit: 20 in full mode, 15 in smoke mode (on fewer rows).
ITERATIONS, SMOKE_ITERATIONS = 20, 15
ROUNDS = 3


def make_lbfgs_model(lib, iterations):
    """The benchmarked classifier: exactly ``iterations`` L-BFGS iterations."""
    return make_classifier(lib, HIDDEN, 200, DTYPE, solver="lbfgs", max_iter=iterations,
                           tol=0.0)


@pytest.mark.benchmark(group="lbfgs-fit 784-128-10")
@pytest.mark.parametrize("lib", ["numba", "numpy", "sklearn"])
def test_lbfgs_fit(benchmark, lib, mnist, smoke, gemm):
    """A full L-BFGS fit per round; all libraries must reach the same loss."""
    X, y, X_test, y_test = mnist.arrays(DTYPE)
    iterations = SMOKE_ITERATIONS if smoke else ITERATIONS
    quiet_fit(make_lbfgs_model(lib, 1), X[:500], y[:500])  # compiles (or loads the cache)
    timer = RoundTimer()
    model = benchmark.pedantic(timer.wrap(quiet_fit),
                               setup=lambda: ((make_lbfgs_model(lib, iterations), X, y), {}),
                               rounds=1 if smoke else ROUNDS, iterations=1)
    assert model.n_iter_ == iterations
    units = layer_units(X.shape[1], HIDDEN, 10)
    accuracy = float(model.score(X_test, y_test))
    benchmark.extra_info.update(
        lib=lib, dtype=DTYPE, iterations=iterations, layers="-".join(map(str, units)),
        n_samples=int(X.shape[0]), final_loss=float(model.loss_), test_accuracy=accuracy,
        smoke=bool(smoke),
        # At least one loss-and-gradient evaluation per iteration (a lower bound on the work).
        **rate_info(iterations * epoch_flops(units, X.shape[0]), iterations * X.shape[0],
                    timer.best, gemm, DTYPE))
    assert np.isfinite(model.loss_)
    assert accuracy > (0.5 if smoke else 0.85)


def test_lbfgs_libraries_reach_the_same_loss(mnist, smoke):
    """Same start, same objective: the L-BFGS paths agree to float32 rounding (smoke mode)."""
    X, y, _, _ = mnist.arrays(DTYPE)
    losses = {lib: quiet_fit(make_lbfgs_model(lib, SMOKE_ITERATIONS), X, y).loss_
              for lib in ("numba", "numpy", "sklearn")}
    # float32 sums over thousands of rows in different orders: ~1e-6 relative per
    # evaluation, amplified by the line searches over 15 iterations.
    assert losses["numba"] == pytest.approx(losses["sklearn"], rel=1e-4)
    assert losses["numpy"] == pytest.approx(losses["sklearn"], rel=1e-4)
