"""Run every example in its quick mode, in a fresh process, and check what it prints.

Each example runs as a user would run it (``python examples/NAME.py --quick``)
from a temporary working directory, so paths relative to the repository
would fail here. NUMBA_CACHE_DIR and FASTMLP_DATA pass through the
environment.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastmlp.datasets import mnist_available

# Each runs a script or a child process for tens of seconds.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def assert_png_written(path, lines):
    """The example's figure exists as a PNG, or the example said matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert any("matplotlib is not installed" in line for line in lines)
    else:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run_example(name, tmp_path, *args, **env_overrides):
    """Run ``examples/<name>.py --quick *args`` with cwd ``tmp_path``; return its stdout lines."""
    env = dict(os.environ, MPLBACKEND="Agg", **env_overrides)
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.splitlines()


def test_xor_learns_the_truth_table_and_writes_the_plot(tmp_path):
    lines = run_example("plot_xor", tmp_path)
    row = re.compile(r"^\s*([01])\s+([01])\s*\|\s*([01])\s*\|\s*([01])\s*\|"
                     r"\s*([0-9.]+)\s+([0-9.]+)\s*$")
    rows = [m.groups() for m in map(row.match, lines) if m]
    assert len(rows) == 4, lines
    seen = set()
    for x1, x2, target, pred, out0, out1 in rows:
        seen.add((x1, x2))
        assert int(target) == int(x1) ^ int(x2)  # the table shows XOR itself
        assert pred == target  # the network got this row right
        assert (float(out1) > float(out0)) == (pred == "1")  # prediction = larger output
    assert len(seen) == 4
    assert "correct: 4/4" in lines
    assert re.search(r"2-3-2 network, output activation logistic", "\n".join(lines))
    assert_png_written(tmp_path / "xor_decision_boundary.png", lines)  # default --out: cwd


def _worked_example_numbers():
    # Independent plain-NumPy recomputation, the notes' layout (rows = output units).
    W1 = np.array([[0.1, 0.3, 0.8, -0.4], [-0.3, -0.2, 0.5, 0.5],
                   [-0.3, 0.0, 0.5, 0.4], [0.2, 0.5, -0.9, 0.7]])
    W2 = np.array([[0.5, 0.8, 0.2, 0.4], [0.5, 0.2, 0.3, -0.5]])
    x, y = np.array([2.0, 5, 3, 3]), np.array([1.0, 0])

    def loss(W2):
        h = 1 / (1 + np.exp(-W1 @ x))
        a = W2 @ h
        p = np.exp(a) / np.exp(a).sum()
        return ((y - p) ** 2).sum(), h, p

    _, h, p = loss(W2)
    eps = 1e-6
    plus, minus = W2.copy(), W2.copy()
    plus[0, 1] += eps
    minus[0, 1] -= eps
    squared = (loss(plus)[0] - loss(minus)[0]) / (2 * eps)
    return h, p, squared, (p[0] - y[0]) * h[1]


def test_two_layer_worked_example_prints_the_notes_numbers_and_correct_gradients(tmp_path):
    lines = run_example("plot_two_layer_worked_example", tmp_path)
    out = "\n".join(lines)
    assert_png_written(tmp_path / "worked_example_w212.png", lines)

    def vector(label):
        m = re.search(rf"{label}\s*=\s*\[([-0-9. ]+)\]", out)
        assert m, f"no {label} line in:\n{out}"
        return m.group(1).split()

    # The notes' forward pass, to the notes' two decimals.
    assert vector(r"a1 = x @ W1") == ["2.90", "1.40", "2.10", "2.30"]
    assert vector(r"h1 = sigmoid\(a1\)") == ["0.95", "0.80", "0.89", "0.91"]
    assert vector(r"a2 = h1 @ W2") == ["1.66", "0.45"]
    assert vector(r"yhat = softmax\(a2\)") == ["0.77", "0.23"]

    def number(label):
        m = re.search(rf"{label}:\s+(-?[0-9.]+)", out)
        assert m, f"no {label} line in:\n{out}"
        return float(m.group(1))

    _, _, squared, cross_entropy = _worked_example_numbers()
    chain = number(r"squared loss gradient \(chain rule\)")
    assert chain == pytest.approx(squared, abs=5e-5)
    assert number(r"squared loss gradient \(finite diff.\)") == pytest.approx(squared, abs=5e-5)
    assert number(r"cross-entropy gradient \(backprop\)") == pytest.approx(cross_entropy,
                                                                            abs=5e-5)
    assert number(r"notes' printed value") == -0.029
    assert abs(chain - (-0.029)) > 0.05  # the notes' number is shown as different, not as ours


def test_pipeline_grid_search_fastmlp_matches_sklearn(tmp_path):
    lines = run_example("plot_pipeline_grid_search", tmp_path)
    scores, params = {}, {}
    for line in lines:
        m = re.match(r"^(fastmlp|sklearn)\s+best score = ([0-9.]+)\s+best params = (\{.*\})"
                     r"\s+time = ([0-9.]+) s$", line)
        if m:
            scores[m.group(1)] = float(m.group(2))
            params[m.group(1)] = m.group(3)
    assert set(scores) == {"fastmlp", "sklearn"}, lines
    assert scores["fastmlp"] > 0.8
    # Same trajectories, so the same cross-validated accuracies, not just similar ones.
    assert abs(scores["fastmlp"] - scores["sklearn"]) < 1e-9
    assert params["fastmlp"] == params["sklearn"]
    assert any(re.match(r"^speedup: [0-9.]+x$", line) for line in lines)
    assert_png_written(tmp_path / "grid_search_times.png", lines)


@pytest.mark.skipif(not mnist_available(),
                    reason="MNIST files not found: set FASTMLP_DATA to a directory holding them")
def test_mnist_lecun_table_quick_run_learns(tmp_path):
    lines = run_example("plot_mnist_lecun_table", tmp_path)
    epochs = [line for line in lines if re.match(r"^epoch\s+\d+", line)]
    assert len(epochs) == 4, lines  # quick mode: 4 epochs, one progress line each
    m = re.fullmatch(r"test error: (\d+\.\d\d)% in (\d+\.\d) s", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) < 20.0  # chance is 90% error
    assert_png_written(tmp_path / "mnist_curves.png", lines)


def test_mnist_lecun_table_quick_run_falls_back_to_digits_without_mnist(tmp_path):
    # An empty data directory: the quick run (the documentation's gallery) must not download.
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    lines = run_example("plot_mnist_lecun_table", tmp_path, FASTMLP_DATA=str(empty))
    assert lines[0].startswith("digits (MNIST files not found): 64-100-10 sigmoid network")
    assert list(empty.iterdir()) == []
    m = re.fullmatch(r"test error: (\d+\.\d\d)% in (\d+\.\d) s", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) < 20.0  # chance is 90% error
    assert_png_written(tmp_path / "mnist_curves.png", lines)
