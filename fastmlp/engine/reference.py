"""Pure-NumPy reference backend: the same math as the kernels, written like the equations.

Per layer, with activation f::

    Z = A_prev @ W + b            A = f(Z)
    dZ_L = A_L - Y                (softmax + cross-entropy, sigmoid + BCE,
                                   identity + squared error, exp + Poisson)
    dZ = (dZ_next @ W_next.T) * f'(A)          e.g. A * (1 - A) for the sigmoid
    dW = (A_prev.T @ dZ + alpha * W) / N       db = sum(dZ) / N

with N the number (or total weight) of rows in the mini-batch, scikit-learn's
scaling. This module is the benchmarks' baseline and the tests' oracle, so it
stays vectorised and obvious: no fusing, no workspaces.
"""

import numpy as np
from scipy.special import expit, xlogy
from sklearn.utils.extmath import safe_sparse_dot


def _softmax(Z):
    exp = np.exp(Z - Z.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


ACTIVATION_FUNCTIONS = {
    "identity": lambda Z: Z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda Z: np.maximum(Z, 0),
    "softmax": _softmax,
    "exp": np.exp,
}

# Derivatives written in terms of the activation's output A.
DERIVATIVES = {
    "identity": lambda A: 1,
    "logistic": lambda A: A * (1 - A),
    "tanh": lambda A: 1 - A**2,
    "relu": lambda A: (A > 0).astype(A.dtype),
}


def forward(coefs, intercepts, X, activation, out_activation):
    """Activations of every layer.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights ``(fan_in, fan_out)`` and biases per layer.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Input rows.
    activation, out_activation : str
        Hidden and output activation names.

    Returns
    -------
    activations : list of ndarray
        ``[X, A_1, ..., A_L]``.
    """
    activations = [X]
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        Z = safe_sparse_dot(activations[-1], W) + b
        f = out_activation if i == len(coefs) - 1 else activation
        activations.append(ACTIVATION_FUNCTIONS[f](Z))
    return activations


def data_loss(Y, A, loss, sample_weight=None):
    """Loss of the predictions ``A`` against targets ``Y``, scikit-learn's definitions.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_outputs)
        Targets (one-hot or indicator for classification).
    A : ndarray of shape (n_samples, n_outputs)
        Output activations.
    loss : str
        One of :data:`fastmlp.engine.network.LOSSES`.
    sample_weight : ndarray of shape (n_samples,), optional
        Per-row weights.

    Returns
    -------
    loss : float
    """
    def average(values):
        return np.average(values, weights=sample_weight, axis=0)

    if loss in ("log_loss", "binary_log_loss"):
        eps = np.finfo(A.dtype).eps
        A = np.clip(A, eps, 1 - eps)
        if loss == "log_loss":
            return -average(xlogy(Y, A)).sum()
        return -average(xlogy(Y, A) + xlogy(1 - Y, 1 - A)).sum()
    if loss == "poisson":
        return average(xlogy(Y, Y / A) - Y + A).sum()
    if loss == "squared_error":
        return 0.5 * average((Y - A) ** 2).mean()
    if loss == "sigmoid_squared_error":
        return 0.5 * average((Y - A) ** 2).sum()
    raise ValueError(f"Unknown loss {loss!r}.")


def backprop(coefs, intercepts, X, Y, network, alpha, sample_weight=None):
    """Loss and gradients of one batch.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Parameters per layer.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Batch rows.
    Y : ndarray of shape (n_samples, n_outputs)
        Batch targets.
    network : fastmlp.engine.network.Network
        Activations and loss.
    alpha : float
        L2 penalty.
    sample_weight : ndarray of shape (n_samples,), optional
        Per-row weights.

    Returns
    -------
    loss : float
        Data loss plus ``alpha / (2 N) * sum of squared weights``.
    coef_grads, intercept_grads : list of ndarray
    """
    A = forward(coefs, intercepts, X, network.activation, network.out_activation)
    N = X.shape[0] if sample_weight is None else sample_weight.sum()
    l2 = sum(np.dot(W.ravel(), W.ravel()) for W in coefs)
    loss = data_loss(Y, A[-1], network.loss, sample_weight) + 0.5 * alpha * l2 / N

    dZ = A[-1] - Y
    if network.loss == "sigmoid_squared_error":
        dZ = dZ * DERIVATIVES["logistic"](A[-1])
    if sample_weight is not None:
        dZ = dZ * sample_weight.reshape(-1, 1)
    coef_grads, intercept_grads = [None] * len(coefs), [None] * len(coefs)
    for i in range(len(coefs) - 1, -1, -1):
        coef_grads[i] = (safe_sparse_dot(A[i].T, dZ) + alpha * coefs[i]) / N
        intercept_grads[i] = dZ.sum(axis=0) / N
        if i > 0:
            dZ = (dZ @ coefs[i].T) * DERIVATIVES[network.activation](A[i])
    return loss, coef_grads, intercept_grads


def train_batches(network, params, optimizer, X, Y, sample_weight, rows, batch_size,
                  b_start, b_stop, alpha, loss_sum=0.0):
    """Run mini-batches ``b_start`` to ``b_stop`` of an epoch, one NumPy step each.

    Same contract as :func:`fastmlp.kernels.train.train_batches`.

    Parameters
    ----------
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    params : ndarray of shape (n_params,)
        Flat parameters, updated in place.
    optimizer : fastmlp.engine.optimizers.SGD or fastmlp.engine.optimizers.Adam
        Optimizer, updated in place.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training rows.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets.
    sample_weight : ndarray of shape (n_samples,) or None
        Per-row weights.
    rows : ndarray of int or None
        Sample indices in epoch order; None means the rows of X in order.
    batch_size : int
        Rows per mini-batch.
    b_start, b_stop : int
        Range of batches to run.
    alpha : float
        L2 penalty.
    loss_sum : float, default=0.0
        Running sum from the earlier calls of the epoch (kept in batch order).

    Returns
    -------
    loss_sum : float
        ``loss_sum`` plus the sum of batch loss times batch length.
    n_done : int
        Number of batches run (fewer when a batch loss was not finite).
    """
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    coefs, intercepts = network.views(params)
    grad = np.empty_like(params)
    coef_grads, intercept_grads = network.views(grad)
    for b in range(b_start, b_stop):
        batch = slice(b * batch_size, min((b + 1) * batch_size, n_rows))
        idx = batch if rows is None else rows[batch]
        sw = None if sample_weight is None else sample_weight[idx]
        loss, cg, ig = backprop(coefs, intercepts, X[idx], Y[idx], network, alpha, sw)
        for dst, src in zip(coef_grads + intercept_grads, cg + ig):
            dst[...] = src
        optimizer.step(params, grad)
        loss_sum += loss * (batch.stop - batch.start)
        if not np.isfinite(loss):
            return loss_sum, b - b_start + 1
    return loss_sum, b_stop - b_start
