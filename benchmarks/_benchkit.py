"""Shared pieces of the benchmark suites: models, FLOP counts, timing, extra_info.

Every suite trains the same network the same way in every library:
sigmoid hidden layers, softmax output with log loss, SGD with Nesterov
momentum 0.9, learning rate 0.1, L2 penalty ``alpha=1e-4`` (scikit-learn's
scaling), shuffled mini-batches. fastmlp and scikit-learn get the same
``random_state`` and therefore the same starting weights and shuffles; the
PyTorch reference is started from scikit-learn's weights and momentum.
"""

import copy
import os
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from _machine import RoundTimer, gemm_rate, pedantic  # noqa: F401  (re-exported)
from fastmlp import FastMLPClassifier
from fastmlp.bench.baselines import NumpyMLPClassifier
from fastmlp.bench.run import epoch_flops, layer_units, skipped_flops  # noqa: F401  (re-exported)

#: Libraries of the epoch suites, in table order.
EPOCH_LIBS = ("numba", "idiomatic", "numpy", "sklearn", "torch", "floor")
BATCH_SIZES = (32, 128, 512)
#: Relative error allowed in the floor's products: sums of 784 terms (and of a
#: batch's rows) in the dtype's rounding, with a wide margin.
FLOOR_RTOL = {"float32": 1e-4, "float64": 1e-12}
DTYPES = ("float32", "float64")

#: Hyperparameters shared by every library (those of ``fastmlp bench`` too).
HYPER = dict(activation="logistic", solver="sgd", momentum=0.9, nesterovs_momentum=True,
             learning_rate="constant", learning_rate_init=0.1, alpha=1e-4, shuffle=True,
             max_iter=1)

#: Training and test rows in smoke mode (the first rows of each split).
SMOKE_TRAIN_ROWS = 4096
SMOKE_TEST_ROWS = 2000
#: Smoke-mode epochs have at most this many batches (``32 * batch_size`` rows,
#: capped at SMOKE_TRAIN_ROWS): the per-batch cost of scikit-learn and PyTorch
#: at batch size 32 would otherwise dominate the smoke run.
SMOKE_BATCHES = 32


def epoch_params(libs=EPOCH_LIBS, dtypes=DTYPES, batch_sizes=BATCH_SIZES):
    """``pytest.param`` list of (lib, dtype, batch_size) for the epoch suites.

    PyTorch is compared in float32 only (the brief's reference setting), so
    its float64 combinations are not generated at all rather than skipped.

    Parameters
    ----------
    libs, dtypes, batch_sizes : sequence
        The values to combine.

    Returns
    -------
    params : list of pytest.param
        Ordered by batch size, then dtype, then library, with ids like
        ``numba-float32-bs32`` (they sort by library inside a group).
    """
    return [pytest.param(lib, dtype, bs, id=f"{lib}-{dtype}-bs{bs}")
            for bs in batch_sizes for dtype in dtypes for lib in libs
            if not (lib == "torch" and dtype != "float32")]


def forward_flops(units, n_samples):
    """Floating-point operations of one forward pass (2 per weight and row).

    Parameters
    ----------
    units : sequence of int
        Layer widths.
    n_samples : int
        Rows.

    Returns
    -------
    flops : int
    """
    return 2 * int(n_samples) * sum(a * b for a, b in zip(units[:-1], units[1:]))


def rate_info(flops, n_samples, seconds, gemm, dtype):
    """The derived rates stored in every benchmark's ``extra_info``.

    Parameters
    ----------
    flops : float
        Work of one timed call.
    n_samples : int
        Rows processed by one timed call.
    seconds : float
        Time of one call (the fastest round).
    gemm : dict
        The session's large-GEMM rates (``conftest.gemm``): the machine's
        GFLOP/s per dtype name, and under ``"<dtype>_1thread"`` one thread's.
    dtype : str
        Compute dtype.

    Returns
    -------
    info : dict
        ``seconds``, ``samples_per_s``, ``gflops``, ``gemm_gflops``,
        ``gemm_fraction`` (the share of the machine's large-GEMM rate
        achieved), ``gemm_fraction_1thread`` (the share of one core's rate)
        and fastmlp's ``blas_threads_per_fit``.
    """
    gflops = flops / seconds / 1e9
    return {"seconds": seconds, "samples_per_s": n_samples / seconds, "gflops": gflops,
            "gemm_gflops": gemm[dtype], "gemm_fraction": gflops / gemm[dtype],
            "gemm_gflops_1thread": gemm[f"{dtype}_1thread"],
            "gemm_fraction_1thread": gflops / gemm[f"{dtype}_1thread"],
            "blas_threads_per_fit": blas_threads_per_fit()}


