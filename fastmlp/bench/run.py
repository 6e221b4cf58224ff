"""``fastmlp bench``: time the numba and numpy backends (and scikit-learn) on MNIST.

Every backend trains the same sigmoid MLP with the same hyperparameters, the
same starting weights and the same shuffles, so their loss curves coincide up
to rounding and only the time differs. How that is arranged:

* Each model gets its own ``numpy.random.RandomState(seed)`` *object* as
  ``random_state``. scikit-learn draws the initial weights and then every
  epoch's shuffle from it, and because it is an object (not an int) it is not
  re-seeded by each ``partial_fit`` call: it advances across epochs, exactly as
  in one ``fit`` call. Identical seeds therefore give identical starting
  weights and identical shuffles for every backend and batch size.
* One ``partial_fit`` call is one epoch and keeps the optimizer (momentum)
  between calls, unlike ``warm_start`` which would re-create it.
* Before the measured epochs a throw-away model of the same configuration runs
  one ``partial_fit`` and one ``predict`` on a small slice: that is where Numba
  compiles (or loads its cache). The time is reported separately as "warm-up"
  and never enters the seconds per epoch.
* The measured epochs of all backends are interleaved (epoch 1 of each
  backend, then epoch 2, ...), so background load on a shared machine hits
  them alike. An epoch timed right after a NumPy or scikit-learn epoch starts
  after a pause (:data:`SETTLE_SECONDS`, at most that epoch's time): OpenBLAS's worker threads keep
  spinning for about 0.1 s after a threaded product (its thread timeout,
  2**28 cycles), and without the pause the next backend would share the
  cores with them (measured: +15% on a numba epoch at batch 128).
"""

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from fastmlp import config
from fastmlp.datasets import MNISTError, load_mnist

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
    "bench",
]

#: Backends always benchmarked, in table order; ``"sklearn"`` is optional.
BACKENDS = ("numba", "numpy")
SKLEARN = "sklearn"

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


@dataclass
class BenchData:
    """Training and test data for the benchmark.

    Attributes
    ----------
    name : {"MNIST", "digits"}
        Which data set was loaded.
    X_train, X_test : ndarray of shape (n_samples, n_features)
        Pixel values in [0, 1], in the benchmark dtype.
    y_train, y_test : ndarray of shape (n_samples,)
        Integer labels.
    notice : str or None
        Why MNIST was not used and how to get it, for the fallback data set.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    notice: str = None


def load_digits_data(dtype=np.float32):
    """Load scikit-learn's bundled digits data set as the MNIST stand-in.

    Parameters
    ----------
    dtype : numpy dtype, default=numpy.float32
        Type of ``X``.

    Returns
    -------
    data : BenchData
        1347 training and 450 test images of 8x8 pixels scaled to [0, 1]
        (stratified split, fixed seed); ``notice`` is None.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(dtype)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    return BenchData("digits", X_train, y_train, X_test, y_test)


def load_bench_data(data_home=None, dtype=np.float32, n_train=None, download=False):
    """Load MNIST, or fall back to the digits data set when it is not usable.

    Never raises for want of data: missing, corrupt or undownloadable MNIST
    files give the digits data set with a ``notice`` that says why and how to
    get MNIST.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Directory with the MNIST files; see :func:`fastmlp.datasets.get_data_home`.
    dtype : numpy dtype, default=numpy.float32
        Type of ``X``.
    n_train : int, optional
        Keep only the first ``n_train`` training rows (all test rows are kept).
    download : bool, default=False
        Download missing MNIST files. Off by default because an offline machine
        may wait on network timeouts before the fallback kicks in.

    Returns
    -------
    data : BenchData
    """
    try:
        X_train, y_train = load_mnist("train", data_home, dtype, download=download)
        X_test, y_test = load_mnist("test", data_home, dtype, download=download)
        data = BenchData("MNIST", X_train, y_train, X_test, y_test)
    except MNISTError as exc:
        data = load_digits_data(dtype)
        hint = "" if download else "\nOr rerun with --download to fetch MNIST (about 11 MB)."
        data.notice = (
            "MNIST is not available, so this run uses scikit-learn's small digits data set "
            "(8x8 images) instead; its timings say little about MNIST.\n"
            f"Reason: {exc}{hint}")
    if n_train is not None:
        data.X_train, data.y_train = data.X_train[:n_train], data.y_train[:n_train]
    return data


