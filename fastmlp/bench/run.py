"""``fastmlp bench``: time fastmlp, idiomatic NumPy and scikit-learn training on MNIST.

Three libraries train the same sigmoid MLP: fastmlp's compiled kernels, the
idiomatic NumPy trainer of :mod:`fastmlp.bench.baselines` (preallocated
buffers, in-place updates; the "NumPy" that speed-ups are quoted against) and
scikit-learn's ``MLPClassifier`` (what users run today). All get the same
hyperparameters, the same starting weights and the same shuffles, so their
loss curves coincide up to rounding and only the time differs. How that is
arranged:

* Each model gets its own ``numpy.random.RandomState(seed)`` *object* as
  ``random_state``. scikit-learn draws the initial weights and then every
  epoch's shuffle from it, and because it is an object (not an int) it is not
  re-seeded by each ``partial_fit`` call: it advances across epochs, exactly as
  in one ``fit`` call. Identical seeds therefore give identical starting
  weights and identical shuffles for every library and batch size.
* One ``partial_fit`` call is one epoch and keeps the optimizer (momentum)
  between calls, unlike ``warm_start`` which would re-create it.
* Before the measured epochs a throw-away model of the same configuration runs
  one ``partial_fit`` and one ``predict`` on a small slice: that is where Numba
  compiles (or loads its cache). The time is reported separately as "warm-up"
  and never enters the seconds per epoch.
* The measured epochs of all libraries are interleaved (epoch 1 of each
  library, then epoch 2, ...), so background load on a shared machine hits
  them alike. An epoch timed right after a NumPy or scikit-learn epoch starts
  after a pause (:data:`SETTLE_SECONDS`, at most that epoch's time): OpenBLAS's worker threads keep
  spinning for about 0.1 s after a threaded product (its thread timeout,
  2**28 cycles), and without the pause the next library would share the
  cores with them (measured: +15% on a fastmlp epoch at batch 128).
"""

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from fastmlp import config
from fastmlp.bench.data import BenchData, load_bench_data, load_digits_data
from fastmlp.bench.plot import write_plot
from fastmlp.bench.report import REFERENCES, busy_note, describe_run, format_report, layer_units

__all__ = [
    "BenchData",
    "load_bench_data",
    "load_digits_data",
    "default_epochs",
    "layer_units",
    "epoch_flops",
    "skipped_flops",
    "gemm_rate",
    "make_model",
    "warm_up",
    "run_bench",
    "format_report",
    "write_plot",
    "write_json",
    "describe_run",
    "load_average",
    "busy_note",
    "bench",
]

#: Libraries always benchmarked, in table order; ``"sklearn"`` follows unless skipped.
LIBRARIES = ("fastmlp", "numpy")
SKLEARN = "sklearn"
ALL_LIBRARIES = LIBRARIES + (SKLEARN,)
#: Batch sizes when --batch-sizes is not given, with or without --quick.
DEFAULT_BATCH_SIZES = (32, 128, 512)

#: Training rows used by ``--quick``.
QUICK_TRAIN_ROWS = 10_000

# Epochs when --epochs is not given: (MNIST, digits) x (normal, quick). The
# digits epochs are ~45x smaller than MNIST's, so more of them are needed to
# train anything and they still take well under a second.
_DEFAULT_EPOCHS = {("MNIST", False): 5, ("MNIST", True): 2,
                   ("digits", False): 20, ("digits", True): 10}

# The network and optimizer being benchmarked (issue 5): sklearn's SGD with
# Nesterov momentum 0.9, a fixed learning rate of 0.1 and alpha 1e-4.
_HYPER = dict(activation="logistic", solver="sgd", momentum=0.9, nesterovs_momentum=True,
              learning_rate="constant", learning_rate_init=0.1, alpha=1e-4, shuffle=True,
              max_iter=1)


def default_epochs(dataset, quick=False):
    """Measured epochs per library and batch size when ``--epochs`` is not given.

    Parameters
    ----------
    dataset : {"MNIST", "digits"}
        Name of the loaded data set.
    quick : bool, default=False
        Whether ``--quick`` was given.

    Returns
    -------
    epochs : int
        5 on MNIST (2 with ``quick``); 20 on digits (10 with ``quick``).
    """
    return _DEFAULT_EPOCHS[(dataset, bool(quick))]


