"""
A worked two-layer example, step by step
========================================

Lesson notes on back-propagation (PadhAI's "A First Course on Deep
Learning") push one input ``x = [2, 5, 3, 3]`` with target ``y = [1, 0]``
through a 4-4-2 network (sigmoid hidden layer, softmax output, zero biases)
and differentiate the loss with respect to one weight, ``w212``: layer 2,
output unit 1, hidden unit 2. This script recomputes every number the notes
print with fastmlp's NumPy reference backend,
:func:`fastmlp.engine.reference.forward` and
:func:`fastmlp.engine.reference.backprop` on a
:class:`fastmlp.engine.network.Network`.

Two things to know when reading the notes next to this script:

* Layout. The notes write ``a = W @ x`` with one *row* per output unit;
  fastmlp (like scikit-learn) computes ``X @ W`` with ``W`` of shape
  ``(fan_in, fan_out)``. So our matrices are the notes' transposed, and
  ``w212`` is ``coefs[1][1, 0]`` (hidden unit 2 -> output unit 1, 0-based).
* The notes' gradient is wrong. They use the squared loss
  ``L = sum_i (y_i - yhat_i)**2`` on the softmax output and write
  ``d yhat_1 / d a_21 = yhat_1 (1 - yhat_1)(-a_22)``. The correct partial
  derivative is ``yhat_1 (1 - yhat_1)`` (no ``-a_22`` factor), and because a
  softmax couples its outputs, ``yhat_2`` also depends on ``a_21``: the full
  chain rule needs the softmax Jacobian ``d yhat_j / d a_2k = yhat_j (delta_jk - yhat_k)``.
  The script prints the correct gradient for the notes' loss (checked by
  finite differences), the notes' -0.029 next to it, and the gradient for
  cross-entropy, fastmlp's default loss for classifiers (``yhat - y``).

The figure draws the notes' loss as a function of ``w212`` with the slopes
of both gradients at the notes' weight: the chain rule's slope touches the
curve, the notes' does not.

Run ``python examples/plot_two_layer_worked_example.py``; it takes well under
a second and has no options besides ``--quick`` (accepted for uniformity;
same output).
"""

import argparse

import numpy as np

from fastmlp.engine import reference
from fastmlp.engine.network import Network

# The notes' numbers, in their "rows = output units" layout.
NOTES_W1 = np.array([[0.1, 0.3, 0.8, -0.4],
                    [-0.3, -0.2, 0.5, 0.5],
                    [-0.3, 0.0, 0.5, 0.4],
                    [0.2, 0.5, -0.9, 0.7]])
NOTES_W2 = np.array([[0.5, 0.8, 0.2, 0.4],
                    [0.5, 0.2, 0.3, -0.5]])
X = np.array([[2.0, 5.0, 3.0, 3.0]])
Y = np.array([[1.0, 0.0]])
NOTES_GRADIENT_W212 = -0.029  # what the notes print for dL/dw212
W212 = (1, 1, 0)  # coefs[1][1, 0]: layer 2, hidden unit 2 -> output unit 1


def vector(values, digits=2):
    """Format a 1-D array the way the notes print it.

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


def notes_squared_loss(coefs, intercepts):
    """The notes' loss: ``sum_i (y_i - yhat_i)**2`` on the softmax output.

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
    """Chain rule for ``dL/dw212`` under the notes' squared loss, with the full softmax Jacobian.

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
    """Central finite difference of the notes' loss with respect to ``w212``.

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
        values.append(notes_squared_loss(shifted, intercepts))
    return (values[0] - values[1]) / (2 * eps)


