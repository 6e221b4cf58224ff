"""GridSearchCV end to end on digits: 8 candidates x 3 folds (+ the refit), fastmlp vs scikit-learn.

The candidates differ in hidden width, L2 penalty and learning rate. Every
fit runs a fixed number of epochs (no early stop), so both libraries do the
same work; with the same folds and ``random_state`` their trajectories match
to rounding, hence the same cross-validation scores and the same winner.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

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
