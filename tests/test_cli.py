"""Tests for the ``fastmlp`` command line and its ``bench`` sub-command.

The MNIST runs read the real files from the directory in the FASTMLP_DATA
environment variable and are skipped when they are not there; the download
tests serve those files from an HTTP server on 127.0.0.1. The fallback tests
point every MNIST location at empty directories and every mirror at
127.0.0.1, so they use scikit-learn's bundled digits data set and never reach
the network. No test asserts anything about speed: the machine may be shared.
"""

import contextlib
import functools
import http.server
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import config, datasets
from fastmlp.bench import cli
from fastmlp.bench import data as bench_data
from fastmlp.bench import run as bench
from fastmlp.bench.data import load_bench_data
from fastmlp.bench.run import epoch_flops, layer_units, skipped_flops

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_DIR = os.environ.get("FASTMLP_DATA")
HAVE_MNIST = bool(MNIST_DIR) and all((Path(MNIST_DIR) / n).is_file() for n in MNIST_NAMES)
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST, reason="needs the four MNIST files in the directory named by FASTMLP_DATA")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB,
                                      reason="matplotlib (the 'plot' extra) is not installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL_GEMM = ["--gemm-size", "512"]  # the GEMM rate itself is not under test; keep it cheap


def console_command():
    """The installed ``fastmlp`` console script, else ``python -m fastmlp``."""
    # The console script sits next to the interpreter of the (editable) install.
    script = shutil.which("fastmlp", path=str(Path(sys.executable).parent)) or \
        shutil.which("fastmlp")
    return [script] if script else [sys.executable, "-m", "fastmlp"]


