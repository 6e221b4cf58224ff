"""FastMLPClassifier and FastMLPRegressor: scikit-learn's MLPs with compiled training.

They subclass :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor`, so parameters, validation, error
messages, fitted attributes and the early-stopping / ``n_iter_no_change``
bookkeeping are scikit-learn's own. What is replaced is the work
(:mod:`fastmlp._mlp_base`): the mini-batch loop, the L-BFGS objective and the
forward pass of ``predict``.
"""

from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.utils.metaestimators import available_if

from fastmlp import _class_weight
from fastmlp._compat import StrOptions
from fastmlp._mlp_base import (TrainingDivergedError, _FastMLPMixin, _restore_on_error,
                               _with_extra_constraints)


class FastMLPClassifier(_FastMLPMixin, MLPClassifier):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, trained by compiled kernels.

    A drop-in replacement: same parameters, defaults, methods, fitted
    attributes and training trajectory as :class:`sklearn.neural_network.MLPClassifier`
    (see its documentation for each of them), only faster.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        Units of each hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Hidden-layer activation. ``'logistic'`` (sigmoid) is the primary path.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        Weight optimizer.
    alpha : float, default=0.0001
        L2 penalty, applied as ``alpha / (2 * batch rows) * sum of squared weights``.
    batch_size : int or 'auto', default='auto'
        Mini-batch size; ``'auto'`` is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        SGD learning-rate schedule.
    learning_rate_init : float, default=0.001
        Initial learning rate (SGD, Adam).
    power_t : float, default=0.5
        Exponent of the ``invscaling`` schedule.
    max_iter : int, default=200
        Maximum epochs (stochastic solvers) or iterations (L-BFGS).
    shuffle : bool, default=True
        Shuffle samples every epoch (by index; X is never copied).
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and the early-stopping split.
    tol : float, default=1e-4
        Improvement tolerance for stopping.
    verbose : bool, default=False
        Print one line per epoch with the loss and elapsed time.
    warm_start : bool, default=False
        Start from the current ``coefs_`` / ``intercepts_``.
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified) and stop on its score.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's numerical-stability term.
    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations (L-BFGS).
    loss : {'log_loss', 'squared_error'}, default='log_loss'
        fastmlp addition: ``'squared_error'`` trains sigmoid outputs with half
        squared error (the loss of the classic back-propagation tutorials);
        ``predict_proba`` then normalises the sigmoid outputs of multiclass
        problems to sum to one.
    class_weight : dict, 'balanced' or None, default=None
        fastmlp addition: weights of the classes, ``{class_label: weight}``, or
        ``'balanced'`` for ``n_samples / (n_classes * np.bincount(y))``; each
        row's weight is :func:`sklearn.utils.class_weight.compute_sample_weight`'s
        for the fit's labels, multiplied by ``sample_weight`` when both are
        given (as in :class:`~sklearn.linear_model.LogisticRegression`), so a
        fit equals the same fit given that product as ``sample_weight``. The
        weighted rows also weight the early-stopping score. Multilabel targets
        raise a ``ValueError`` (their labels are not exclusive classes), and
        ``partial_fit`` refuses ``'balanced'`` as
        :class:`~sklearn.linear_model.SGDClassifier` does (one call's labels are
        only a sample); a dict works in ``partial_fit``.
    backend : {'auto', 'numba', 'numpy'}, default='auto'
        fastmlp addition: ``'numba'`` runs the compiled kernels, ``'numpy'``
        the pure-NumPy reference (debugging, benchmarks); both compute the same
        numbers up to rounding. ``'auto'`` runs each ``fit`` or prediction on
        NumPy when NumPy would take less than
        :data:`fastmlp.config.AUTO_NUMPY_SECONDS` (about 100 mini-batches of a
        small network), less than loading the kernels into a new process
        costs, and on the kernels otherwise. It decides from the shapes and
        parameters before training (never from how training goes), so a given
        fit always runs the same way. ``partial_fit`` always uses the kernels.
    dtype : {None, 'float32', 'float64', numpy.float32, numpy.float64}, default=None
        fastmlp addition: compute dtype. ``None`` follows scikit-learn: float32
        input computes in float32, anything else in float64.

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, \
t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_, \
n_outputs_, out_activation_
        As in :class:`sklearn.neural_network.MLPClassifier`.
    validation_loss_curve_ : list of float or None
        fastmlp addition, beside ``validation_scores_``: with ``early_stopping``
        (stochastic solvers), the training loss on the held-out rows after each
        epoch, one value per epoch; ``None`` otherwise. It includes the L2 term
        each training mini-batch's loss carries, ``alpha / (2 * B * w) * sum of
        squared weights`` (``B`` the mini-batch rows, ``w`` the mean held-out
        weight, 1 without ``sample_weight``), so it and ``loss_curve_`` differ by
        their data terms only.
    backend_ : {'numba', 'numpy'}
        The backend the last ``fit`` or ``partial_fit`` ran on.

    Notes
    -----
    With scikit-learn 1.9 or later, ``set_callbacks`` attaches
    :mod:`sklearn.callback` callbacks (``ProgressBar``, ``ScoringMonitor`` or
    your own): each epoch is a task named ``'epoch'`` under the fit's task, and
    a callback whose ``on_fit_task_end`` returns True stops the fit after that
    epoch (with ``early_stopping``, the best epoch's weights are kept, as when
    the score stops improving). With ``solver='lbfgs'`` the tasks are its
    iterations (``'lbfgs-iter'``, as in scikit-learn's ``LogisticRegression``),
    and a stop request ends the optimisation after that iteration.

    See Also
    --------
    FastMLPRegressor : The regression counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastmlp import FastMLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = FastMLPClassifier((64,), activation="logistic", solver="sgd",
    ...                         learning_rate_init=0.1, max_iter=20, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.9
    True
    """

    _parameter_constraints = {
        **_with_extra_constraints(MLPClassifier),
        "loss": [StrOptions({"log_loss", "squared_error"})],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 loss="log_loss", class_weight=None, backend="auto", dtype=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.loss = loss
        self.class_weight = class_weight
        self.backend = backend
        self.dtype = dtype

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single epoch over the given data.

        As :meth:`sklearn.neural_network.MLPClassifier.partial_fit`, except that
        a failed call (even a failed first call, which records ``classes``)
        leaves the estimator exactly as it was.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls; required on the first call.

        Returns
        -------
        self : FastMLPClassifier
            The updated model.
        """
        with _restore_on_error(self):
            _class_weight.check_partial_fit(self)
            return super().partial_fit(X, y, sample_weight=sample_weight, classes=classes)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Probability of each class, columns ordered as ``classes_``.
        """
        proba = super().predict_proba(X)
        if (self.loss == "squared_error" and self._label_binarizer.y_type_ == "multiclass"):
            proba /= proba.sum(axis=1, keepdims=True)
        return proba


class FastMLPRegressor(_FastMLPMixin, MLPRegressor):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, trained by compiled kernels.

    A drop-in replacement: same parameters, defaults, methods, fitted
    attributes and training trajectory as :class:`sklearn.neural_network.MLPRegressor`
    (see its documentation), only faster. Parameters are those of
    :class:`FastMLPClassifier` except ``loss``.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        Half squared error with identity outputs, or half Poisson deviance with
        exponential outputs.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, \
warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_fun, backend, dtype
        As in :class:`FastMLPClassifier`.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_, \
coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_, \
n_outputs_, out_activation_
        As in :class:`sklearn.neural_network.MLPRegressor`.
    validation_loss_curve_ : list of float or None
        As in :class:`FastMLPClassifier`: the loss on the held-out rows after
        each epoch, L2 term included.
    backend_ : {'numba', 'numpy'}
        The backend the last ``fit`` or ``partial_fit`` ran on.

    Notes
    -----
    Callbacks (scikit-learn 1.9 or later) as in :class:`FastMLPClassifier`.

    See Also
    --------
    FastMLPClassifier : The classification counterpart.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import FastMLPRegressor
    >>> X = np.linspace(0, 1, 200).reshape(-1, 1)
    >>> reg = FastMLPRegressor((16,), solver="lbfgs", random_state=0).fit(X, np.sin(3 * X).ravel())
    >>> reg.score(X, np.sin(3 * X).ravel()) > 0.95
    True
    """

    _parameter_constraints = _with_extra_constraints(MLPRegressor)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="auto", dtype=None):
        super().__init__(
            loss=loss, hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            solver=solver, alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun)
        self.backend = backend
        self.dtype = dtype


__all__ = ["FastMLPClassifier", "FastMLPRegressor", "TrainingDivergedError"]
