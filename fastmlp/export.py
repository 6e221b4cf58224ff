"""Deployment without fastmlp: plain scikit-learn estimators and ONNX.

:func:`to_sklearn` turns a fitted fastmlp estimator into the
:class:`~sklearn.neural_network.MLPClassifier` or
:class:`~sklearn.neural_network.MLPRegressor` with the same weights, for
environments where only scikit-learn is installed (pickle it, or save it with
skops).

:func:`register_onnx_converters` teaches ``skl2onnx`` both estimators,
through its documented extension route
(:func:`skl2onnx.update_registered_converter`) with skl2onnx's own MLP
converters, so ``skl2onnx.to_onnx`` converts them alone and inside
pipelines. Importing this module registers them when skl2onnx is
installed, and so does ``import fastmlp`` when skl2onnx was imported first.
"""

import copy
import importlib.util
import sys

import numpy as np
from sklearn.base import is_classifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils.validation import check_is_fitted

# Fitted state that only fastmlp's own training reads; a plain scikit-learn
# estimator builds its own optimizer and random state when trained further.
_FASTMLP_ONLY = {"backend_", "validation_loss_curve_", "_optimizer", "_random_state",
                 "_chunk_rate"}


def to_sklearn(estimator):
    """A plain scikit-learn MLP with the weights and fitted state of a fastmlp estimator.

    The result predicts what ``estimator`` predicts (the same weights, in
    the same dtype; scikit-learn's forward pass then rounds as NumPy does),
    needs only scikit-learn to load, and can be trained further with
    scikit-learn's ``partial_fit`` or ``warm_start``.

    Parameters
    ----------
    estimator : FastMLPClassifier or FastMLPRegressor
        A fitted estimator.

    Returns
    -------
    mlp : MLPClassifier or MLPRegressor
        The equivalent scikit-learn estimator, sharing no arrays with ``estimator``.

    Raises
    ------
    ValueError
        For a classifier trained with ``loss='squared_error'`` on more than
        two classes: its ``predict_proba`` normalises sigmoid outputs, which
        scikit-learn's MLPClassifier does not do.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastmlp import FastMLPClassifier
    >>> from fastmlp.export import to_sklearn
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = FastMLPClassifier((8,), solver="lbfgs", random_state=0).fit(X, y)
    >>> mlp = to_sklearn(clf)
    >>> type(mlp).__name__, bool((mlp.predict(X) == clf.predict(X)).all())
    ('MLPClassifier', True)
    """
    check_is_fitted(estimator)
    _check_exportable(estimator)
    target = MLPClassifier if is_classifier(estimator) else MLPRegressor
    names = target().get_params(deep=False)
    params = {k: v for k, v in estimator.get_params(deep=False).items() if k in names}
    mlp = target(**params)
    for key, value in vars(estimator).items():
        if key.endswith("_") and key not in _FASTMLP_ONLY or key in (
                "_label_binarizer", "_no_improvement_count", "_best_coefs",
                "_best_intercepts"):
            setattr(mlp, key, copy.deepcopy(value))
    return mlp


def _check_exportable(estimator):
    if (is_classifier(estimator) and getattr(estimator, "loss", "log_loss") == "squared_error"
            and estimator._label_binarizer.y_type_ == "multiclass"):
        raise ValueError(
            "This classifier was trained with loss='squared_error' on more than two "
            "classes: its predict_proba normalises the sigmoid outputs, which "
            "scikit-learn's MLPClassifier and skl2onnx's converter do not. Train with "
            "loss='log_loss' to export it.")


def register_onnx_converters():
    """Register both fastmlp estimators with skl2onnx (idempotent).

    After this call, ``skl2onnx.to_onnx`` and ``convert_sklearn`` convert a
    fitted :class:`~fastmlp.FastMLPClassifier` or
    :class:`~fastmlp.FastMLPRegressor`, alone or inside a pipeline, as they
    convert scikit-learn's MLPs. The classifier uses skl2onnx's MLP
    classifier converter and its options (``zipmap``, ``nocl``,
    ``output_class_labels``); the regressor's converter also handles
    multiple outputs and ``loss='poisson'`` (exponential outputs).

    Raises
    ------
    ImportError
        When skl2onnx is not installed (``pip install fastmlp[onnx]``).
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (calculate_linear_classifier_output_shapes,
                                                  calculate_linear_regressor_output_shapes)

    from fastmlp.estimators import FastMLPClassifier, FastMLPRegressor

    update_registered_converter(
        FastMLPClassifier, "FastmlpFastMLPClassifier", calculate_linear_classifier_output_shapes,
        _convert_classifier,
        options={"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                 "nocl": [True, False]})
    update_registered_converter(
        FastMLPRegressor, "FastmlpFastMLPRegressor", _regressor_shapes(
            calculate_linear_regressor_output_shapes), _convert_regressor)


def _regressor_shapes(linear_regressor_shapes):
    """skl2onnx's regressor shapes, with one column per output instead of always one."""
    def calculate(operator):
        linear_regressor_shapes(operator)
        output = operator.outputs[0]
        output.type = output.type.__class__([operator.inputs[0].get_first_dimension(),
                                             operator.raw_operator.n_outputs_])
    return calculate


def _convert_classifier(scope, operator, container):
    from skl2onnx.operator_converters.multilayer_perceptron import (
        convert_sklearn_mlp_classifier)

    model = operator.raw_operator
    _check_exportable(model)
    if model._label_binarizer.y_type_ == "multilabel-indicator" and len(model.classes_) == 2:
        # skl2onnx's converter takes two classes_ for a binary problem and adds a
        # 1 - p column, even for two labels; shown a third label index it keeps
        # the two outputs as they are, as it does for three labels or more.
        proxy = copy.copy(model)
        proxy.classes_ = np.arange(3)
        operator.raw_operator = proxy
        try:
            convert_sklearn_mlp_classifier(scope, operator, container)
        finally:
            operator.raw_operator = model
        return
    convert_sklearn_mlp_classifier(scope, operator, container)


def _convert_regressor(scope, operator, container):
    """skl2onnx's MLP regressor graph, with an Exp output for Poisson and any number of outputs."""
    from skl2onnx.common._apply_operation import apply_exp, apply_reshape
    from skl2onnx.common.data_types import guess_proto_type
    from skl2onnx.operator_converters.multilayer_perceptron import _predict
    from skl2onnx.proto import onnx_proto

    model = operator.raw_operator
    proto_dtype = guess_proto_type(operator.inputs[0].type)
    if proto_dtype != onnx_proto.TensorProto.DOUBLE:
        proto_dtype = onnx_proto.TensorProto.FLOAT
    exp_output = model.out_activation_ == "exp"
    if exp_output:  # skl2onnx's forward pass knows no 'exp': identity, then Exp
        model = copy.copy(model)
        model.out_activation_ = "identity"
    y_pred = _predict(scope, operator.inputs[0].full_name, container, model, proto_dtype)
    if exp_output:
        exp_name = scope.get_unique_variable_name("exp_output")
        apply_exp(scope, y_pred, exp_name, container)
        y_pred = exp_name
    apply_reshape(scope, y_pred, operator.output_full_names, container,
                  desired_shape=(-1, model.n_outputs_))


def _register_if_available(already_imported_only):
    """Register with skl2onnx if it is imported (or, unless told otherwise, installed)."""
    if "skl2onnx" in sys.modules or (not already_imported_only
                                     and importlib.util.find_spec("skl2onnx") is not None):
        register_onnx_converters()


_register_if_available(already_imported_only=False)
