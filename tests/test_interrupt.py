"""Ctrl-C during a long fit: training stops within about a second, warns, and keeps a usable model.

A child process fits an MNIST-sized model; once training is under way the
test sends it SIGINT and times how long ``fit`` takes to return.

Why this discriminates: compiled kernels cannot be interrupted, so Ctrl-C is
only honoured when a kernel call hands control back to Python. The estimators
run a bounded chunk of batches per call (about ``config.CHUNK_SECONDS``), so
``fit`` returns long before the current epoch ends. The model is wide (two
hidden layers of 1024) so that an epoch of 30000 rows takes several seconds
even on a fast machine, and the signal is sent about a second into the first
epoch, while a compiled call runs: an implementation that ran a whole epoch
per call would finish the epoch first (``n_iter_ == 1``, seconds later).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

CHILD = r"""
import json, pickle, signal, sys
# Python leaves SIGINT ignored when its parent ignored it (a job started with `&` by a
# non-interactive shell): restore the handler that raises KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
from fastmlp.engine import backends
from fastmlp import FastMLPClassifier

backend = sys.argv[1]
rng = np.random.default_rng(0)
X = rng.random((30000, 784), dtype=np.float32)
y = rng.integers(0, 10, 30000)
# Compile (or load from the cache) every kernel used below before anything is timed.
FastMLPClassifier((8,), max_iter=2, backend=backend).fit(X[:100], y[:100]).predict_proba(X[:10])

chunks = []
update = backends.ChunkSizer.update

def update_and_report(self, n_batches, seconds):
    update(self, n_batches, seconds)
    chunks.append(n_batches)
    if len(chunks) == 2:  # the first call of the fit and the next one are done
        print("TRAINING", flush=True)

backends.ChunkSizer.update = update_and_report
clf = FastMLPClassifier((1024, 1024), max_iter=1000, random_state=0, backend=backend,
                        verbose=True)
clf.fit(X, y)
print("RETURNED", flush=True)

proba = clf.predict_proba(X[:2000])
copy = pickle.loads(pickle.dumps(clf))
result = {
    "n_iter": clf.n_iter_,
    "curve": len(clf.loss_curve_),
    "weights_finite": all(bool(np.isfinite(w).all()) for w in clf.coefs_ + clf.intercepts_),
    "proba_finite": bool(np.isfinite(proba).all()),
    "proba_sums_to_one": bool(np.allclose(proba.sum(axis=1), 1, atol=1e-4)),
    "score": float(clf.score(X[:2000], y[:2000])),
    "pickled_predicts_same": bool((copy.predict(X[:500]) == clf.predict(X[:500])).all()),
    "batches": int(sum(chunks)),
}
# Training continues from the interrupted state (weights and optimizer agree).
clf.partial_fit(X[:1000], y[:1000])
result["continued_finite"] = bool(np.isfinite(clf.loss_)) and all(
    bool(np.isfinite(w).all()) for w in clf.coefs_)
print("RESULT " + json.dumps(result), flush=True)
"""


def _run_and_interrupt(tmp_path, backend):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-u", str(script), backend],
                                stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=dict(os.environ))
    watchdog = threading.Timer(240, proc.kill)  # never hang the test suite
    watchdog.start()
    try:
        stdout = []
        for line in proc.stdout:
            stdout.append(line)
            if line.startswith("TRAINING"):
                break
        assert stdout and stdout[-1].startswith("TRAINING"), (
            "".join(stdout) + stderr_path.read_text())
        time.sleep(0.3)  # let the next compiled call start
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        latency = None
        for line in proc.stdout:
            stdout.append(line)
            if line.startswith("RETURNED"):
                latency = time.monotonic() - sent
                break
        rest, _ = proc.communicate(timeout=200)
        stdout.append(rest)
    finally:
        watchdog.cancel()
    stdout = "".join(stdout)
    stderr = stderr_path.read_text()
    assert proc.returncode == 0, stdout + stderr
    result = json.loads(stdout.split("RESULT ", 1)[1])
    return latency, result, stdout, stderr


@pytest.mark.skipif(sys.platform == "win32",
                    reason="SIGINT cannot be sent to a child process on Windows")
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_ctrl_c_stops_fit_quickly_and_leaves_usable_model(tmp_path, backend):
    latency, result, stdout, stderr = _run_and_interrupt(tmp_path, backend)
    # Like scikit-learn: a warning, and fit returns normally.
    assert "Training interrupted by user." in stderr
    assert "Traceback" not in stderr
    # "Within about a second": generous for a loaded 2-core machine.
    assert latency is not None and latency < 3.0, latency
    # Stopped inside the first epoch: no epoch completed, none recorded.
    assert result["n_iter"] == 0 and result["curve"] == 0, result
    assert "Iteration 1," not in stdout.split("RETURNED")[0]
    # The model is usable: finite weights and probabilities, picklable, trainable.
    assert result["batches"] > 0
    assert result["weights_finite"] and result["proba_finite"], result
    assert result["proba_sums_to_one"]
    assert 0.0 <= result["score"] <= 1.0
    assert result["pickled_predicts_same"]
    assert result["continued_finite"]


def test_interrupt_between_kernel_and_bookkeeping_keeps_state_consistent(monkeypatch):
    # Ctrl-C is raised when a compiled call returns, possibly before the Python
    # side of the optimizer has read back the kernel's step counter. The model
    # must then go back to the state at the start of that call, where weights
    # and optimizer agree, rather than keep weights the optimizer never counted.
    import warnings

    import numpy as np

    from fastmlp import FastMLPClassifier
    from fastmlp.engine import backends
    from fastmlp.engine.optimizers import Adam

    rng = np.random.RandomState(0)
    X, y = rng.rand(400, 5), rng.randint(0, 3, 400)
    starts, steps = [], []
    make_trainer = backends.make_trainer

    def recording_make_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        # Calls of batches within an epoch (run) and of whole epochs (run_epochs).
        for name in ("run", "run_epochs"):
            setattr(trainer, name, _recording(getattr(trainer, name)))
        return trainer

    def _recording(run):
        def recording_run(params, optimizer, *rest):
            starts.append(params.copy())
            steps.append(optimizer.t)
            return run(params, optimizer, *rest)
        return recording_run

    sync = Adam.sync_from_kernel
    calls = {"n": 0}

    def sync_then_ctrl_c(self, step):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        sync(self, step)

    monkeypatch.setattr(backends, "make_trainer", recording_make_trainer)
    monkeypatch.setattr(Adam, "sync_from_kernel", sync_then_ctrl_c)
    est = FastMLPClassifier((7,), batch_size=20, max_iter=50, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        est.fit(X, y)
    assert len(starts) == 4
    flat = np.concatenate([c.ravel() for c in est.coefs_] + list(est.intercepts_))
    np.testing.assert_array_equal(flat, starts[-1])
    t_at_interrupt = steps[-1]
    assert est._optimizer.t == t_at_interrupt > 0
    # Training continues from there: one more epoch is 20 more Adam steps.
    monkeypatch.setattr(Adam, "sync_from_kernel", sync)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.partial_fit(X, y)
    assert est._optimizer.t == t_at_interrupt + 20
