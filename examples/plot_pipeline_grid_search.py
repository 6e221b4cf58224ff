"""
Grid search over a scikit-learn Pipeline: FastMLPClassifier versus MLPClassifier
================================================================================

``StandardScaler -> classifier`` in a :class:`~sklearn.pipeline.Pipeline`,
tuned by :class:`~sklearn.model_selection.GridSearchCV` over the hidden-layer
size and the L2 penalty ``alpha`` (3-fold cross-validation). The same search
runs twice, once with :class:`fastmlp.FastMLPClassifier` and once with
scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`, with identical
hyper-parameters. fastmlp follows scikit-learn's training trajectory (same
initialisation, shuffling and update rule; float64 here because the data are
float64), so both searches must find the same best score and parameters;
only the time differs.

Datasets: scikit-learn's 8x8 ``digits`` (default, no download) or MNIST
(``--dataset mnist``, a ``--n-samples`` subset of the training set; see
:func:`fastmlp.datasets.load_mnist`).

The bar chart shows the wall time of each search (written to ``--out``).

Usage: ``python examples/plot_pipeline_grid_search.py [--dataset digits|mnist] [--quick]``.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fastmlp import FastMLPClassifier


def load(dataset, n_samples):
    """Load the features and labels of a dataset.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Which dataset.
    n_samples : int
        Rows of the MNIST training set to use (ignored for digits).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,)
    """
    if dataset == "digits":
        return load_digits(return_X_y=True)
    from fastmlp.datasets import load_mnist

    X, y = load_mnist("train", dtype=np.float64)
    return X[:n_samples], y[:n_samples]


def search(classifier, param_grid, X, y):
    """Run the grid search of ``StandardScaler -> classifier``.

    Parameters
    ----------
    classifier : estimator
        The MLP (its grid parameters are overwritten by the search).
    param_grid : dict
        Grid over the pipeline's ``mlp__*`` parameters.
    X, y : ndarray
        Data.

    Returns
    -------
    grid : GridSearchCV
        Fitted search.
    seconds : float
        Wall time of the search, refit included.
    """
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", classifier)])
    grid = GridSearchCV(pipe, param_grid, cv=3, n_jobs=1)  # one job: a fair timing
    tic = time.perf_counter()
    with warnings.catch_warnings():
        # The epoch budget is fixed on purpose; "not converged" is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    return grid, time.perf_counter() - tic


def plot_times(times, path):
    """Bar chart of the two searches' wall times.

    Parameters
    ----------
    times : dict
        Seconds by library name.
    path : str
        PNG file to write.

    Returns
    -------
    written : bool
        False when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipping the bar chart (pip install matplotlib)")
        return False
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    names = list(times)
    fig, ax = plt.subplots(figsize=(6, 3))
    bars = ax.barh(names, [times[n] for n in names], color=["C0", "C7"][:len(names)])
    ax.bar_label(bars, fmt="%.2f s", padding=3)
    ax.set(xlabel="GridSearchCV wall time (s), lower is better",
           title="The same grid search, same scores")
    ax.invert_yaxis()
    ax.margins(x=0.2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    # The figure stays open so that the documentation's gallery shows it too.
    print(f"bar chart saved to {path}")
    return True


def main(argv=None):
    """Run both searches and print best scores, times and the speedup.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description="Grid search over a Pipeline: FastMLPClassifier "
                                                 "versus MLPClassifier.")
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--n-samples", type=int, default=10000,
                        help="MNIST rows to use (default 10000)")
    parser.add_argument("--quick", action="store_true",
                        help="2x2 grid and 10 epochs (tests)")
    parser.add_argument("--out", default="grid_search_times.png",
                        help="PNG file for the bar chart (default: in the cwd)")
    args = parser.parse_args(argv)

    X, y = load(args.dataset, args.n_samples)
    if args.quick:
        param_grid = {"mlp__hidden_layer_sizes": [(16,), (32,)], "mlp__alpha": [1e-4, 1e-1]}
        epochs = 10
    else:
        param_grid = {"mlp__hidden_layer_sizes": [(64,), (256,)],
                      "mlp__alpha": [1e-4, 1e-2, 1.0]}
        epochs = 50
    common = dict(activation="logistic", solver="sgd", learning_rate_init=0.1,
                  momentum=0.9, max_iter=epochs, random_state=0)

    # Compile fastmlp's kernels (or load them from the Numba cache) outside the timing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        FastMLPClassifier((4,), backend="numba", **{**common, "max_iter": 1}).fit(X[:50], y[:50])

    n_fits = 3 * np.prod([len(v) for v in param_grid.values()]) + 1
    print(f"{args.dataset}: {X.shape[0]} samples x {X.shape[1]} features; grid "
          f"{param_grid}; 3 folds, {n_fits} fits of {epochs} epochs each "
          f"(sigmoid hidden units, SGD lr 0.1, Nesterov momentum 0.9)")
    times, grids = {}, {}
    for name, clf in [("fastmlp", FastMLPClassifier(**common)),
                      ("sklearn", MLPClassifier(**common))]:
        grid, seconds = search(clf, param_grid, X, y)
        times[name], grids[name] = seconds, grid
        best = {k.removeprefix("mlp__"): v for k, v in grid.best_params_.items()}
        print(f"{name:8s} best score = {grid.best_score_:.12f}  best params = {best}  "
              f"time = {seconds:.2f} s", flush=True)
    gap = np.abs(grids["fastmlp"].cv_results_["mean_test_score"]
                 - grids["sklearn"].cv_results_["mean_test_score"]).max()
    print(f"largest score difference over the grid: {gap:.1e}")
    print(f"speedup: {times['sklearn'] / times['fastmlp']:.1f}x")
    plot_times({"fastmlp": times["fastmlp"], "scikit-learn": times["sklearn"]}, args.out)


if __name__ == "__main__":
    main()
