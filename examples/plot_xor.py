"""
The XOR network of a back-propagation tutorial
==============================================

The NumPy back-propagation tutorial "One LEGO at a time: Explaining the Math
of How Neural Networks Learn" trains a 2-3-2 network on XOR: two inputs,
three sigmoid hidden units, two sigmoid outputs and a squared loss against
one-hot targets. This script builds the same network with
:class:`fastmlp.FastMLPClassifier`:

* ``hidden_layer_sizes=(3,)``, ``activation='logistic'``: three sigmoid hidden units.
* Two outputs. scikit-learn's binary classification would use ONE sigmoid
  output, so to keep the tutorial's two we fit on a two-column one-hot indicator
  matrix ``Y`` (column ``k`` is "XOR equals k"). scikit-learn treats an
  indicator matrix as multilabel classification: ``n_outputs_ == 2``, each
  output a sigmoid, exactly the tutorial's output layer. The predicted class is
  the output with the larger activation. (The tutorial writes the one-hot
  vectors with the columns the other way round, ``[0, 1]`` for 0; the order
  changes nothing.)
* ``loss='squared_error'``: fastmlp's squared error on sigmoid outputs, the
  tutorial's loss. fastmlp halves it (``0.5 * sum (y - yhat)**2``), which only
  rescales the learning rate.
* Full-batch gradient descent (``batch_size=4``, all four rows) without
  L2 penalty (``alpha=0``), as in the tutorial; we add momentum so that a fixed,
  small number of epochs suffices.

It prints the truth table with the network's outputs and saves a plot of the
decision boundary (needs matplotlib; skipped with a message otherwise).

Usage: ``python examples/plot_xor.py [--out xor_decision_boundary.png] [--quick]``.
"""

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from fastmlp import FastMLPClassifier

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR = np.array([0, 1, 1, 0])
Y = np.column_stack([XOR == 0, XOR == 1]).astype(int)  # one-hot: column k is "XOR == k"


def train(epochs, random_state=0):
    """Fit the tutorial's 2-3-2 sigmoid network to XOR.

    Parameters
    ----------
    epochs : int
        Full-batch gradient steps.
    random_state : int, default=0
        Seed of the initial weights.

    Returns
    -------
    clf : FastMLPClassifier
        The fitted network (``n_outputs_ == 2``).
    """
    clf = FastMLPClassifier(hidden_layer_sizes=(3,), activation="logistic",
                            loss="squared_error", solver="sgd", batch_size=4,
                            learning_rate_init=1.0, momentum=0.9, alpha=0.0,
                            max_iter=epochs, tol=0.0, n_iter_no_change=epochs,
                            random_state=random_state)
    with warnings.catch_warnings():
        # We run a fixed number of epochs on purpose; "not converged" is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, Y)
    return clf


def print_truth_table(clf):
    """Print XOR's truth table next to the network's outputs.

    Parameters
    ----------
    clf : FastMLPClassifier
        Fitted on the one-hot indicator ``Y``.

    Returns
    -------
    n_correct : int
        Rows whose predicted class (larger output) equals XOR.
    """
    outputs = clf.predict_proba(X)  # the two sigmoid outputs
    predicted = outputs.argmax(axis=1)
    print(" x1  x2 | XOR | predicted | output 0 (XOR=0)  output 1 (XOR=1)")
    for (x1, x2), target, pred, (o0, o1) in zip(X.astype(int), XOR, predicted, outputs):
        print(f"  {x1}   {x2} |  {target}  |     {pred}     |      {o0:.3f}             {o1:.3f}")
    n_correct = int((predicted == XOR).sum())
    print(f"correct: {n_correct}/4")
    return n_correct


def plot_decision_boundary(clf, path, resolution):
    """Save the network's decision regions over the input square.

    Parameters
    ----------
    clf : FastMLPClassifier
        Fitted network.
    path : str
        PNG file to write.
    resolution : int
        Grid points per axis.

    Returns
    -------
    written : bool
        False when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: skipping the decision-boundary plot "
              "(pip install matplotlib)")
        return False
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    grid = np.linspace(-0.5, 1.5, resolution)
    g1, g2 = np.meshgrid(grid, grid)
    outputs = clf.predict_proba(np.column_stack([g1.ravel(), g2.ravel()]))
    # Share of output 1: above 0.5 exactly where the network predicts XOR = 1.
    share = (outputs[:, 1] / outputs.sum(axis=1)).reshape(g1.shape)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    filled = ax.contourf(g1, g2, share, levels=np.linspace(0, 1, 11), cmap="RdBu_r")
    ax.contour(g1, g2, share, levels=[0.5], colors="k", linewidths=2)
    for target, marker, face in ((0, "o", "white"), (1, "s", "gold")):
        rows = XOR == target
        ax.scatter(X[rows, 0], X[rows, 1], marker=marker, c=face, edgecolors="k", s=150,
                   label=f"XOR = {target}")
    ax.legend(loc="upper center", ncols=2, framealpha=0.9)
    fig.colorbar(filled, ax=ax, label="output 1 / (output 0 + output 1)")
    ax.set(xlabel="x1", ylabel="x2", title="2-3-2 sigmoid network on XOR")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    # The figure stays open so that the documentation's gallery shows it too.
    print(f"decision boundary saved to {path}")
    return True


def main(argv=None):
    """Train, print the truth table and save the plot.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description="The XOR network of a back-propagation tutorial.")
    parser.add_argument("--out", default="xor_decision_boundary.png",
                        help="PNG file for the decision boundary (default: in the cwd)")
    parser.add_argument("--epochs", type=int, default=2000, help="gradient steps")
    parser.add_argument("--quick", action="store_true", help="coarser plot grid (tests)")
    args = parser.parse_args(argv)

    clf = train(args.epochs)
    print(f"2-{clf.coefs_[0].shape[1]}-{clf.n_outputs_} network, "
          f"output activation {clf.out_activation_}, {clf.n_iter_} epochs, "
          f"final loss {clf.loss_:.2e}")
    print_truth_table(clf)
    plot_decision_boundary(clf, args.out, resolution=50 if args.quick else 300)


if __name__ == "__main__":
    main()