def plot_loss_around_w212(coefs, intercepts, gradient, path):
    """Plot the notes' loss against ``w212`` with the tangent of each gradient.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Parameters in fastmlp's layout (not modified).
    gradient : float
        The chain rule's ``dL/dw212``.
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
        print("matplotlib is not installed: skipping the plot (pip install matplotlib)")
        return False
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    layer, i, j = W212
    w0 = coefs[layer][i, j]
    ws = np.linspace(w0 - 1.5, w0 + 1.5, 61)
    losses = []
    for w in ws:
        shifted = [c.copy() for c in coefs]
        shifted[layer][i, j] = w
        losses.append(notes_squared_loss(shifted, intercepts))
    loss0 = notes_squared_loss(coefs, intercepts)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ws, losses, "k", lw=2, label="notes' loss L(w212)")
    for slope, style, label in ((gradient, "C0--", f"chain rule: slope {gradient:.4f}"),
                                (NOTES_GRADIENT_W212, "C3:",
                                 f"notes: slope {NOTES_GRADIENT_W212:.3f}")):
        ax.plot(ws, loss0 + slope * (ws - w0), style, lw=2, label=label)
    ax.plot([w0], [loss0], "ko")
    ax.set(xlabel="w212", ylabel="L = sum (y - yhat)^2",
           title="Loss around the notes' weight w212 = 0.8")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    # The figure stays open so that the documentation's gallery shows it too.
    print(f"plot saved to {path}")
    return True


def main(argv=None):
    """Print the notes' forward pass and the gradient of ``w212``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description="A worked two-layer example, step by step.")
    parser.add_argument("--quick", action="store_true",
                        help="accepted for uniformity with the other examples (same output)")
    parser.add_argument("--out", default="worked_example_w212.png",
                        help="PNG file for the plot (default: in the cwd)")
    args = parser.parse_args(argv)

    # fastmlp layout: W of shape (fan_in, fan_out) is the notes' W transposed.
    coefs = [NOTES_W1.T.copy(), NOTES_W2.T.copy()]
    intercepts = [np.zeros(4), np.zeros(2)]
    network = Network([4, 4, 2], "logistic", "log_loss")  # softmax + cross-entropy

    activations = reference.forward(coefs, intercepts, X, network.activation,
                                    network.out_activation)
    a1 = X @ coefs[0] + intercepts[0]
    a2 = activations[1] @ coefs[1] + intercepts[1]
    print("Forward pass (the notes' example, x = [2 5 3 3], y = [1 0], zero biases)")
    print(f"  a1 = x @ W1            = {vector(a1)}")
    print(f"  h1 = sigmoid(a1)       = {vector(activations[1])}")
    print(f"  a2 = h1 @ W2           = {vector(a2)}")
    print(f"  yhat = softmax(a2)     = {vector(activations[2])}")

    layer, i, j = W212
    print(f"\nGradient of w212 = coefs[{layer}][{i}, {j}] = {coefs[layer][i, j]:.1f} "
          "(hidden unit 2 -> output unit 1)")
    grad, terms = squared_loss_gradient_w212(activations)
    fd = finite_difference_w212(coefs, intercepts)
    print("  Notes' loss, L = sum (y - yhat)^2 on the softmax output:")
    print(f"    dL/dyhat             = {vector(terms['dL/dyhat'], 3)}")
    print(f"    dyhat/da21           = {vector(terms['dyhat/da21'], 3)}  "
          "(softmax Jacobian: yhat_j (delta_j1 - yhat_1))")
    print(f"    dL/da21              = {terms['dL/da21']:.4f}")
    print(f"    dL/dw212 = dL/da21 * h12 = {terms['dL/da21']:.4f} * {terms['h12']:.4f}")
    print(f"  squared loss gradient (chain rule):    {grad:.4f}")
    print(f"  squared loss gradient (finite diff.):  {fd:.4f}")
    print(f"  notes' printed value:                 {NOTES_GRADIENT_W212:.3f}  "
          "(wrong: spurious factor -a22, and it drops the softmax path through yhat_2)")

    _, coef_grads, _ = reference.backprop(coefs, intercepts, X, Y, network, alpha=0.0)
    print("  Cross-entropy, L = -sum y log yhat (fastmlp's default; dL/da2 = yhat - y):")
    print(f"  cross-entropy gradient (backprop):     {coef_grads[layer][i, j]:.4f}")
    print(f"    check: (yhat_1 - y_1) * h12 = {activations[2][0, 0] - 1:.4f} * "
          f"{activations[1][0, 1]:.4f} = "
          f"{(activations[2][0, 0] - 1) * activations[1][0, 1]:.4f}")
    plot_loss_around_w212(coefs, intercepts, grad, args.out)


if __name__ == "__main__":
    main()