def blas_threads_per_fit():
    """fastmlp's per-fit BLAS thread cap (``config.BLAS_THREADS_PER_FIT``), or None.

    Returns
    -------
    cap : int or None
        None when uncapped or when this fastmlp has no such knob.
    """
    from fastmlp import config

    return getattr(config, "BLAS_THREADS_PER_FIT", None)


def _timed(fn, *args, **kwargs):
    tic = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - tic


def make_classifier(lib, hidden, batch_size, dtype, random_state=0, **overrides):
    """A fastmlp (``lib`` = backend) or scikit-learn classifier with :data:`HYPER`.

    Parameters
    ----------
    lib : {"numba", "numpy", "sklearn", "idiomatic"}
        fastmlp backend, scikit-learn's MLPClassifier, or the idiomatic NumPy trainer
        (:class:`fastmlp.bench.baselines.NumpyMLPClassifier`: preallocated, in place).
    hidden : sequence of int
        Hidden layer widths.
    batch_size : int
        Mini-batch rows.
    dtype : str
        Compute dtype; scikit-learn follows the dtype of X, which the suites
        cast to it.
    random_state : int, default=0
        Seed of the starting weights and shuffles.
    **overrides
        Other estimator parameters.

    Returns
    -------
    model : FastMLPClassifier or MLPClassifier
    """
    params = dict(HYPER, hidden_layer_sizes=tuple(hidden), batch_size=int(batch_size),
                  random_state=random_state)
    params.update(overrides)
    if lib == "sklearn":
        return MLPClassifier(**params)
    if lib == "idiomatic":
        return NumpyMLPClassifier(params["hidden_layer_sizes"], params["batch_size"],
                                  params["learning_rate_init"], params["momentum"],
                                  params["nesterovs_momentum"], params["alpha"],
                                  params["shuffle"], params["random_state"], dtype)
    return FastMLPClassifier(**params, backend=lib, dtype=dtype)


def quiet_partial_fit(model, X, y, classes=None):
    """``partial_fit`` without scikit-learn's per-call ConvergenceWarning.

    Parameters
    ----------
    model : MLPClassifier or FastMLPClassifier
        The model, trained in place for one epoch.
    X, y : ndarray
        Training rows and labels.
    classes : ndarray, optional
        All labels; required on the first call only.

    Returns
    -------
    model : the same model
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if classes is None:
            return model.partial_fit(X, y)
        return model.partial_fit(X, y, classes=classes)


def quiet_fit(model, X, y):
    """``fit`` without scikit-learn's ConvergenceWarning (the suites fix the epochs).

    Parameters
    ----------
    model : MLPClassifier or FastMLPClassifier
        The model, fitted in place.
    X, y : ndarray
        Training rows and labels.

    Returns
    -------
    model : the same model
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def warm_up(lib, hidden, batch_size, dtype, X, y, classes):
    """Compile (or load from the Numba cache) what one configuration needs, untimed.

    A throw-away model runs two one-epoch ``partial_fit`` calls and a predict
    on a slice of ``4 * batch_size`` rows; the difference between the first
    and second call is the compilation (zero once this process compiled the
    dtype before, or for libraries without a JIT).

    Parameters
    ----------
    lib : {"numba", "numpy", "sklearn"}
        Library.
    hidden : sequence of int
        Hidden layer widths.
    batch_size : int
        Mini-batch rows.
    dtype : str
        Compute dtype.
    X, y : ndarray
        Training data (only a slice is used).
    classes : ndarray
        All labels.

    Returns
    -------
    info : dict
        ``warmup_first_call_s`` and ``compile_s``.
    """
    rows = min(X.shape[0], 4 * batch_size)
    model = make_classifier(lib, hidden, batch_size, dtype)
    tic = time.perf_counter()
    quiet_partial_fit(model, X[:rows], y[:rows], classes)
    model.predict(X[:rows])
    first = time.perf_counter() - tic
    tic = time.perf_counter()
    quiet_partial_fit(model, X[:rows], y[:rows])
    model.predict(X[:rows])
    second = time.perf_counter() - tic
    return {"warmup_first_call_s": first, "compile_s": max(0.0, first - second)}


