"""``class_weight`` for FastMLPClassifier: per-class weights as per-row sample weights.

The rows' weights are :func:`sklearn.utils.class_weight.compute_sample_weight`'s
for the fit's labels, multiplied into ``sample_weight`` when both are given
(as ``LogisticRegression`` combines them). Training then runs exactly as a fit
given that product as ``sample_weight``.
"""

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

# SGDClassifier's refusal of "balanced" in partial_fit, word for word.
PARTIAL_FIT_BALANCED_MESSAGE = (
    "class_weight '{0}' is not supported for "
    "partial_fit. In order to use 'balanced' weights,"
    " use compute_class_weight('{0}', "
    "classes=classes, y=y). "
    "In place of y you can use a large enough sample "
    "of the full training set target to properly "
    "estimate the class frequency distributions. "
    "Pass the resulting weights as the class_weight "
    "parameter.".format("balanced"))


def check_partial_fit(est):
    """Refuse ``class_weight='balanced'`` in ``partial_fit``, as ``SGDClassifier`` does.

    One call's labels are a sample of the stream, so weights balanced on
    them would change from call to call.

    Parameters
    ----------
    est : FastMLPClassifier
        The estimator about to be updated.

    Raises
    ------
    ValueError
        When ``est.class_weight == 'balanced'``.
    """
    if isinstance(est.class_weight, str) and est.class_weight == "balanced":
        raise ValueError(PARTIAL_FIT_BALANCED_MESSAGE)


def row_weights(est, y):
    """Each row's class weight, or None without ``class_weight``.

    Parameters
    ----------
    est : FastMLPClassifier or FastMLPRegressor
        The estimator; only classifiers have ``class_weight``.
    y : ndarray of shape (n_samples,) or (n_samples, n_labels)
        The validated labels, before encoding.

    Returns
    -------
    weights : ndarray of shape (n_samples,) or None

    Raises
    ------
    ValueError
        For multilabel (2-D) targets, whose classes are not exclusive.
    """
    class_weight = getattr(est, "class_weight", None)
    if class_weight is None:
        return None
    if y.ndim == 2:
        raise ValueError(
            "class_weight is not supported for multilabel or multi-output targets "
            f"(y of shape {y.shape}): each row belongs to several labels. Pass per-row "
            "weights as sample_weight instead, or set class_weight=None.")
    return compute_sample_weight(class_weight, y)


def combine(est, sample_weight, dtype):
    """``sample_weight`` times the rows' class weights, in the compute dtype.

    Parameters
    ----------
    est : FastMLPClassifier or FastMLPRegressor
        The estimator; ``est._row_class_weight`` holds this fit's class
        weights per row (see :func:`row_weights`), if any.
    sample_weight : ndarray of shape (n_samples,) or None
        The validated sample weights.
    dtype : numpy dtype
        The dtype the sample weights are validated to (that of X).

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,) or None
    """
    rows = getattr(est, "_row_class_weight", None)
    if rows is None:
        return sample_weight
    combined = rows if sample_weight is None else sample_weight * rows
    return np.asarray(combined, dtype=dtype)