def default_epochs(dataset, quick=False):
    """Measured epochs per backend and batch size when ``--epochs`` is not given.

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


def layer_units(n_features, hidden, n_classes):
    """Units of every layer, input to output.

    Parameters
    ----------
    n_features : int
        Input width.
    hidden : sequence of int
        Hidden layer widths.
    n_classes : int
        Number of classes (softmax outputs; 2 classes use one sigmoid output).

    Returns
    -------
    units : list of int
    """
    n_out = 1 if n_classes == 2 else n_classes
    return [int(n_features), *map(int, hidden), n_out]


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
    """Estimate the flops of :func:`epoch_flops` that the ``numba`` backend skips.

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


def make_model(backend, hidden, batch_size, dtype, seed=0):
    """Build one benchmarked classifier.

    Parameters
    ----------
    backend : {"numba", "numpy", "sklearn"}
        fastmlp backend, or scikit-learn's own MLPClassifier.
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
    model : FastMLPClassifier or sklearn.neural_network.MLPClassifier
    """
    params = dict(_HYPER, hidden_layer_sizes=tuple(hidden), batch_size=int(batch_size),
                  random_state=np.random.RandomState(seed))
    if backend == SKLEARN:
        from sklearn.neural_network import MLPClassifier
        return MLPClassifier(**params)
    from fastmlp import FastMLPClassifier
    return FastMLPClassifier(**params, backend=backend, dtype=np.dtype(dtype).name)


