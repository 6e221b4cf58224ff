"""GridSearchCV end to end on digits: fastmlp vs scikit-learn, and fastmlp on both cores.

``test_grid_search``: 8 candidates x 3 folds (+ the refit). The candidates
differ in hidden width, L2 penalty and learning rate. Every fit runs a fixed
number of epochs (no early stop), so both libraries do the same work; with the
same folds and ``random_state`` their trajectories match to rounding, hence
the same cross-validation scores and the same winner.

``test_defaults_grid_search``: the defaults path, a ``StandardScaler`` +
MLP pipeline with the MLP's defaults (float64, ``adam``, ``relu``, batch 200,
scikit-learn's stopping rule), 8 candidates x 3 folds, ``n_jobs=1``.

``test_parallel_grid_search_in_a_fresh_process``: the search a new user runs
first (a ``StandardScaler`` + ``FastMLPClassifier`` pipeline with default
parameters, 9 candidates x 3 folds, see ``_grid_child.py``), in a fresh Python
process whose kernels are already in Numba's disk cache: ``n_jobs=1``, the
first ``n_jobs=-1`` search (loky starts its workers, each imports
scikit-learn, SciPy, Numba and loads the kernels), a second one (workers
reused) and one under the threading backend. Each round runs two fresh
processes with the steps in two orders, so drift on a shared machine hits
both sides of every ratio.
"""

import json
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp

from _benchkit import RoundTimer, epoch_flops, layer_units, make_classifier, rate_info
from _machine import pedantic

# Smoke mode runs BLAS single-threaded (see conftest.smoke_single_thread).
pytestmark = pytest.mark.usefixtures("smoke_single_thread")

PARAM_GRID = {
    "hidden_layer_sizes": [(32,), (64,)],
    "alpha": [1e-4, 1e-2],
    "learning_rate_init": [0.05, 0.2],
}
N_CANDIDATES, N_FOLDS = 8, 3
BATCH_SIZE = 32
#: Epochs per fit: 50 in full mode, 5 in smoke mode.
EPOCHS, SMOKE_EPOCHS = 50, 5
ROUNDS = 3


def grid_search(lib, epochs):
    """The unfitted GridSearchCV (3-fold stratified, no shuffling: the same folds for all)."""
    model = make_classifier(lib, (64,), BATCH_SIZE, "float64", max_iter=epochs,
                            n_iter_no_change=epochs + 1)
    return GridSearchCV(model, PARAM_GRID, cv=N_FOLDS)


