"""The rules the engine and the kernels share, each stated once (fastmlp.kernels.codes)."""

import subprocess
import sys

import numpy as np
import pytest

from fastmlp import config
from fastmlp.engine import numba_backend
from fastmlp.engine.network import Network
from fastmlp.engine.optimizers import SGD, Adam
from fastmlp.kernels import codes


@pytest.mark.parametrize(("activation", "loss", "expected"), [
    ("relu", "log_loss", (codes.RELU, codes.SOFTMAX, codes.LOG_LOSS)),
    ("logistic", "binary_log_loss", (codes.LOGISTIC, codes.LOGISTIC, codes.BINARY_LOG_LOSS)),
    ("tanh", "squared_error", (codes.TANH, codes.IDENTITY, codes.SQUARED_ERROR)),
    ("identity", "poisson", (codes.IDENTITY, codes.EXP, codes.POISSON)),
])
def test_network_codes_come_from_the_one_table(activation, loss, expected):
    assert Network([3, 4, 2], activation, loss).codes == expected


def test_optimizer_scalars_land_in_their_named_slots():
    sgd = SGD(5, np.float64, learning_rate_init=0.3, momentum=0.7, nesterov=True)
    hyper, velocity, unused, _ = sgd.kernel_state()
    assert hyper.shape == (len(codes.HYPER_FIELDS),)
    assert hyper[codes.HYPER_LEARNING_RATE] == 0.3
    assert hyper[codes.HYPER_LEARNING_RATE_INIT] == 0.3
    assert hyper[codes.HYPER_MOMENTUM] == 0.7
    assert hyper[codes.HYPER_NESTEROV] == 1.0
    assert velocity is sgd.velocity and unused.size == 0
    assert sgd.kind == codes.SGD
    adam = Adam(5, np.float32, learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    hyper = adam.kernel_state()[0]
    assert (hyper[codes.HYPER_BETA_1], hyper[codes.HYPER_BETA_2],
            hyper[codes.HYPER_EPSILON]) == (0.8, 0.99, 1e-7)
    assert hyper[codes.HYPER_MOMENTUM] == 0.0 and hyper[codes.HYPER_NESTEROV] == 0.0
    assert adam.kind == codes.ADAM


def test_unknown_optimizer_field_is_refused():
    with pytest.raises(ValueError, match="Unknown optimizer fields"):
        codes.hyper_array(learning_rat=0.1)


def test_codes_and_bundles_import_without_numba():
    code = ("import sys, fastmlp, fastmlp.kernels.codes, fastmlp.kernels.bundles, "
            "fastmlp.engine.backends; print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("n_zero", [0, 1, 48, 49, 50, 300, 784])
def test_public_zero_column_rule_is_the_kernels(n_zero):
    # plan_columns (the kernel's helper, plain Python when called from Python)
    # backs off exactly when the public rule says the batch is not worth skipping.
    from fastmlp.kernels import columns

    n = 784
    seen = np.zeros((2, n), dtype=np.uint32)
    seen[1, n_zero:] = 1
    state = np.zeros(columns.STATE_SIZE, dtype=np.int64)
    state[columns.SCANNED] = 1
    cols = np.empty(n, dtype=np.int64)
    runs = np.empty(n + 1, dtype=np.int64)
    columns.plan_columns(state, seen, n, cols, runs, config.ZERO_COLUMN_SHARE,
                         config.MAX_DENSE_BATCHES)
    assert state[columns.N_COLS] == n - n_zero
    skipped = numba_backend.zero_columns_skipped(n, n_zero)
    assert skipped == (state[columns.DENSE_LEFT] == 0)
    assert skipped == (n_zero >= n // config.ZERO_COLUMN_SHARE)


def test_one_rule_says_whether_work_may_be_threaded(monkeypatch):
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 100)
    monkeypatch.setattr(config, "MIN_THREADED_FLOPS", 1000)
    assert numba_backend.threadable([100, 5, 2])
    assert not numba_backend.threadable([99, 5, 2])
    assert numba_backend.threadable([100, 5, 2], flops_per_piece=1000)
    assert not numba_backend.threadable([100, 5, 2], flops_per_piece=999)


def test_thread_counts_divide_the_parts_when_asked(monkeypatch):
    monkeypatch.setattr(numba_backend.threads, "cores_for_fit", lambda: 3)
    assert numba_backend.threads_for(4) == 3
    assert numba_backend.threads_for(4, divisor=True) == 2
    assert numba_backend.threads_for(2) == 2
    assert numba_backend.threads_for(1, divisor=True) == 1
