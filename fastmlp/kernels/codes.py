"""The integer codes, the optimizer-state layout and the rules the kernels and the engine share.

A plain module (no numba), so the engine can name activations, losses and
optimizers, and lay out the optimizer's scalars, without loading the kernels.
Each code is the position of its name in its table.
"""

import numpy as np

#: Activations, by code.
ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "softmax", "exp")
#: The activations a hidden layer may use (the others are output-only).
HIDDEN_ACTIVATIONS = ACTIVATIONS[:4]
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = range(len(ACTIVATIONS))

#: Losses, by code.
LOSSES = (
    "log_loss",  # softmax + categorical cross-entropy
    "binary_log_loss",  # sigmoid + binary cross-entropy (binary, multilabel)
    "squared_error",  # identity + half squared error (sklearn's scaling)
    "poisson",  # exp + half Poisson deviance
    "sigmoid_squared_error",  # sigmoid + half squared error (the back-propagation tutorials' loss)
)
LOG_LOSS, BINARY_LOG_LOSS, SQUARED_ERROR, POISSON, SIGMOID_SQUARED_ERROR = range(len(LOSSES))

#: Stochastic optimizers, by code.
OPTIMIZERS = ("sgd", "adam")
SGD, ADAM = range(len(OPTIMIZERS))

#: The optimizer's scalars as the kernels read them: one float64 array, these
#: slots in this order (SGD leaves Adam's at 0 and the reverse).
HYPER_FIELDS = ("learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "epsilon",
                "learning_rate_init")
(HYPER_LEARNING_RATE, HYPER_MOMENTUM, HYPER_NESTEROV, HYPER_BETA_1, HYPER_BETA_2,
 HYPER_EPSILON, HYPER_LEARNING_RATE_INIT) = range(len(HYPER_FIELDS))


def hyper_array(**values):
    """The optimizer's scalars in the kernels' layout (:data:`HYPER_FIELDS`).

    Parameters
    ----------
    **values : float
        A value for any of :data:`HYPER_FIELDS`; the others are 0.

    Returns
    -------
    hyper : ndarray of float64, shape (len(HYPER_FIELDS),)

    Examples
    --------
    >>> hyper_array(learning_rate=0.1, nesterov=True)[HYPER_NESTEROV]
    1.0
    """
    unknown = set(values) - set(HYPER_FIELDS)
    if unknown:
        raise ValueError(f"Unknown optimizer fields {sorted(unknown)}; expected {HYPER_FIELDS}.")
    return np.array([float(values.get(name, 0.0)) for name in HYPER_FIELDS])


def skips_zero_columns(n_columns, n_zero_columns, zero_column_share):
    """Whether a batch with ``n_zero_columns`` of ``n_columns`` zero throughout is worth skipping.

    The rule :func:`fastmlp.kernels.columns.plan_columns` applies (callable from
    Python and ``@njit`` code).

    Parameters
    ----------
    n_columns : int
        Columns of X.
    n_zero_columns : int
        Columns zero in every row of the batch.
    zero_column_share : int
        :data:`fastmlp.config.ZERO_COLUMN_SHARE`.

    Returns
    -------
    bool
    """
    return n_zero_columns >= n_columns // zero_column_share