_TEMPLATES = {}


def epoch_template(lib, hidden, batch_size, dtype, X, y, classes):
    """The model after its first (untimed) epoch, from which every timed epoch starts.

    Cached per configuration and data size, so the PyTorch benchmark reuses
    scikit-learn's. The first epoch also touches all of X and the workspaces
    at full size before anything is timed.

    Parameters
    ----------
    lib : {"numba", "numpy", "sklearn"}
        Library.
    hidden : sequence of int
        Hidden layer widths.
    batch_size : int
        Mini-batch rows.
    dtype : str
        Compute dtype.
    X, y : ndarray
        Training data.
    classes : ndarray
        All labels.

    Returns
    -------
    model : MLPClassifier or FastMLPClassifier
        Do not modify: deep-copy it.
    """
    key = (lib, tuple(hidden), int(batch_size), dtype, X.shape)
    if key not in _TEMPLATES:
        model = make_classifier(lib, hidden, batch_size, dtype)
        _TEMPLATES[key] = quiet_partial_fit(model, X, y, classes)
    return _TEMPLATES[key]


def _floor_benchmark(benchmark, dtype, batch_size, units, X, smoke, gemm, rounds, machine_check):
    """:func:`run_epoch_benchmark` for the layer-1 GEMM floor (``_floor.LayerOneGemms``).

    Returns ``(None, None)``: it trains nothing. ``extra_info['floor_error']``
    is the relative error of its last batch's products.
    """
    from _floor import LayerOneGemms

    floor = LayerOneGemms(X, units[1], batch_size)
    floor.epoch()  # touches X and the outputs before anything is timed
    timer = RoundTimer()
    pedantic(benchmark, machine_check, dtype, timer.wrap(floor.epoch), lambda: ((), {}), rounds)
    benchmark.extra_info.update(
        lib="floor", dtype=dtype, batch_size=int(batch_size), layers="-".join(map(str, units)),
        n_samples=int(X.shape[0]), smoke=bool(smoke), floor_error=float(floor.last_batch_error()),
        **rate_info(floor_flops(units, X.shape[0]), X.shape[0], timer.best, gemm, dtype))
    return None, None


def floor_flops(units, n_samples):
    """Flops of the floor's two first-layer products (2 per weight and row, twice).

    Parameters
    ----------
    units : sequence of int
        Layer widths.
    n_samples : int
        Rows.

    Returns
    -------
    int
    """
    return 4 * units[0] * units[1] * n_samples


def require_torch(lib):
    """Skip, with the reason, when the PyTorch reference is asked for but not importable.

    Any ImportError skips (not only a missing module): PyTorch is an optional
    comparison, and a broken install of it must not fail fastmlp's suites.

    Parameters
    ----------
    lib : str
        The library of the test; only ``"torch"`` needs PyTorch.
    """
    if lib != "torch":
        return
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"PyTorch is not importable ({exc}): the optional PyTorch CPU reference "
                    "is skipped (pip install torch).")


def torch_threads(smoke=False):
    """Threads given to PyTorch: all cores, as NumPy's BLAS has; one in smoke mode.

    Parameters
    ----------
    smoke : bool, default=False
        Smoke mode (see ``conftest.smoke_single_thread`` for why one thread).

    Returns
    -------
    n : int
    """
    return 1 if smoke else (os.cpu_count() or 1)


def torch_warm_up(net, X, y):
    """Two untimed epochs of a throw-away PyTorch net on a slice (first-call set-up).

    Parameters
    ----------
    net : _torchref.TorchSGDNet
        Throw-away net.
    X, y : torch.Tensor
        A few batches of rows.

    Returns
    -------
    info : dict
        ``warmup_first_call_s`` and ``compile_s`` (first minus second call;
        PyTorch eager has no JIT, this is its one-off initialisation).
    """
    first = _timed(net.epoch, X, y)
    second = _timed(net.epoch, X, y)
    return {"warmup_first_call_s": first, "compile_s": max(0.0, first - second)}