def warm_up(backend, hidden, batch_size, dtype, X, y, classes, seed=0):
    """Compile (or load from cache) everything one configuration needs.

    Trains a throw-away model for one epoch on ``2 * batch_size + 1`` rows
    (full batches and a short last one) and predicts a few rows.

    Parameters
    ----------
    backend, hidden, batch_size, dtype, seed
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
    model = make_model(backend, hidden, batch_size, dtype, seed)
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


def _train_batch_size(data, backends, hidden, batch_size, epochs, dtype, seed, classes, bar):
    """Warm up, then train every backend for ``epochs`` interleaved, timed epochs."""
    warmups = {}
    for backend in backends:
        bar.set_description(f"{backend} batch {batch_size} warm-up")
        warmups[backend] = warm_up(backend, hidden, batch_size, dtype, data.X_train,
                                   data.y_train, classes, seed)
    models = {b: make_model(b, hidden, batch_size, dtype, seed) for b in backends}
    times = {b: [] for b in backends}
    previous = None
    for epoch in range(epochs):
        for backend in backends:
            bar.set_description(f"{backend} batch {batch_size} epoch {epoch + 1}/{epochs}")
            if previous in ("numpy", SKLEARN):
                time.sleep(min(SETTLE_SECONDS, times[previous][-1]))
            previous = backend
            tic = time.perf_counter()
            models[backend].partial_fit(data.X_train, data.y_train, classes=classes)
            times[backend].append(time.perf_counter() - tic)
            bar.update(1)
    rows = []
    for backend in backends:
        model = models[backend]
        rows.append({
            "backend": backend,
            "batch_size": int(batch_size),
            "epoch_seconds": times[backend],
            "seconds_per_epoch": statistics.median(times[backend]),
            "warmup_seconds": warmups[backend],
            "loss_curve": [float(v) for v in model.loss_curve_],
            "final_loss": float(model.loss_curve_[-1]),
            "test_accuracy": float(model.score(data.X_test, data.y_test)),
        })
    return rows


def _add_ratios(rows, flops, gemm_flops_per_second, skipped):
    """Speedup against numpy at the same batch size, achieved rate and GEMM fraction.

    ``skipped`` maps a batch size to the flops the numba backend skips
    (:func:`skipped_flops`); its rows also get the rate of the flops it executes.
    """
    numpy_time = {r["batch_size"]: r["seconds_per_epoch"] for r in rows
                  if r["backend"] == "numpy"}
    for row in rows:
        rate = flops / row["seconds_per_epoch"]
        row["speedup_vs_numpy"] = numpy_time[row["batch_size"]] / row["seconds_per_epoch"]
        row["gflops_per_second"] = rate / 1e9
        row["gemm_fraction"] = rate / gemm_flops_per_second
        if row["backend"] == "numba":
            row["skipped_flops"] = skipped[row["batch_size"]]
            executed = (flops - skipped[row["batch_size"]]) / row["seconds_per_epoch"]
            row["executed_gemm_fraction"] = executed / gemm_flops_per_second


def run_bench(data, hidden=(128,), batch_sizes=(32, 128, 512), epochs=5, dtype="float32",
              with_sklearn=False, seed=0, gemm_size=2048, progress=None):
    """Train every backend at every batch size and collect timings and results.

    Parameters
    ----------
    data : BenchData
        From :func:`load_bench_data`.
    hidden : sequence of int, default=(128,)
        Hidden layer widths.
    batch_sizes : sequence of int, default=(32, 128, 512)
        Mini-batch sizes, each benchmarked separately.
    epochs : int, default=5
        Measured epochs per backend and batch size (the median is reported).
    dtype : {"float32", "float64"}, default="float32"
        Compute dtype of every backend and of the GEMM reference.
    with_sklearn : bool, default=False
        Also time scikit-learn's MLPClassifier.
    seed : int, default=0
        Seed of the starting weights and shuffles (shared by all backends).
    gemm_size : int, default=2048
        Size of the reference matrix product (see :func:`gemm_rate`).
    progress : bool or None, default=None
        Progress bar on stderr; None shows it only when stderr is a terminal.

    Returns
    -------
    results : dict
        JSON-ready: ``config``, ``gemm``, ``epoch_flops`` and one entry of
        ``rows`` per backend and batch size (``seconds_per_epoch`` is the
        median of ``epoch_seconds``; also ``warmup_seconds``,
        ``speedup_vs_numpy``, ``gflops_per_second``, ``gemm_fraction``,
        ``loss_curve``, ``final_loss``, ``test_accuracy``; numba's rows also
        ``skipped_flops`` and ``executed_gemm_fraction``, see :func:`skipped_flops`).
    """
    dtype = np.dtype(dtype)
    backends = BACKENDS + ((SKLEARN,) if with_sklearn else ())
    classes = np.unique(data.y_train)
    units = layer_units(data.X_train.shape[1], hidden, len(classes))
    flops = epoch_flops(units, data.X_train.shape[0])
    gemm_per_second, gemm_seconds = gemm_rate(gemm_size, dtype)

    rows = []
    with _progress_bar(len(backends) * len(batch_sizes) * epochs, progress) as bar:
        for batch_size in batch_sizes:
            rows += _train_batch_size(data, backends, hidden, batch_size, epochs, dtype,
                                      seed, classes, bar)
    skipped = {b: skipped_flops(data.X_train, units, b, seed) for b in batch_sizes}
    _add_ratios(rows, flops, gemm_per_second, skipped)
    return {
        "config": {
            "dataset": data.name, "notice": data.notice,
            "n_train": int(data.X_train.shape[0]), "n_test": int(data.X_test.shape[0]),
            "layer_units": units, "hidden": [int(h) for h in hidden],
            "batch_sizes": [int(b) for b in batch_sizes], "epochs": int(epochs),
            "dtype": dtype.name, "seed": int(seed), "backends": list(backends),
            **{k: v for k, v in _HYPER.items() if k not in ("max_iter", "shuffle")},
        },
        "machine": _machine_info(),
        "gemm": {"n": int(gemm_size), "dtype": dtype.name, "seconds": gemm_seconds,
                 "gflops_per_second": gemm_per_second / 1e9},
        "epoch_flops": flops,
        "rows": rows,
    }


def _machine_info():
    import numba
    import sklearn

    from fastmlp import __version__
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "numpy": np.__version__, "numba": numba.__version__,
            "scikit-learn": sklearn.__version__, "fastmlp": __version__}


def describe_run(data, hidden, epochs, dtype):
    """One header paragraph: data set, network, optimizer, and the fallback notice if any.

    Parameters
    ----------
    data : BenchData
        The loaded data.
    hidden : sequence of int
        Hidden layer widths.
    epochs : int
        Measured epochs.
    dtype : str or numpy dtype
        Compute dtype.

    Returns
    -------
    text : str
    """
    units = layer_units(data.X_train.shape[1], hidden, len(np.unique(data.y_train)))
    text = (f"fastmlp bench: {data.name}, {data.X_train.shape[0]} training / "
            f"{data.X_test.shape[0]} test rows; MLP {'-'.join(map(str, units))} logistic, "
            f"SGD lr 0.1 Nesterov momentum 0.9, alpha 1e-4, {np.dtype(dtype).name}; "
            f"{epochs} timed epochs per backend and batch size.")
    if data.notice:
        text = f"NOTE: {data.notice}\n\n{text}"
    return text


def _format_table(headers, lines):
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *lines)]

    def fmt(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines])


def format_report(results):
    """The results table, the warm-up line and the GEMM line, as text.

    Parameters
    ----------
    results : dict
        From :func:`run_bench`.

    Returns
    -------
    text : str
    """
    headers = ["backend", "batch", "s/epoch", "speedup", "GFLOP/s", "of GEMM",
               "final loss", "test acc"]
    lines = [[r["backend"], r["batch_size"], f"{r['seconds_per_epoch']:.3f}",
              f"{r['speedup_vs_numpy']:.2f}x", f"{r['gflops_per_second']:.1f}",
              f"{100 * r['gemm_fraction']:.1f}%", f"{r['final_loss']:.5f}",
              f"{r['test_accuracy']:.4f}"] for r in results["rows"]]
    warmups = {}
    for r in results["rows"]:
        warmups.setdefault(r["backend"], []).append(r["warmup_seconds"])
    warm_text = ", ".join(f"{b} {sum(w):.2f} s" for b, w in warmups.items())
    gemm = results["gemm"]
    n = gemm["n"]
    return "\n".join([
        _format_table(headers, lines),
        "",
        "s/epoch: median of the timed epochs; speedup: numpy's s/epoch / this row's, same "
        "batch size.",
        f"Warm-up, not in s/epoch (Numba JIT compile or cache load on its first call): "
        f"{warm_text}.",
        f"Large-GEMM rate of this machine: {gemm['gflops_per_second']:.1f} GFLOP/s (NumPy "
        f"{gemm['dtype']} {n}x{n}x{n} matmul, best of 3); one epoch = "
        f"{results['epoch_flops'] / 1e9:.2f} GFLOP, so 'of GEMM' = GFLOP/s / "
        f"{gemm['gflops_per_second']:.1f}.",
        *_skipped_lines(results["rows"], results["epoch_flops"]),
    ])


def _skipped_lines(rows, flops):
    """numba's skipped first-layer work and the GEMM fraction of what it executes."""
    numba = [r for r in rows if "skipped_flops" in r and r["skipped_flops"] > 0]
    if not numba:
        return []
    parts = [f"batch {r['batch_size']}: {r['skipped_flops'] / 1e9:.1f} GFLOP skipped, "
             f"{100 * r['executed_gemm_fraction']:.1f}% of GEMM executed" for r in numba]
    return [f"numba skips the first-layer terms of input columns that are zero in every "
            f"row of a batch (estimated, of the {flops / 1e9:.2f}): " + "; ".join(parts) + "."]