def run_cli(args):
    """Run the ``fastmlp`` command line in-process; return (status, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(args)
    return status, out.getvalue()


def table_rows(text):
    """The results table: its column names, and its data lines split into cells, by library."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("library"))
    # Columns are separated by two or more spaces; names like "vs NumPy" hold one.
    headers = [h for h in lines[start].split("  ") if h.strip()]
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = [c.strip() for c in line.split("  ") if c.strip()]
        rows.setdefault(cells[0], []).append(dict(zip([h.strip() for h in headers], cells)))
    return [h.strip() for h in headers], rows


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail loudly if anything tries to reach a host other than 127.0.0.1."""
    real_urlopen = urllib.request.urlopen

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        host = urllib.parse.urlsplit(url).hostname
        assert host == "127.0.0.1", f"test tried to reach the network: {url}"
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1; ``serve(directory) -> base URL``."""
    running = []

    def start(directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in running:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_mnist(tmp_path, monkeypatch, serve):
    """Every place MNIST could come from is an empty directory, and the only mirror is empty."""
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    monkeypatch.setenv("FASTMLP_DATA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    monkeypatch.setattr(datasets, "MIRRORS", (serve(empty_mirror),))
    return empty


# ---- the console entry points --------------------------------------------------------

def test_console_script_help():
    result = subprocess.run(console_command() + ["--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bench" in result.stdout


def test_module_bench_help_lists_every_option():
    result = subprocess.run([sys.executable, "-m", "fastmlp", "bench", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--hidden", "--batch-sizes", "--epochs", "--dtype", "--quick", "--out",
                   "--json", "--sklearn", "--no-sklearn", "--data-home", "--download",
                   "--no-download"):
        assert option in result.stdout


@pytest.mark.parametrize("args", [["bench", "--hidden", "0"],
                                  ["bench", "--batch-sizes", "32,x"],
                                  ["bench", "--epochs", "2,3"],
                                  ["bench", "--dtype", "float16"],
                                  []])
def test_bad_arguments_exit_with_usage_error(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2
    assert "usage: fastmlp" in capsys.readouterr().err


# ---- the flop count ------------------------------------------------------------------

def test_epoch_flops_counts_4_per_first_layer_weight_and_6_per_later_weight():
    units = layer_units(784, [128], 10)
    assert units == [784, 128, 10]
    assert epoch_flops(units, 60000) == 60000 * (4 * 784 * 128 + 6 * 128 * 10)
    assert abs(epoch_flops(units, 60000) / 1e9 - 24.5) < 0.05
    # Two hidden layers; binary problems have a single sigmoid output.
    units = layer_units(20, [8, 4], 2)
    assert units == [20, 8, 4, 1]
    assert epoch_flops(units, 3) == 3 * (4 * 160 + 6 * (32 + 4))


def test_skipped_flops_counts_the_zero_columns_of_each_batch_but_the_first(monkeypatch):
    monkeypatch.setattr(config, "TILED_PRODUCTS", True)
    monkeypatch.setattr(config, "MIN_ZERO_COLUMN_INPUTS", 32)
    units = layer_units(32, [5], 3)
    X = np.ones((40, 32))
    assert skipped_flops(X, units, 8) == 0  # dense
    X[:, 30] = 0.0  # under 1/16 of the columns: the kernel does not look for them
    assert skipped_flops(X, units, 8) == 0
    X[:, :8] = 0.0  # columns 0-7, 30: zero in every batch; the first batch uses all columns
    assert skipped_flops(X, units, 8) == 4 * 9 * 5 * 32
    order = np.random.default_rng(0).permutation(40)
    X[order[8], 30] = 1.0  # column 30 now used in the second batch (of the same order)
    assert skipped_flops(X, units, 8) == 4 * 9 * 5 * 32 - 4 * 5 * 8
    assert skipped_flops(X, units, 7) == 4 * 9 * 5 * (40 - 7) - 4 * 5 * 7  # last batch of 5
    # The kernel does not look: narrower inputs, BLAS products, sparse X.
    assert skipped_flops(sp.csr_matrix(X), units, 8) == 0
    monkeypatch.setattr(config, "MIN_ZERO_COLUMN_INPUTS", 33)
    assert skipped_flops(X, units, 8) == 0
    monkeypatch.setattr(config, "MIN_ZERO_COLUMN_INPUTS", 32)
    monkeypatch.setattr(config, "TILED_PRODUCTS", False)
    assert skipped_flops(X, units, 8) == 0


# ---- a real quick run on MNIST ---------------------------------------------------------

QUICK_ARGS = ["--quick", "--no-progress", *SMALL_GEMM]


@pytest.fixture(scope="module")
def mnist_quick(tmp_path_factory):
    """One ``fastmlp bench --quick`` on MNIST, in-process: (status, stdout, json, png)."""
    if not HAVE_MNIST:
        pytest.skip("needs the four MNIST files in the directory named by FASTMLP_DATA")
    tmp = tmp_path_factory.mktemp("bench")
    png, report = tmp / "bench.png", tmp / "bench.json"
    # Two batch sizes instead of the quick default's three keep the test short.
    status, text = run_cli(["bench", *QUICK_ARGS, "--batch-sizes", "128,512", "--data-home",
                            MNIST_DIR, "--out", str(png), "--json", str(report)])
    return status, text, json.loads(report.read_text()), png


@needs_mnist
def test_quick_mnist_prints_one_speedup_column_per_reference(mnist_quick):
    status, text, results, _ = mnist_quick
    assert status == 0
    assert results["config"]["notice"] is None and "digits" not in text  # no fallback
    assert f"MNIST (found in {MNIST_DIR})" in text
    assert "the first 10000 of 60000 training" in text
    headers, rows = table_rows(text)
    assert headers == ["library", "batch", "s/epoch", "vs NumPy", "vs scikit-learn",
                       "GFLOP/s", "of GEMM", "final loss", "test acc"]
    assert set(rows) == {"fastmlp", "NumPy", "scikit-learn"}  # scikit-learn by default
    # The header says what the columns are.
    assert "one per reference: 'vs NumPy' and 'vs scikit-learn'" in text
    by_batch = {(lib, int(c["batch"])): c for lib, cells in rows.items() for c in cells}
    for batch in (128, 512):
        assert by_batch["NumPy", batch]["vs NumPy"] == "1.00x"
        assert by_batch["scikit-learn", batch]["vs scikit-learn"] == "1.00x"
        for lib in rows:
            for column in ("vs NumPy", "vs scikit-learn"):
                assert by_batch[lib, batch][column].endswith("x")
        # Each column is the reference's time over the row's, so for any row and the
        # NumPy row, the two columns' ratios agree: (N/x) / (S/x) = (N/S) = the NumPy
        # row's 'vs scikit-learn'. Checked in the JSON at full precision.
        fast = next(r for r in results["rows"]
                    if r["library"] == "fastmlp" and r["batch_size"] == batch)
        ref = {r["library"]: r["seconds_per_epoch"] for r in results["rows"]
               if r["batch_size"] == batch}
        assert fast["speedup_vs_numpy"] == pytest.approx(ref["numpy"] / ref["fastmlp"])
        assert fast["speedup_vs_sklearn"] == pytest.approx(ref["sklearn"] / ref["fastmlp"])
    assert "Large-GEMM rate" in text and "Warm-up" in text


@needs_mnist
def test_quick_mnist_json_has_the_numbers(mnist_quick):
    _, text, results, _ = mnist_quick
    cfg = results["config"]
    assert cfg["dataset"] == "MNIST" and cfg["notice"] is None
    assert cfg["source"] == f"found in {MNIST_DIR}"
    assert (cfg["n_train"], cfg["n_test"], cfg["n_available"]) == (10000, 10000, 60000)
    assert cfg["layer_units"] == [784, 128, 10] and cfg["epochs"] == 2
    assert cfg["libraries"] == ["fastmlp", "numpy", "sklearn"]
    assert results["epoch_flops"] == 10000 * (4 * 784 * 128 + 6 * 128 * 10)
    assert results["gemm"]["gflops_per_second"] > 0
    assert results["machine"]["cpu"]
    for row in results["rows"]:
        assert len(row["epoch_seconds"]) == 2 and len(row["loss_curve"]) == 2
        assert min(row["epoch_seconds"]) <= row["seconds_per_epoch"] <= max(row["epoch_seconds"])
        assert row["gemm_fraction"] == pytest.approx(
            row["gflops_per_second"] / results["gemm"]["gflops_per_second"])
        if row["library"] == "fastmlp":
            # MNIST: about a third of the first layer's work is on pixels blank in a whole batch.
            assert 0.2 < row["skipped_flops"] / results["epoch_flops"] < 0.5
            assert row["executed_gemm_fraction"] == pytest.approx(
                row["gemm_fraction"] * (1 - row["skipped_flops"] / results["epoch_flops"]))
            assert "GFLOP skipped" in text
        assert row["final_loss"] == row["loss_curve"][-1]
        assert row["loss_curve"][1] < row["loss_curve"][0]
        assert row["test_accuracy"] > 0.75  # chance is 0.1
        # The printed table shows the same numbers.
        assert f"{row['final_loss']:.5f}" in text and f"{row['test_accuracy']:.4f}" in text


@needs_mnist
def test_quick_mnist_libraries_follow_the_same_trajectory(mnist_quick):
    # Same starting weights and same shuffles: the libraries differ only by float32
    # rounding (different summation orders), which stays near 1e-7 relative here.
    # A different start or shuffle would change the loss by percents.
    for batch in (128, 512):
        rows = {r["library"]: r for r in mnist_quick[2]["rows"] if r["batch_size"] == batch}
        for lib in ("fastmlp", "numpy"):
            for a, b in zip(rows[lib]["loss_curve"], rows["sklearn"]["loss_curve"]):
                assert abs(a - b) / abs(b) < 1e-3
            assert abs(rows[lib]["test_accuracy"] - rows["sklearn"]["test_accuracy"]) <= 0.002


@needs_mnist
@needs_matplotlib
def test_quick_mnist_writes_the_plot(mnist_quick):
    _, text, results, png = mnist_quick
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert results["plot"] == str(png.resolve())
    assert f"Plot written to {png.resolve()}" in text


# ---- MNIST downloaded by default, from a mirror on 127.0.0.1 ---------------------------

TINY_RUN = ["--quick", "--batch-sizes", "512", "--epochs", "1", "--hidden", "8",
            "--no-sklearn", "--no-progress", *SMALL_GEMM]


@needs_mnist
def test_missing_mnist_is_downloaded_by_default(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(datasets, "MIRRORS", (serve(MNIST_DIR),))
    home = tmp_path / "mnist-home"
    monkeypatch.setenv("FASTMLP_DATA", str(home))
    report = tmp_path / "bench.json"
    status, text = run_cli(["bench", *TINY_RUN, "--out", str(tmp_path / "b.png"),
                            "--json", str(report)])
    assert status == 0
    assert f"Downloading MNIST (about 11 MB) into {home}" in text
    assert f"MNIST (downloaded into {home})" in text and "digits" not in text
    for name in MNIST_NAMES:  # the same bytes as the mirror's
        assert (home / name).read_bytes() == (Path(MNIST_DIR) / name).read_bytes()
    results = json.loads(report.read_text())
    assert results["config"]["dataset"] == "MNIST"
    assert results["config"]["source"] == f"downloaded into {home}"
    # A second run finds the files and does not download again.
    monkeypatch.setattr(datasets, "MIRRORS", ())
    status, text = run_cli(["bench", *TINY_RUN, "--out", str(tmp_path / "b.png")])
    assert "Downloading" not in text and f"MNIST (found in {home})" in text


def test_offline_falls_back_to_digits_and_says_why(no_mnist, tmp_path):
    [mirror] = datasets.MIRRORS  # serves an empty directory: every file is a 404
    report = tmp_path / "bench.json"
    status, text = run_cli(["bench", *TINY_RUN, "--out", str(tmp_path / "b.png"),
                            "--json", str(report)])
    assert status == 0
    assert f"Downloading MNIST (about 11 MB) into {no_mnist}" in text
    assert "MNIST could not be downloaded" in text and "digits" in text
    assert f"{mirror}train-images-idx3-ubyte.gz" in text  # the reason names what was tried
    assert "--no-download" not in text.split("fastmlp bench:")[0]
    results = json.loads(report.read_text())
    assert results["config"]["dataset"] == "digits"
    assert "could not be downloaded" in results["config"]["notice"]
    assert not any(no_mnist.iterdir())  # no partial files left behind


def test_stalled_mirror_times_out_into_the_fallback(no_mnist, monkeypatch):
    # A mirror that accepts connections and never answers.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stall)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(datasets, "MIRRORS",
                            (f"http://127.0.0.1:{server.server_address[1]}/",))
        monkeypatch.setattr(bench_data, "DOWNLOAD_TIMEOUT", 0.5)
        data = load_bench_data()
    finally:
        _Stall.release.set()
        server.shutdown()
        server.server_close()
    assert data.name == "digits"
    assert "could not be downloaded" in data.notice and "timed out" in data.notice


class _Stall(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_GET(self):
        self.release.wait(30)

    def log_message(self, *args):
        pass


def test_no_download_never_touches_the_network(no_mnist, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: calls.append(a))
    status, text = run_cli(["bench", *TINY_RUN, "--no-download",
                            "--out", str(tmp_path / "b.png")])
    assert status == 0 and calls == []
    assert "Downloading" not in text
    assert "MNIST is not available and --no-download was given" in text
    assert "rerun without --no-download" in text
    assert "fastmlp bench: digits" in text


# ---- no MNIST: the digits fallback -----------------------------------------------------

def test_fallback_to_digits_through_the_console_script(no_mnist, tmp_path):
    report = tmp_path / "bench.json"
    env = dict(os.environ)  # the no_mnist fixture already emptied FASTMLP_DATA and the cache
    result = subprocess.run(
        console_command() + ["bench", "--quick", "--batch-sizes", "64", "--no-download",
                             "--out", str(tmp_path / "b.png"), "--json", str(report),
                             *SMALL_GEMM],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "MNIST is not available" in out and "digits" in out
    # It says how to get MNIST: where to put the files, FASTMLP_DATA, or downloading.
    assert str(no_mnist) in out and "FASTMLP_DATA" in out and "--no-download" in out
    results = json.loads(report.read_text())
    assert results["config"]["dataset"] == "digits"
    assert results["config"]["layer_units"] == [64, 128, 10]
    assert {r["library"] for r in results["rows"]} == {"fastmlp", "numpy", "sklearn"}
    for row in results["rows"]:
        assert row["test_accuracy"] > 0.8


def test_corrupt_mnist_falls_back_with_the_reason(tmp_path):
    for name in MNIST_NAMES:
        (tmp_path / name).write_bytes(b"not a gzip file")
    data = load_bench_data(data_home=tmp_path)
    assert data.name == "digits"
    assert data.X_train.shape == (1347, 64) and data.X_test.shape == (450, 64)
    assert 0 <= data.X_train.min() and data.X_train.max() <= 1
    assert "MNIST is not usable" in data.notice and "MD5 mismatch" in data.notice


def test_without_matplotlib_the_plot_is_skipped(no_mnist, tmp_path, monkeypatch):
    # None in sys.modules makes any import of these modules raise ImportError.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    png = tmp_path / "bench.png"
    status, text = run_cli(["bench", *TINY_RUN, "--no-download", "--out", str(png)])
    assert status == 0
    assert "matplotlib is not installed" in text and "pip install 'fastmlp[plot]'" in text
    assert not png.exists()
    headers, rows = table_rows(text)
    assert set(rows) == {"fastmlp", "NumPy"}


def test_no_sklearn_drops_its_row_and_column(no_mnist):
    status, text = run_cli(["bench", *TINY_RUN, "--no-download", "--out", os.devnull])
    headers, rows = table_rows(text)
    assert "vs scikit-learn" not in headers and "vs NumPy" in headers
    assert set(rows) == {"fastmlp", "NumPy"}
    assert "one per reference: 'vs NumPy' = how many times faster" in text


def test_busy_machine_is_called_out(no_mnist, monkeypatch):
    assert bench.busy_note(0.2, 2.5, 2) is None  # the run's own threads on 2 cores
    assert bench.busy_note(None, None, 2) is None  # no load average on this OS
    assert "busy" in bench.busy_note(1.6, 2.0, 2)  # someone else was running before
    assert "busy" in bench.busy_note(0.1, 3.5, 2)  # ... or joined during the run
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 8.0, 7.0))
    status, text = run_cli(["bench", *TINY_RUN, "--no-download", "--out", os.devnull])
    assert status == 0
    assert "NOTE: the machine was busy while this ran (load average 9.0, 9.0" in text
    assert "unreliable" in text


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_run_bench_libraries_match_sklearn(no_mnist, dtype):
    data = load_bench_data(dtype=dtype, download=False)
    results = bench.run_bench(data, hidden=(16, 8), batch_sizes=(64,), epochs=2, dtype=dtype,
                              gemm_size=128, progress=False)
    assert results["config"]["layer_units"] == [64, 16, 8, 10]
    rows = {r["library"]: r for r in results["rows"]}
    assert set(rows) == {"fastmlp", "numpy", "sklearn"}
    reference = rows["sklearn"]["loss_curve"]
    tol = 1e-4 if dtype == "float32" else 1e-10
    for library in ("fastmlp", "numpy"):
        assert rows[library]["loss_curve"] == pytest.approx(reference, rel=tol)
    assert rows["numpy"]["speedup_vs_numpy"] == 1.0
    assert rows["sklearn"]["speedup_vs_sklearn"] == 1.0


# ---- the plot ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_results():
    """A real two-batch-size run on the first 600 digits rows (no MNIST needed)."""
    data = load_bench_data(data_home=os.devnull, n_train=600, download=False)
    return bench.run_bench(data, hidden=(8,), batch_sizes=(32, 128), epochs=3,
                           gemm_size=128, progress=False)


@needs_matplotlib
def test_plot_bars_carry_the_time_ratio_to_fastmlp(small_results):
    from fastmlp.bench.plot import make_figure

    fig = make_figure(small_results)
    ax_time, ax_loss = fig.axes[:2]
    seconds = {(r["library"], r["batch_size"]): r["seconds_per_epoch"]
               for r in small_results["rows"]}
    # One bar per library and batch size, as tall as its seconds per epoch.
    heights = sorted(p.get_height() for p in ax_time.patches)
    assert heights == pytest.approx(sorted(seconds.values()))
    labels = [t.get_text() for t in ax_time.texts]
    expected = [seconds[lib, b] / seconds["fastmlp", b]
                for lib in ("fastmlp", "numpy", "sklearn") for b in (32, 128)]
    assert [float(t.rstrip("x")) for t in labels] == pytest.approx(expected, abs=0.5e-2,
                                                                  rel=0.05)
    assert labels[:2] == ["1.00x", "1.00x"]
    assert [t.get_text() for t in ax_time.get_xticklabels()] == ["batch 32", "batch 128"]
    fig.canvas.draw()
    # The legend sits above the bars, so it hides none of them.
    assert ax_time.get_legend().get_window_extent().y0 >= ax_time.get_window_extent().y1


@needs_matplotlib
def test_plot_loss_legend_sits_outside_the_curves(small_results):
    from fastmlp.bench.plot import make_figure

    fig = make_figure(small_results)
    fig.canvas.draw()
    ax_loss = fig.axes[1]
    legend = ax_loss.get_legend().get_window_extent()
    axes = ax_loss.get_window_extent()
    assert legend.x0 >= axes.x1  # to the right of the plotting area: it covers no curve
    entries = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert entries == ["fastmlp", "NumPy", "scikit-learn", "batch 32", "batch 128"]


@needs_matplotlib
def test_plot_title_says_when_a_subset_was_used(small_results):
    from fastmlp.bench.plot import make_figure

    title = make_figure(small_results)._suptitle.get_text()
    assert title.startswith("digits (first 600 of 1,347 training rows), MLP 64-8-10")
    assert "median of 3 epochs" in title


@needs_matplotlib
def test_plot_says_when_the_machine_was_busy(small_results):
    from fastmlp.bench.plot import make_figure

    def footers(fig):
        return [t for t in fig.texts if t is not fig._suptitle]

    assert not footers(make_figure(small_results))  # run_bench alone records no load
    busy = dict(small_results, machine=dict(small_results["machine"],
                                            load_average=[6.0, 7.5], cpu_count=2))
    [footer] = footers(make_figure(busy))
    assert "busy" in footer.get_text() and "6.0, 7.5 on 2 cores" in footer.get_text()