def epoch_flops(units, n_samples):
    """Floating-point operations of one training epoch, counted as matrix products.

    Each weight costs 2 flops per sample in the forward product, 2 in the
    weight gradient and 2 in the gradient with respect to the layer's input;
    the first layer has no input gradient, hence 4 flops per weight there.
    Biases, activations and the update are negligible and not counted.

    Parameters
    ----------
    units : sequence of int
        Layer widths from :func:`layer_units`.
    n_samples : int
        Training rows per epoch.

    Returns
    -------
    flops : int
        ``n_samples * (4 * w1 + 6 * sum of the later layers' weights)``;
        about 24.5e9 for 784-128-10 on 60000 rows.
    """
    weights = [a * b for a, b in zip(units[:-1], units[1:])]
    return int(n_samples) * (4 * weights[0] + 6 * sum(weights[1:]))


def skipped_flops(X, units, batch_size, seed=0):
    """Estimate the flops of :func:`epoch_flops` that fastmlp's kernels skip.

    With dense X, the register tiles and at least
    ``config.MIN_ZERO_COLUMN_INPUTS`` inputs, its first-layer products skip
    the input columns that are zero in every row of a batch (exact zeros), in
    the batches where at least 1/16 of the columns are (and not in the first
    batch of an epoch; after a batch with fewer, the kernel stops looking for
    a few batches, which this does not model). This counts them over the
    batches of one random order of the rows: an estimate of any other
    order's (MNIST at batch 128: about 8 of the 24.5 GFLOP per epoch).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training rows.
    units : sequence of int
        Layer widths from :func:`layer_units`.
    batch_size : int
        Rows per mini-batch.
    seed : int, default=0
        Seed of the order.

    Returns
    -------
    flops : int
        Per epoch, counted as in :func:`epoch_flops` (4 per first-layer weight and row).
    """
    from fastmlp.config import ZERO_COLUMN_SHARE as _MIN_ZERO_COLUMNS
    from fastmlp.engine.backends import tiled_products

    n_features = X.shape[1]
    if (sp.issparse(X) or n_features < config.MIN_ZERO_COLUMN_INPUTS
            or not tiled_products()):
        return 0
    order = np.random.default_rng(seed).permutation(X.shape[0])
    skipped = 0
    for start in range(batch_size, X.shape[0], batch_size):
        batch = order[start:start + batch_size]
        zero_columns = n_features - int(np.count_nonzero(np.any(X[batch] != 0, axis=0)))
        if zero_columns >= n_features // _MIN_ZERO_COLUMNS:
            skipped += 4 * zero_columns * units[1] * batch.size
    return skipped


def gemm_rate(n=2048, dtype=np.float32, repeats=3):
    """Measure the machine's large matrix-product rate with NumPy.

    Parameters
    ----------
    n : int, default=2048
        Size of the square matrices.
    dtype : numpy dtype, default=numpy.float32
        Element type.
    repeats : int, default=3
        Timed products; the best is kept (after one untimed warm-up product).

    Returns
    -------
    flops_per_second : float
        ``2 * n**3`` divided by the best time.
    seconds : float
        The best time.
    """
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=dtype)
    b = rng.random((n, n), dtype=dtype)
    out = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=out)  # wakes the BLAS thread pool
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - tic)
    best = min(times)
    return 2.0 * n ** 3 / best, best


