"""Seed 002's worked example, step by step, with fastmlp's NumPy backend.

The seed (notes on back-propagation, PadhAI course) pushes one input
``x = [2, 5, 3, 3]`` with target ``y = [1, 0]`` through a 4-4-2 network
(sigmoid hidden layer, softmax output, zero biases) and differentiates the
loss with respect to one weight, ``w212``: layer 2, output unit 1, hidden
unit 2. This script recomputes every number the seed prints, using
:func:`fastmlp.engine.reference.forward` and :func:`fastmlp.engine.reference.backprop` on a
:class:`fastmlp.engine.network.Network`.

Two things to know when reading the seed next to this script:

* Layout. The seed writes ``a = W @ x`` with one *row* per output unit;
  fastmlp (like scikit-learn) computes ``X @ W`` with ``W`` of shape
  ``(fan_in, fan_out)``. So our matrices are the seed's transposed, and
  ``w212`` is ``coefs[1][1, 0]`` (hidden unit 2 -> output unit 1, 0-based).
* The seed's gradient is wrong. It uses the squared loss
  ``L = sum_i (y_i - yhat_i)**2`` on the softmax output and writes
  ``d yhat_1 / d a_21 = yhat_1 (1 - yhat_1)(-a_22)``. The correct partial
  derivative is ``yhat_1 (1 - yhat_1)`` (no ``-a_22`` factor), and because a
  softmax couples its outputs, ``yhat_2`` also depends on ``a_21``: the full
  chain rule needs the softmax Jacobian ``d yhat_j / d a_2k = yhat_j (delta_jk - yhat_k)``.
  The script prints the correct gradient for the seed's loss (checked by
  finite differences), the seed's -0.029 next to it, and the gradient for
  cross-entropy, fastmlp's default loss for classifiers (``yhat - y``).

Run ``python examples/seed_worked_example.py``; it takes well under a second
and has no options besides ``--quick`` (accepted for uniformity; same output).
"""

import argparse

import numpy as np

from fastmlp.engine import reference
from fastmlp.engine.network import Network

# The seed's numbers, in its "rows = output units" layout.
SEED_W1 = np.array([[0.1, 0.3, 0.8, -0.4],
                    [-0.3, -0.2, 0.5, 0.5],
                    [-0.3, 0.0, 0.5, 0.4],
                    [0.2, 0.5, -0.9, 0.7]])
SEED_W2 = np.array([[0.5, 0.8, 0.2, 0.4],
                    [0.5, 0.2, 0.3, -0.5]])
X = np.array([[2.0, 5.0, 3.0, 3.0]])
Y = np.array([[1.0, 0.0]])
SEED_GRADIENT_W212 = -0.029  # what the seed prints for dL/dw212
W212 = (1, 1, 0)  # coefs[1][1, 0]: layer 2, hidden unit 2 -> output unit 1


def vector(values, digits=2):
    """Format a 1-D array the way the seed prints it.

    Parameters
    ----------
    values : array-like
        Numbers to print.
    digits : int, default=2
        Decimals.

    Returns
    -------
    text : str
        E.g. ``"[2.90 1.40]"``.
    """
    return "[" + " ".join(f"{v:.{digits}f}" for v in np.ravel(values)) + "]"


def seed_squared_loss(coefs, intercepts):
    """The seed's loss: ``sum_i (y_i - yhat_i)**2`` on the softmax output.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Parameters in fastmlp's layout.

    Returns
    -------
    loss : float
    """
    out = reference.forward(coefs, intercepts, X, "logistic", "softmax")[-1]
    return float(((Y - out) ** 2).sum())


