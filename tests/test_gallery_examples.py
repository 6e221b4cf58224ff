"""Run the sphinx-gallery examples as scripts, as the gallery does, and check what they print."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastmlp import _callbacks

# Each runs a script or a child process for tens of seconds.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_plot_validation_loss(tmp_path):
    pytest.importorskip("matplotlib", reason="the example draws with matplotlib")
    out = run_example("plot_validation_loss", tmp_path)
    header = re.search(r"(MNIST, 4,000 images|scikit-learn digits): (\d+) epochs, "
                       r"best validation epoch (\d+)", out)
    assert header, out
    n_epochs, best = int(header.group(2)), int(header.group(3))
    assert best < n_epochs  # early stopping ran on past the best epoch
    losses = re.search(r"training loss ([0-9.]+), validation loss ([0-9.]+)", out)
    assert float(losses.group(1)) < float(losses.group(2))  # over-fitting shows


@pytest.mark.skipif(not _callbacks.HAS_CALLBACKS,
                    reason="scikit-learn < 1.9 has no sklearn.callback")
def test_plot_progress_bar(tmp_path):
    pytest.importorskip("rich", reason="ProgressBar needs rich (extra 'progress')")
    out = run_example("plot_progress_bar", tmp_path)
    assert out.count("FastMLPClassifier - fit") == 7  # 2 candidates x 3 folds, and the refit
    stopped = re.search(r"stopped after (\d+) epochs at test accuracy ([0-9.]+)", out)
    assert stopped and int(stopped.group(1)) < 200 and float(stopped.group(2)) >= 0.95, out