def make_model(library, hidden, batch_size, dtype, seed=0):
    """Build one benchmarked classifier.

    Parameters
    ----------
    library : {"fastmlp", "numpy", "sklearn"}
        fastmlp's compiled kernels, the idiomatic NumPy trainer
        (:class:`fastmlp.bench.baselines.NumpyMLPClassifier`) or scikit-learn's
        MLPClassifier.
    hidden : sequence of int
        Hidden layer widths.
    batch_size : int
        Mini-batch rows.
    dtype : numpy dtype
        Compute dtype (scikit-learn follows the dtype of X).
    seed : int, default=0
        Seed of the model's own RandomState object (starting weights, shuffles).

    Returns
    -------
    model : FastMLPClassifier, NumpyMLPClassifier or MLPClassifier
    """
    random_state = np.random.RandomState(seed)
    if library == "numpy":
        from fastmlp.bench.baselines import NumpyMLPClassifier
        return NumpyMLPClassifier(
            tuple(hidden), int(batch_size), _HYPER["learning_rate_init"], _HYPER["momentum"],
            _HYPER["nesterovs_momentum"], _HYPER["alpha"], _HYPER["shuffle"], random_state,
            np.dtype(dtype).name)
    params = dict(_HYPER, hidden_layer_sizes=tuple(hidden), batch_size=int(batch_size),
                  random_state=random_state)
    if library == SKLEARN:
        from sklearn.neural_network import MLPClassifier
        return MLPClassifier(**params)
    if library != "fastmlp":
        raise ValueError(f"library must be one of {ALL_LIBRARIES}, got {library!r}")
    from fastmlp import FastMLPClassifier
    return FastMLPClassifier(**params, backend="numba", dtype=np.dtype(dtype).name)


def warm_up(library, hidden, batch_size, dtype, X, y, classes, seed=0):
    """Compile (or load from cache) everything one configuration needs.

    Trains a throw-away model for one epoch on ``2 * batch_size + 1`` rows
    (full batches and a short last one) and predicts a few rows.

    Parameters
    ----------
    library, hidden, batch_size, dtype, seed
        As in :func:`make_model`.
    X, y : ndarray
        Training data; only the first rows are used.
    classes : ndarray
        All class labels.

    Returns
    -------
    seconds : float
        Wall time of the warm-up; includes Numba's JIT compilation on the first call.
    """
    rows = min(X.shape[0], 2 * int(batch_size) + 1)
    model = make_model(library, hidden, batch_size, dtype, seed)
    tic = time.perf_counter()
    model.partial_fit(X[:rows], y[:rows], classes=classes)
    model.predict(X[:rows])
    return time.perf_counter() - tic


def _progress_bar(total, enabled):
    # disable=None lets tqdm switch itself off when stderr is not a terminal (CI, pipes).
    return tqdm(total=total, unit="epoch", file=sys.stderr, leave=False,
                disable=None if enabled is None else not enabled)


#: Pause after a timed NumPy or scikit-learn epoch (at most as long as that
#: epoch), so their BLAS threads are asleep. 0.15 s was measured not quite enough.
SETTLE_SECONDS = 0.3


def _train_batch_size(data, libraries, hidden, batch_size, epochs, dtype, seed, classes, bar):
    """Warm up, then train every library for ``epochs`` interleaved, timed epochs."""
    warmups = {}
    for library in libraries:
        bar.set_description(f"{library} batch {batch_size} warm-up")
        warmups[library] = warm_up(library, hidden, batch_size, dtype, data.X_train,
                                   data.y_train, classes, seed)
    models = {lib: make_model(lib, hidden, batch_size, dtype, seed) for lib in libraries}
    times = {lib: [] for lib in libraries}
    previous = None
    for epoch in range(epochs):
        for library in libraries:
            bar.set_description(f"{library} batch {batch_size} epoch {epoch + 1}/{epochs}")
            if previous in ("numpy", SKLEARN):
                time.sleep(min(SETTLE_SECONDS, times[previous][-1]))
            previous = library
            tic = time.perf_counter()
            models[library].partial_fit(data.X_train, data.y_train, classes=classes)
            times[library].append(time.perf_counter() - tic)
            bar.update(1)
    rows = []
    for library in libraries:
        model = models[library]
        rows.append({
            "library": library,
            "batch_size": int(batch_size),
            "epoch_seconds": times[library],
            "seconds_per_epoch": statistics.median(times[library]),
            "warmup_seconds": warmups[library],
            "loss_curve": [float(v) for v in model.loss_curve_],
            "final_loss": float(model.loss_curve_[-1]),
            "test_accuracy": float(model.score(data.X_test, data.y_test)),
        })
    return rows