def squared_loss_gradient_w212(activations):
    """Chain rule for ``dL/dw212`` under the seed's squared loss, with the full softmax Jacobian.

    Parameters
    ----------
    activations : list of ndarray
        ``[x, h1, yhat]`` from :func:`fastmlp.engine.reference.forward`.

    Returns
    -------
    grad : float
        ``sum_j dL/dyhat_j * dyhat_j/da_21 * h_12``.
    terms : dict
        The intermediate factors, for printing.
    """
    h1, yhat = activations[1][0], activations[2][0]
    dL_dyhat = -2 * (Y[0] - yhat)
    # Softmax Jacobian column for a_21: d yhat_j / d a_21 = yhat_j * (delta_j1 - yhat_1).
    dyhat_da21 = yhat * (np.array([1.0, 0.0]) - yhat[0])
    dL_da21 = float(dL_dyhat @ dyhat_da21)
    return dL_da21 * h1[1], {"dL/dyhat": dL_dyhat, "dyhat/da21": dyhat_da21,
                             "dL/da21": dL_da21, "h12": h1[1]}


def finite_difference_w212(coefs, intercepts, eps=1e-6):
    """Central finite difference of the seed's loss with respect to ``w212``.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Parameters in fastmlp's layout (not modified).
    eps : float, default=1e-6
        Step.

    Returns
    -------
    grad : float
    """
    layer, i, j = W212
    values = []
    for step in (eps, -eps):
        shifted = [c.copy() for c in coefs]
        shifted[layer][i, j] += step
        values.append(seed_squared_loss(shifted, intercepts))
    return (values[0] - values[1]) / (2 * eps)


def main(argv=None):
    """Print the seed's forward pass and the gradient of ``w212``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="accepted for uniformity with the other examples (same output)")
    parser.parse_args(argv)

    # fastmlp layout: W of shape (fan_in, fan_out) is the seed's W transposed.
    coefs = [SEED_W1.T.copy(), SEED_W2.T.copy()]
    intercepts = [np.zeros(4), np.zeros(2)]
    network = Network([4, 4, 2], "logistic", "log_loss")  # softmax + cross-entropy

    activations = reference.forward(coefs, intercepts, X, network.activation,
                                    network.out_activation)
    a1 = X @ coefs[0] + intercepts[0]
    a2 = activations[1] @ coefs[1] + intercepts[1]
    print("Forward pass (seed 002, x = [2 5 3 3], y = [1 0], zero biases)")
    print(f"  a1 = x @ W1            = {vector(a1)}")
    print(f"  h1 = sigmoid(a1)       = {vector(activations[1])}")
    print(f"  a2 = h1 @ W2           = {vector(a2)}")
    print(f"  yhat = softmax(a2)     = {vector(activations[2])}")

    layer, i, j = W212
    print(f"\nGradient of w212 = coefs[{layer}][{i}, {j}] = {coefs[layer][i, j]:.1f} "
          "(hidden unit 2 -> output unit 1)")
    grad, terms = squared_loss_gradient_w212(activations)
    fd = finite_difference_w212(coefs, intercepts)
    print("  Seed's loss, L = sum (y - yhat)^2 on the softmax output:")
    print(f"    dL/dyhat             = {vector(terms['dL/dyhat'], 3)}")
    print(f"    dyhat/da21           = {vector(terms['dyhat/da21'], 3)}  "
          "(softmax Jacobian: yhat_j (delta_j1 - yhat_1))")
    print(f"    dL/da21              = {terms['dL/da21']:.4f}")
    print(f"    dL/dw212 = dL/da21 * h12 = {terms['dL/da21']:.4f} * {terms['h12']:.4f}")
    print(f"  squared loss gradient (chain rule):    {grad:.4f}")
    print(f"  squared loss gradient (finite diff.):  {fd:.4f}")
    print(f"  seed's printed value:                  {SEED_GRADIENT_W212:.3f}  "
          "(wrong: spurious factor -a22, and it drops the softmax path through yhat_2)")

    _, coef_grads, _ = reference.backprop(coefs, intercepts, X, Y, network, alpha=0.0)
    print("  Cross-entropy, L = -sum y log yhat (fastmlp's default; dL/da2 = yhat - y):")
    print(f"  cross-entropy gradient (backprop):     {coef_grads[layer][i, j]:.4f}")
    print(f"    check: (yhat_1 - y_1) * h12 = {activations[2][0, 0] - 1:.4f} * "
          f"{activations[1][0, 1]:.4f} = "
          f"{(activations[2][0, 0] - 1) * activations[1][0, 1]:.4f}")


if __name__ == "__main__":
    main()