def run_epoch_benchmark(benchmark, lib, dtype, batch_size, hidden, mnist, smoke, gemm,
                        rounds, machine_check=None):
    """Time one training epoch of one library on MNIST and fill ``extra_info``.

    Outside the timed region: compilation on a slice (:func:`warm_up`), the
    untimed first epoch (:func:`epoch_template`) and, before each round, a deep
    copy of that model (pytest-benchmark's ``setup``). Each round times exactly
    one ``partial_fit`` call, i.e. one epoch with the optimizer's momentum kept,
    from the same weights in every library.

    Parameters
    ----------
    benchmark : pytest_benchmark.fixture.BenchmarkFixture
        The fixture.
    lib : {"numba", "numpy", "sklearn", "torch"}
        Library.
    dtype : {"float32", "float64"}
        Compute dtype.
    batch_size : int
        Mini-batch rows.
    hidden : sequence of int
        Hidden layer widths.
    mnist : MNISTData
        The session's MNIST arrays (see ``conftest.py``).
    smoke : bool
        Smoke mode: sliced data, one round.
    gemm : dict
        Large-GEMM GFLOP/s (see :func:`rate_info`).
    rounds : int
        Timed epochs in full mode.
    machine_check : _machine.MachineCheck or None, default=None
        Reads the GEMM rate around every round, waiting for a quiet machine
        before each (full mode); None: no check.

    Returns
    -------
    test_accuracy : float
        Accuracy of the last timed round's model on the test rows.
    losses : tuple of float
        Training loss of the untimed first epoch and of the last timed epoch.
    """
    X, y, X_test, y_test = mnist.arrays(dtype)
    if smoke:
        X, y = X[:SMOKE_BATCHES * batch_size], y[:SMOKE_BATCHES * batch_size]
    classes = np.arange(10)
    units = layer_units(X.shape[1], hidden, classes.size)
    rounds = 1 if smoke else rounds
    timer = RoundTimer()
    latest = {}
    if lib == "floor":
        return _floor_benchmark(benchmark, dtype, batch_size, units, X, smoke, gemm, rounds,
                                machine_check)
    if lib == "torch":
        from _torchref import TorchSGDNet

        template = epoch_template("sklearn", hidden, batch_size, dtype, X, y, classes)
        X_t, y_t = TorchSGDNet.tensors(X, y)
        warm = torch_warm_up(TorchSGDNet.from_sklearn(template, torch_threads(smoke)),
                             X_t[:4 * batch_size], y_t[:4 * batch_size])

        def setup():
            latest["model"] = TorchSGDNet.from_sklearn(template, torch_threads(smoke))
            return (latest["model"],), {}

        def epoch(model):
            return model.epoch(X_t, y_t)
    else:
        warm = warm_up(lib, hidden, batch_size, dtype, X, y, classes)
        template = epoch_template(lib, hidden, batch_size, dtype, X, y, classes)

        def setup():
            latest["model"] = copy.deepcopy(template)
            return (latest["model"],), {}

        def epoch(model):
            return quiet_partial_fit(model, X, y).loss_curve_[-1]

    loss = pedantic(benchmark, machine_check, dtype, timer.wrap(epoch), setup, rounds)
    accuracy = float(np.mean(latest["model"].predict(X_test) == y_test))
    benchmark.extra_info.update(
        lib=lib, dtype=dtype, batch_size=int(batch_size), layers="-".join(map(str, units)),
        n_samples=int(X.shape[0]), first_epoch_loss=float(template.loss_curve_[-1]),
        epoch_loss=float(loss), test_accuracy=accuracy,
        n_test=int(X_test.shape[0]), smoke=bool(smoke), **warm,
        **rate_info(epoch_flops(units, X.shape[0]), X.shape[0], timer.best, gemm, dtype))
    if lib == "torch":
        benchmark.extra_info["torch_threads"] = torch_threads(smoke)
    if lib == "numba":
        # The first-layer work it skips (zero columns of a batch): the rate of what it executes.
        skipped = skipped_flops(X, units, batch_size)
        e = benchmark.extra_info
        e["skipped_flops"] = skipped
        e["executed_gemm_fraction"] = e["gemm_fraction"] * (1 - skipped / epoch_flops(
            units, X.shape[0]))
    return accuracy, (float(template.loss_curve_[-1]), float(loss))
