"""
Grid search on a Dask cluster
=============================

A grid search of FastMLPClassifier on MNIST, fanned out over a Dask cluster.

By default a :class:`dask.distributed.LocalCluster` of 2 single-threaded worker
processes is started on this machine; ``--address tcp://host:8786`` runs the
same code on an existing cluster instead (its workers need fastmlp installed).
:class:`~sklearn.model_selection.GridSearchCV` sends one fit per task to the
workers through joblib's ``"dask"`` backend; the estimator pickles small (only
its parameters and, once fitted, its weights), and each worker loads the
compiled kernels from Numba's on-disk cache instead of compiling them.

Data: the first ``--rows`` rows of the MNIST training set (see
:func:`fastmlp.datasets.load_mnist`; set ``FASTMLP_DATA`` to a directory with
the IDX files), scored on the first 10000 test rows.

Usage::

    python examples/dask_grid_search.py [--rows 10000] [--address tcp://host:8786] [--quick]
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastmlp import FastMLPClassifier
from fastmlp.datasets import load_mnist

#: The searched grid: width of the hidden layer and learning rate.
PARAM_GRID = {"hidden_layer_sizes": [(64,), (128,)], "learning_rate_init": [0.05, 0.2]}
QUICK_GRID = {"hidden_layer_sizes": [(32,), (64,)], "learning_rate_init": [0.2]}


def make_estimator(max_iter):
    """The tuned model: a sigmoid MLP trained by SGD with momentum.

    Parameters
    ----------
    max_iter : int
        Epochs per fit.

    Returns
    -------
    FastMLPClassifier
    """
    return FastMLPClassifier(activation="logistic", solver="sgd", momentum=0.9,
                             max_iter=max_iter, tol=0.0, random_state=0)


def warm_compile_cache(X, y):
    """Compile (or load) the kernels for X's dtype once, here, before any worker starts.

    Local workers then load them from Numba's on-disk cache instead of all
    compiling the same kernels at the same time.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training rows (their dtype selects the kernels).
    y : ndarray of shape (n_samples,)
        Labels.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # backend="numba": under the default 'auto' a fit this small runs on
        # NumPy and would compile nothing.
        make_estimator(1).set_params(backend="numba").fit(X[:64], y[:64]).predict(X[:8])


def start_client(address, n_workers):
    """Connect to a cluster, or start a local one.

    Parameters
    ----------
    address : str or None
        Scheduler address such as ``tcp://host:8786``; None starts a LocalCluster.
    n_workers : int
        Worker processes of the LocalCluster (one thread each).

    Returns
    -------
    client : dask.distributed.Client
    cluster : dask.distributed.LocalCluster or None
        The cluster started here (to be closed), None for ``address``.
    """
    from dask.distributed import Client, LocalCluster

    if address:
        return Client(address), None
    env = {}
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:  # workers must read the cache the parent just filled
        env["NUMBA_CACHE_DIR"] = cache_dir
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, env=env)
    return Client(cluster), cluster


def main(argv=None):
    """Run the search and print the best parameters, the scores and the time.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description="Grid search on a Dask cluster.")
    parser.add_argument("--rows", type=int, default=10000, help="MNIST training rows to use")
    parser.add_argument("--address", default=None,
                        help="scheduler address of an existing cluster, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per fit")
    parser.add_argument("--quick", action="store_true",
                        help="small run: 2000 rows, 2 candidates, 5 epochs, 2 folds")
    args = parser.parse_args(argv)
    rows, epochs, grid, folds = args.rows, args.epochs, PARAM_GRID, 3
    if args.quick:
        rows, epochs, grid, folds = min(rows, 2000), 5, QUICK_GRID, 2

    import joblib

    X, y = load_mnist("train")
    X, y = np.ascontiguousarray(X[:rows]), y[:rows]
    X_test, y_test = load_mnist("test")
    warm_compile_cache(X, y)
    client, cluster = start_client(args.address, args.workers)
    try:
        n_workers = len(client.scheduler_info()["workers"])
        print(f"cluster: {client.scheduler.address} with {n_workers} workers")
        search = GridSearchCV(make_estimator(epochs), grid, cv=folds, n_jobs=-1)
        start = time.perf_counter()
        with warnings.catch_warnings(), joblib.parallel_backend("dask"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    n_fits = len(search.cv_results_["params"]) * folds + 1
    print(f"rows: {rows}, candidates: {len(search.cv_results_['params'])}, folds: {folds}, "
          f"epochs: {epochs}")
    print(f"best parameters: {search.best_params_}")
    print(f"best cross-validation accuracy: {search.best_score_:.4f}")
    print(f"test accuracy of the refitted best model: {search.score(X_test, y_test):.4f}")
    print(f"grid search time: {elapsed:.2f} s for {n_fits} fits")


if __name__ == "__main__":
    main()