def fit_quietly(search, X, y):
    """Fit the search without scikit-learn's ConvergenceWarning (epochs are fixed on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return search.fit(X, y)


def grid_flops(X):
    """Per-epoch matrix-product flops of the 24 CV fits, and per row for each hidden width.

    Counted as in the epoch suites (``_benchkit.epoch_flops``).
    """
    fold_rows = X.shape[0] * (N_FOLDS - 1) / N_FOLDS
    per_hidden = {h: epoch_flops(layer_units(X.shape[1], h, 10), 1)
                  for h in PARAM_GRID["hidden_layer_sizes"]}
    n_other = N_CANDIDATES // len(per_hidden)
    cv = sum(per_hidden.values()) * n_other * N_FOLDS * fold_rows
    return cv, per_hidden


@pytest.mark.benchmark(group="grid-search digits 8x3")
@pytest.mark.parametrize("lib", ["numba", "sklearn"])
def test_grid_search(benchmark, lib, digits, smoke, gemm, machine_check):
    """One whole ``GridSearchCV.fit`` per round (24 fits and the refit on all rows)."""
    X, y = digits
    epochs = SMOKE_EPOCHS if smoke else EPOCHS
    fit_quietly(grid_search(lib, 1), X[:300], y[:300])  # compiles, untimed
    timer = RoundTimer()
    search = pedantic(benchmark, machine_check, "float64", timer.wrap(fit_quietly),
                      lambda: ((grid_search(lib, epochs), X, y), {}), 1 if smoke else ROUNDS)
    assert len(search.cv_results_["params"]) == N_CANDIDATES
    cv_flops, per_hidden = grid_flops(X)
    refit_flops = per_hidden[search.best_params_["hidden_layer_sizes"]] * X.shape[0]
    rows_trained = epochs * (N_CANDIDATES * N_FOLDS * X.shape[0] * (N_FOLDS - 1) / N_FOLDS
                             + X.shape[0])
    benchmark.extra_info.update(
        lib=lib, dtype="float64", batch_size=BATCH_SIZE, epochs=epochs,
        n_candidates=N_CANDIDATES, n_folds=N_FOLDS, n_samples=int(X.shape[0]),
        fits_per_s=(N_CANDIDATES * N_FOLDS + 1) / timer.best,
        best_score=float(search.best_score_), best_params=repr(search.best_params_),
        smoke=bool(smoke),
        **rate_info(epochs * (cv_flops + refit_flops), rows_trained, timer.best, gemm,
                    "float64"))
    assert search.best_score_ > 0.8


DEFAULTS_GRID = {"mlp__hidden_layer_sizes": [(32,), (64,)], "mlp__alpha": [1e-4, 1e-2],
                 "mlp__learning_rate_init": [1e-3, 3e-3]}


def defaults_search(lib, max_iter):
    """The search a user who swaps the class name runs: StandardScaler + the MLP's defaults.

    ``lib`` "fastmlp" is FastMLPClassifier as constructed by default (``backend='auto'``).

    float64 input, ``adam``, ``relu``, ``batch_size=200``, scikit-learn's stopping rule
    (``tol``, ``n_iter_no_change``); 8 candidates x 3 folds, ``n_jobs=1``.
    """
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    estimator = fastmlp.FastMLPClassifier if lib == "fastmlp" else MLPClassifier
    model = estimator(max_iter=max_iter, random_state=0)
    return GridSearchCV(Pipeline([("scale", StandardScaler()), ("mlp", model)]), DEFAULTS_GRID,
                        cv=N_FOLDS)


@pytest.mark.benchmark(group="defaults-grid digits 8x3")
@pytest.mark.parametrize("lib", ["fastmlp", "sklearn"])
def test_defaults_grid_search(benchmark, lib, digits, smoke, machine_check):
    """The defaults path: one whole search per round; both libraries find the same best score."""
    X, y = digits
    max_iter = SMOKE_EPOCHS if smoke else 200
    fit_quietly(defaults_search(lib, 2), X[:300], y[:300])  # compiles, untimed
    timer = RoundTimer()
    search = pedantic(benchmark, machine_check, "float64", timer.wrap(fit_quietly),
                      lambda: ((defaults_search(lib, max_iter), X, y), {}),
                      1 if smoke else ROUNDS)
    benchmark.extra_info.update(lib=lib, dtype="float64", max_iter=max_iter,
                                n_candidates=N_CANDIDATES, n_folds=N_FOLDS,
                                best_score=float(search.best_score_),
                                best_params=repr(search.best_params_), smoke=bool(smoke))
    assert len(search.cv_results_["params"]) == N_CANDIDATES
    assert search.best_score_ > (0.5 if smoke else 0.9)


def test_grid_search_matches_sklearn(digits):
    """Same candidates, folds and seeds: fastmlp's CV scores equal scikit-learn's."""
    X, y = digits
    searches = {lib: fit_quietly(grid_search(lib, 3), X, y) for lib in ("numba", "sklearn")}
    fast, ref = searches["numba"], searches["sklearn"]
    # Scores are fractions of correctly classified rows; trajectories equal to
    # ~1e-15 flip no prediction, so the scores agree to the last bit.
    np.testing.assert_allclose(fast.cv_results_["mean_test_score"],
                               ref.cv_results_["mean_test_score"], rtol=0, atol=1e-12)
    assert fast.best_params_ == ref.best_params_
    assert fast.best_score_ == pytest.approx(ref.best_score_, rel=0, abs=1e-12)
    np.testing.assert_allclose(fast.best_estimator_.coefs_[0], ref.best_estimator_.coefs_[0],
                               rtol=1e-9, atol=1e-12)


# ---- n_jobs=-1 in a fresh process ---------------------------------------------------------

CHILD = Path(__file__).with_name("_grid_child.py")
#: ``max_iter`` of the parallel searches: scikit-learn's default, and 5 in smoke mode.
PARALLEL_MAX_ITER, SMOKE_PARALLEL_MAX_ITER = 200, 5
#: Steps of the fresh processes of one round (see ``_grid_child.py``).
PARALLEL_ORDERS = (("serial", "loky", "loky", "threading"),
                   ("loky", "loky", "threading", "serial"))
PARALLEL_ROUNDS = 3


def run_fresh_process(max_iter, steps):
    """Run ``_grid_child.py`` in a new interpreter that imports this fastmlp; return its steps."""
    root = str(Path(fastmlp.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, str(CHILD), str(max_iter), *steps], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def speedups(run):
    """``n_jobs=1`` seconds over each parallel step's, for one fresh process."""
    seconds = {}
    for step in run:
        name = step["step"]
        if name == "loky":
            name = "loky_second" if "loky_first" in seconds else "loky_first"
        seconds[name] = step["seconds"]
    return seconds, {f"speedup_{k}": seconds["serial"] / v for k, v in seconds.items()
                     if k != "serial"}


@pytest.mark.benchmark(group="grid-search digits 9x3, n_jobs in a fresh process")
def test_parallel_grid_search_in_a_fresh_process(benchmark, digits, smoke, machine_check):
    """Each round: two fresh processes, each running all four searches."""
    X, y = digits
    max_iter = SMOKE_PARALLEL_MAX_ITER if smoke else PARALLEL_MAX_ITER
    # Compile (or load) this fit's kernels here, so that they are in Numba's disk
    # cache before any fresh process starts.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        make_pipeline(StandardScaler(), fastmlp.FastMLPClassifier(max_iter=2)).fit(X, y)
    runs = []
    orders = PARALLEL_ORDERS[:1] if smoke else PARALLEL_ORDERS

    def one_round():
        for order in orders:
            runs.append(run_fresh_process(max_iter, order))

    pedantic(benchmark, machine_check, "float64", one_round, lambda: ((), {}),
             1 if smoke else PARALLEL_ROUNDS)
    # The same winner and the same score, whatever ran the fits and however many times.
    steps = [step for run in runs for step in run]
    assert len({(s["best_score"], s["best_params"]) for s in steps}) == 1
    assert steps[0]["best_score"] > 0.9
    per_run = [speedups(run) for run in runs]
    ratios = {key: statistics.median(r[key] for _, r in per_run) for key in per_run[0][1]}
    benchmark.extra_info.update(
        max_iter=max_iter, n_candidates=9, n_folds=3, n_processes=len(runs),
        cpu_count=os.cpu_count(), best_score=steps[0]["best_score"],
        seconds=[s for s, _ in per_run], smoke=bool(smoke),
        **{f"median_{key}": value for key, value in ratios.items()})
