"""Seconds per training epoch on MNIST for wide first layers: 784-H-10, H = 512 to 2048.

Same settings and timing as ``bench_mnist_epoch.py``, float32 at batch 128,
on the first 20,000 training rows (an epoch of the widest network does
about 16x the flops of 784-128-10). Here the products dominate the epoch, so
the ratio to the layer-1 GEMM floor and the share of the machine's large-GEMM
rate (``gemm_fraction``) say how close the kernels' products come to BLAS's
best.
"""

import pytest

from _benchkit import FLOOR_RTOL, epoch_params, run_epoch_benchmark

pytestmark = pytest.mark.usefixtures("smoke_single_thread")

WIDTHS = (512, 1024, 2048)
ROWS = 20_000
ROUNDS = 3


class _Rows:
    """The ``mnist`` fixture's arrays, the training rows cut to :data:`ROWS`."""

    def __init__(self, mnist):
        self.mnist = mnist

    def arrays(self, dtype):
        X, y, X_test, y_test = self.mnist.arrays(dtype)
        return X[:ROWS], y[:ROWS], X_test, y_test


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("lib", "dtype", "batch_size"),
                         epoch_params(libs=("numba", "idiomatic", "floor"), dtypes=("float32",),
                                      batch_sizes=(128,)))
def test_wide_epoch(benchmark, lib, dtype, batch_size, width, mnist, smoke, gemm, machine_check):
    """One epoch per round; the loss must fall, or the floor's products be right."""
    benchmark.group = f"mnist-epoch 784-{width}-10"
    accuracy, losses = run_epoch_benchmark(benchmark, lib, dtype, batch_size, (width,),
                                           _Rows(mnist), smoke, gemm, ROUNDS, machine_check)
    if lib == "floor":
        assert benchmark.extra_info["floor_error"] < FLOOR_RTOL[dtype]
        return
    first_loss, loss = losses
    assert loss < first_loss