def _agg_figure():
    """A matplotlib Figure drawn by Agg (no display), or None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def write_plot(results, path):
    """Plot seconds per epoch by batch size and the loss curves to a PNG.

    Parameters
    ----------
    results : dict
        From :func:`run_bench`.
    path : str or os.PathLike
        Output file.

    Returns
    -------
    written : bool
        False when matplotlib (the ``plot`` extra) is not installed.
    """
    fig = _agg_figure()
    if fig is None:
        return False
    from matplotlib.ticker import MaxNLocator, NullLocator

    rows = results["rows"]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    batch_sizes = list(dict.fromkeys(r["batch_size"] for r in rows))
    colors = {b: f"C{i}" for i, b in enumerate(backends)}
    # The curves of all backends coincide, so distinct markers keep each one visible.
    markers = {b: "oxs+^v"[i % 6] for i, b in enumerate(backends)}
    styles = ["-", "--", ":", "-."]
    ax_time, ax_loss = fig.subplots(1, 2)
    for backend in backends:
        mine = [r for r in rows if r["backend"] == backend]
        ax_time.plot([r["batch_size"] for r in mine], [r["seconds_per_epoch"] for r in mine],
                     "o-", color=colors[backend], label=backend)
        for r in mine:
            style = styles[batch_sizes.index(r["batch_size"]) % len(styles)]
            ax_loss.plot(range(1, len(r["loss_curve"]) + 1), r["loss_curve"], style,
                         marker=markers[backend], color=colors[backend], fillstyle="none",
                         label=f"{backend}, batch {r['batch_size']}")
    cfg = results["config"]
    ax_time.set(xscale="log", xlabel="batch size", ylabel="seconds per epoch (median)",
                title=f"{cfg['dataset']}, {'-'.join(map(str, cfg['layer_units']))}, "
                      f"{cfg['dtype']}")
    ax_time.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax_time.xaxis.set_minor_locator(NullLocator())
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_time.set_ylim(bottom=0)
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="training loss",
                title="loss curves (same start weights and shuffles)")
    for ax in (ax_time, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)
    return True


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
          out="fastmlp-bench.png", json_path=None, with_sklearn=False, data_home=None,
          download=False, seed=0, progress=None, gemm_size=2048):
    """Run the whole ``fastmlp bench`` command: load, train, print, plot, save.

    Parameters
    ----------
    hidden : sequence of int, default=(128,)
        Hidden layer widths.
    batch_sizes : sequence of int, optional
        Default ``(32, 128, 512)``, or ``(128,)`` with ``quick``.
    epochs : int, optional
        Timed epochs per backend and batch size; see :func:`default_epochs`.
    dtype : {"float32", "float64"}, default="float32"
        Compute dtype.
    quick : bool, default=False
        Train on the first 10000 rows only, with the quick defaults above.
    out : str or os.PathLike, default="fastmlp-bench.png"
        PNG written when matplotlib is installed.
    json_path : str or os.PathLike, optional
        Also write the results as JSON there.
    with_sklearn : bool, default=False
        Also time scikit-learn's MLPClassifier.
    data_home : str or os.PathLike, optional
        MNIST directory (see :func:`fastmlp.datasets.get_data_home`).
    download : bool, default=False
        Download missing MNIST files instead of falling back to digits.
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
    data = load_bench_data(data_home, dtype, QUICK_TRAIN_ROWS if quick else None, download)
    batch_sizes = tuple(batch_sizes) if batch_sizes else ((128,) if quick else (32, 128, 512))
    epochs = epochs or default_epochs(data.name, quick)
    print(describe_run(data, hidden, epochs, dtype), flush=True)

    results = run_bench(data, hidden, batch_sizes, epochs, dtype, with_sklearn, seed,
                        gemm_size, progress)
    print("\n" + format_report(results))

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