def _add_ratios(rows, flops, gemm_flops_per_second, skipped):
    """Speed-ups against each reference at the same batch size, rates and GEMM fractions.

    ``skipped`` maps a batch size to the flops fastmlp skips
    (:func:`skipped_flops`); its rows also get the rate of the flops it executes.
    """
    for reference in REFERENCES:
        seconds = {r["batch_size"]: r["seconds_per_epoch"] for r in rows
                   if r["library"] == reference}
        if not seconds:
            continue
        for row in rows:
            row[f"speedup_vs_{reference}"] = (seconds[row["batch_size"]]
                                             / row["seconds_per_epoch"])
    for row in rows:
        rate = flops / row["seconds_per_epoch"]
        row["gflops_per_second"] = rate / 1e9
        row["gemm_fraction"] = rate / gemm_flops_per_second
        if row["library"] == "fastmlp":
            row["skipped_flops"] = skipped[row["batch_size"]]
            executed = (flops - skipped[row["batch_size"]]) / row["seconds_per_epoch"]
            row["executed_gemm_fraction"] = executed / gemm_flops_per_second


def run_bench(data, hidden=(128,), batch_sizes=(32, 128, 512), epochs=5, dtype="float32",
              with_sklearn=True, seed=0, gemm_size=2048, progress=None):
    """Train every library at every batch size and collect timings and results.

    Parameters
    ----------
    data : BenchData
        From :func:`fastmlp.bench.data.load_bench_data`.
    hidden : sequence of int, default=(128,)
        Hidden layer widths.
    batch_sizes : sequence of int, default=(32, 128, 512)
        Mini-batch sizes, each benchmarked separately.
    epochs : int, default=5
        Measured epochs per library and batch size (the median is reported).
    dtype : {"float32", "float64"}, default="float32"
        Compute dtype of every library and of the GEMM reference.
    with_sklearn : bool, default=True
        Also time scikit-learn's MLPClassifier.
    seed : int, default=0
        Seed of the starting weights and shuffles (shared by all libraries).
    gemm_size : int, default=2048
        Size of the reference matrix product (see :func:`gemm_rate`).
    progress : bool or None, default=None
        Progress bar on stderr; None shows it only when stderr is a terminal.

    Returns
    -------
    results : dict
        JSON-ready: ``config``, ``gemm``, ``epoch_flops`` and one entry of
        ``rows`` per library and batch size (``seconds_per_epoch`` is the
        median of ``epoch_seconds``; also ``warmup_seconds``,
        ``speedup_vs_numpy`` and, with scikit-learn, ``speedup_vs_sklearn``
        (the reference's seconds per epoch over this row's),
        ``gflops_per_second``, ``gemm_fraction``, ``loss_curve``,
        ``final_loss``, ``test_accuracy``; fastmlp's rows also
        ``skipped_flops`` and ``executed_gemm_fraction``, see :func:`skipped_flops`).
    """
    dtype = np.dtype(dtype)
    libraries = LIBRARIES + ((SKLEARN,) if with_sklearn else ())
    classes = np.unique(data.y_train)
    units = layer_units(data.X_train.shape[1], hidden, len(classes))
    flops = epoch_flops(units, data.X_train.shape[0])
    gemm_per_second, gemm_seconds = gemm_rate(gemm_size, dtype)

    rows = []
    with _progress_bar(len(libraries) * len(batch_sizes) * epochs, progress) as bar:
        for batch_size in batch_sizes:
            rows += _train_batch_size(data, libraries, hidden, batch_size, epochs, dtype,
                                      seed, classes, bar)
    skipped = {b: skipped_flops(data.X_train, units, b, seed) for b in batch_sizes}
    _add_ratios(rows, flops, gemm_per_second, skipped)
    return {
        "config": {
            "dataset": data.name, "notice": data.notice, "source": data.source,
            "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0]),
            "n_available": data.n_available,
            "layer_units": units, "hidden": [int(h) for h in hidden],
            "batch_sizes": [int(b) for b in batch_sizes], "epochs": int(epochs),
            "dtype": dtype.name, "seed": int(seed), "libraries": list(libraries),
            **{k: v for k, v in _HYPER.items() if k not in ("max_iter", "shuffle")},
        },
        "machine": _machine_info(),
        "gemm": {"n": int(gemm_size), "dtype": dtype.name, "seconds": gemm_seconds,
                 "gflops_per_second": gemm_per_second / 1e9},
        "epoch_flops": flops,
        "rows": rows,
    }


