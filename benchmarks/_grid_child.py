"""One fresh process of the parallel grid-search benchmark (run by bench_grid_search.py).

Usage: ``python _grid_child.py MAX_ITER STEP [STEP ...]``, each STEP one of
``serial`` (``n_jobs=1``), ``loky`` (``n_jobs=-1``, joblib's default
backend) or ``threading`` (``n_jobs=-1`` under
``joblib.parallel_config(backend="threading")``). The searches run in the
given order in this one process, so the first ``loky`` step starts the loky
workers and a later one reuses them. Prints one JSON list: per step its name,
wall seconds, best score and best parameters.

The search is the one a new user writes first: a ``StandardScaler`` +
``FastMLPClassifier`` pipeline with default parameters (``adam``, ``relu``,
100 units, ``batch_size="auto"``), 9 candidates x 3 folds on digits.
"""

import contextlib
import json
import sys
import time
import warnings

PARAM_GRID = {
    "fastmlpclassifier__alpha": [1e-4, 1e-3, 1e-2],
    "fastmlpclassifier__learning_rate_init": [1e-3, 3e-3, 1e-2],
}
N_FOLDS = 3


def search(step, max_iter, X, y):
    """Run one search; return (wall seconds, best score, best parameters)."""
    import joblib
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fastmlp import FastMLPClassifier

    pipe = make_pipeline(StandardScaler(), FastMLPClassifier(max_iter=max_iter, random_state=0))
    grid = GridSearchCV(pipe, PARAM_GRID, cv=N_FOLDS, n_jobs=1 if step == "serial" else -1)
    backend = joblib.parallel_config(backend="threading") if step == "threading" \
        else contextlib.nullcontext()
    with warnings.catch_warnings(), backend:
        warnings.simplefilter("ignore", ConvergenceWarning)
        tic = time.perf_counter()
        grid.fit(X, y)
        seconds = time.perf_counter() - tic
    return seconds, float(grid.best_score_), repr(grid.best_params_)


def main(argv):
    """Run the steps given on the command line and print their results as JSON."""
    from sklearn.datasets import load_digits

    max_iter, steps = int(argv[0]), argv[1:]
    X, y = load_digits(return_X_y=True)
    results = []
    for step in steps:
        seconds, score, params = search(step, max_iter, X, y)
        results.append({"step": step, "seconds": seconds, "best_score": score,
                        "best_params": params})
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
