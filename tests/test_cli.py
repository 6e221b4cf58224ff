"""Tests for the ``fastmlp`` command line and its ``bench`` sub-command.

The MNIST run reads the real files from the directory in the FASTMLP_DATA
environment variable and is skipped when they are not there. The fallback
tests point every MNIST location at empty directories, so they use
scikit-learn's bundled digits data set and never touch the network.
No test asserts anything about speed: the machine may be shared.
"""

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import config
from fastmlp.bench import cli
from fastmlp.bench import run as bench
from fastmlp.bench.run import epoch_flops, layer_units, load_bench_data, skipped_flops

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
    """The data lines of the results table, split into cells, by backend."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("backend"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows.setdefault(cells[0], []).append(cells)
    return lines[start].split(), rows


@pytest.fixture
def no_mnist(tmp_path, monkeypatch):
    """Every place MNIST could come from is an empty directory."""
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    monkeypatch.setenv("FASTMLP_DATA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
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
                   "--json", "--with-sklearn", "--data-home", "--download"):
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

@pytest.fixture(scope="module")
def mnist_quick(tmp_path_factory):
    """One ``fastmlp bench --quick`` on MNIST, in-process: (status, stdout, json, png)."""
    if not HAVE_MNIST:
        pytest.skip("needs the four MNIST files in the directory named by FASTMLP_DATA")
    tmp = tmp_path_factory.mktemp("bench")
    png, report = tmp / "bench.png", tmp / "bench.json"
    status, text = run_cli(["bench", "--quick", "--data-home", MNIST_DIR, "--out", str(png),
                            "--json", str(report), "--no-progress", *SMALL_GEMM])
    return status, text, json.loads(report.read_text()), png


@needs_mnist
def test_quick_mnist_prints_table_with_both_backends(mnist_quick):
    status, text, results, _ = mnist_quick
    assert status == 0
    assert "NOTE" not in text  # no fallback
    headers, rows = table_rows(text)
    assert headers == ["backend", "batch", "s/epoch", "speedup", "GFLOP/s", "of", "GEMM",
                       "final", "loss", "test", "acc"]
    assert set(rows) == {"numba", "numpy"}
    for backend, cells in rows.items():
        assert [c[1] for c in cells] == ["128"]  # the quick batch size
        assert cells[0][3].endswith("x") and float(cells[0][3][:-1]) > 0
    assert rows["numpy"][0][3] == "1.00x"  # numpy is the reference of the speedup column
    assert "Large-GEMM rate" in text and "Warm-up" in text


@needs_mnist
def test_quick_mnist_json_has_the_numbers(mnist_quick):
    _, text, results, _ = mnist_quick
    cfg = results["config"]
    assert cfg["dataset"] == "MNIST" and cfg["notice"] is None
    assert (cfg["n_train"], cfg["n_test"]) == (10000, 10000)
    assert cfg["layer_units"] == [784, 128, 10] and cfg["epochs"] == 2
    assert results["epoch_flops"] == 10000 * (4 * 784 * 128 + 6 * 128 * 10)
    assert results["gemm"]["gflops_per_second"] > 0
    for row in results["rows"]:
        assert len(row["epoch_seconds"]) == 2 and len(row["loss_curve"]) == 2
        assert min(row["epoch_seconds"]) <= row["seconds_per_epoch"] <= max(row["epoch_seconds"])
        assert row["gemm_fraction"] == pytest.approx(
            row["gflops_per_second"] / results["gemm"]["gflops_per_second"])
        if row["backend"] == "numba":
            # MNIST: about a third of the first layer's work is on pixels blank in a whole batch.
            assert 0.2 < row["skipped_flops"] / results["epoch_flops"] < 0.5
            assert row["executed_gemm_fraction"] == pytest.approx(
                row["gemm_fraction"] * (1 - row["skipped_flops"] / results["epoch_flops"]))
            assert "GFLOP skipped" in text
        assert row["final_loss"] == row["loss_curve"][-1]
        assert row["loss_curve"][1] < row["loss_curve"][0]
        assert row["test_accuracy"] > 0.8  # chance is 0.1
        # The printed table shows the same numbers.
        assert f"{row['final_loss']:.5f}" in text and f"{row['test_accuracy']:.4f}" in text


@needs_mnist
def test_quick_mnist_backends_follow_the_same_trajectory(mnist_quick):
    # Same starting weights and same shuffles: the backends differ only by float32
    # rounding (different summation orders), which stays near 1e-7 relative here.
    # A different start or shuffle would change the loss by percents.
    rows = {r["backend"]: r for r in mnist_quick[2]["rows"]}
    for a, b in zip(rows["numba"]["loss_curve"], rows["numpy"]["loss_curve"]):
        assert abs(a - b) / abs(b) < 1e-3
    assert abs(rows["numba"]["test_accuracy"] - rows["numpy"]["test_accuracy"]) <= 0.002


@needs_mnist
@needs_matplotlib
def test_quick_mnist_writes_the_plot(mnist_quick):
    _, text, results, png = mnist_quick
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert results["plot"] == str(png.resolve())
    assert f"Plot written to {png.resolve()}" in text


# ---- no MNIST: the digits fallback -----------------------------------------------------

def test_fallback_to_digits_through_the_console_script(no_mnist, tmp_path):
    report = tmp_path / "bench.json"
    env = dict(os.environ)  # the no_mnist fixture already emptied FASTMLP_DATA and the cache
    result = subprocess.run(
        console_command() + ["bench", "--quick", "--out", str(tmp_path / "b.png"), "--json",
                             str(report), *SMALL_GEMM],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "MNIST is not available" in out and "digits" in out
    # It says how to get MNIST: where to put the files, FASTMLP_DATA, or --download.
    assert str(no_mnist) in out and "FASTMLP_DATA" in out and "--download" in out
    results = json.loads(report.read_text())
    assert results["config"]["dataset"] == "digits"
    assert results["config"]["layer_units"] == [64, 128, 10]
    assert {r["backend"] for r in results["rows"]} == {"numba", "numpy"}
    for row in results["rows"]:
        assert row["test_accuracy"] > 0.8


def test_corrupt_mnist_falls_back_with_the_reason(tmp_path):
    for name in MNIST_NAMES:
        (tmp_path / name).write_bytes(b"not a gzip file")
    data = load_bench_data(data_home=tmp_path)
    assert data.name == "digits"
    assert data.X_train.shape == (1347, 64) and data.X_test.shape == (450, 64)
    assert 0 <= data.X_train.min() and data.X_train.max() <= 1
    assert "MD5 mismatch" in data.notice


def test_without_matplotlib_the_plot_is_skipped(no_mnist, tmp_path, monkeypatch):
    # None in sys.modules makes any import of these modules raise ImportError.
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    png = tmp_path / "bench.png"
    status, text = run_cli(["bench", "--quick", "--epochs", "2", "--out", str(png),
                            "--no-progress", *SMALL_GEMM])
    assert status == 0
    assert "matplotlib is not installed" in text
    assert not png.exists()
    _, rows = table_rows(text)
    assert set(rows) == {"numba", "numpy"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_run_bench_with_sklearn_matches_fastmlp(no_mnist, dtype):
    data = load_bench_data(dtype=dtype)
    results = bench.run_bench(data, hidden=(16, 8), batch_sizes=(64,), epochs=2, dtype=dtype,
                              with_sklearn=True, gemm_size=128, progress=False)
    assert results["config"]["layer_units"] == [64, 16, 8, 10]
    rows = {r["backend"]: r for r in results["rows"]}
    assert set(rows) == {"numba", "numpy", "sklearn"}
    reference = rows["sklearn"]["loss_curve"]
    tol = 1e-4 if dtype == "float32" else 1e-10
    for backend in ("numba", "numpy"):
        assert rows[backend]["loss_curve"] == pytest.approx(reference, rel=tol)
    assert rows["numpy"]["speedup_vs_numpy"] == 1.0