def load_average():
    """The machine's one-minute load average, or None where the OS does not report it.

    Returns
    -------
    load : float or None
    """
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        return None


def _machine_info():
    import numba
    import sklearn

    from fastmlp import __version__
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "numpy": np.__version__,
            "numba": numba.__version__, "scikit-learn": sklearn.__version__,
            "fastmlp": __version__}


def _cpu_name():
    """The CPU model from /proc/cpuinfo, else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(results, path):
    """Write the results as indented JSON.

    Parameters
    ----------
    results : dict
        From :func:`run_bench` (plus any keys the caller added).
    path : str or os.PathLike
        Output file.
    """
    Path(path).write_text(json.dumps(results, indent=2) + "\n")


def bench(*, hidden=(128,), batch_sizes=None, epochs=None, dtype="float32", quick=False,
          out="fastmlp-bench.png", json_path=None, with_sklearn=True, data_home=None,
          download=True, seed=0, progress=None, gemm_size=2048):
    """Run the whole ``fastmlp bench`` command: load, train, print, plot, save.

    Parameters
    ----------
    hidden : sequence of int, default=(128,)
        Hidden layer widths.
    batch_sizes : sequence of int, optional
        Default :data:`DEFAULT_BATCH_SIZES`, with or without ``quick`` (which
        trains on fewer rows for fewer epochs instead).
    epochs : int, optional
        Timed epochs per library and batch size; see :func:`default_epochs`.
    dtype : {"float32", "float64"}, default="float32"
        Compute dtype.
    quick : bool, default=False
        Train on the first :data:`QUICK_TRAIN_ROWS` rows only, for the quick
        number of epochs (:func:`default_epochs`).
    out : str or os.PathLike, default="fastmlp-bench.png"
        PNG written when matplotlib is installed.
    json_path : str or os.PathLike, optional
        Also write the results as JSON there.
    with_sklearn : bool, default=True
        Also time scikit-learn's MLPClassifier.
    data_home : str or os.PathLike, optional
        MNIST directory (see :func:`fastmlp.datasets.get_data_home`).
    download : bool, default=True
        Download missing MNIST files; without them (or with False) the run
        falls back to digits and says why.
    seed : int, default=0
        Seed of the shared starting weights and shuffles.
    progress : bool or None, default=None
        Progress bar on stderr; None shows it only on a terminal.
    gemm_size : int, default=2048
        Size of the reference matrix product.

    Returns
    -------
    status : int
        Exit status (0).
    """
    start = time.perf_counter()
    data = load_bench_data(data_home, dtype, QUICK_TRAIN_ROWS if quick else None, download,
                           announce=lambda line: print(line, flush=True))
    batch_sizes = tuple(batch_sizes) if batch_sizes else DEFAULT_BATCH_SIZES
    epochs = epochs or default_epochs(data.name, quick)
    print(describe_run(data, hidden, epochs, dtype), flush=True)

    load_before = load_average()
    results = run_bench(data, hidden, batch_sizes, epochs, dtype, with_sklearn, seed,
                        gemm_size, progress)
    results["machine"]["load_average"] = [load_before, load_average()]
    print("\n" + format_report(results))
    note = busy_note(*results["machine"]["load_average"], os.cpu_count() or 1)
    if note:
        print(note)

    if write_plot(results, out):
        results["plot"] = str(Path(out).resolve())
        print(f"Plot written to {results['plot']}")
    else:
        results["plot"] = None
        print("matplotlib is not installed, so no plot was written "
              "(pip install 'fastmlp[plot]' to get one).")
    results["wall_seconds"] = time.perf_counter() - start
    if json_path is not None:
        write_json(results, json_path)
        print(f"Results written to {Path(json_path).resolve()}")
    print(f"Total wall time {results['wall_seconds']:.1f} s (loading, GEMM, warm-ups, "
          "training and evaluation).")
    return 0
