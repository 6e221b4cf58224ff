"""Per-epoch events of a fit: scikit-learn's callbacks and the validation loss.

Where the installed scikit-learn has the callback API (``sklearn.callback``,
1.9 and later), each ``fit`` or ``partial_fit`` is a task whose subtasks are
its epochs, wired as scikit-learn's ``LogisticRegression`` wires its
iterations: ``_init_callback_context`` on entry, ``on_fit_task_begin`` /
``on_fit_task_end`` around each epoch, and the teardown by ``_fit_context``.
Callbacks run at epoch boundaries only, and a fit nothing listens to skips
all of it (no context, no per-epoch objects), so it runs as it would without
the API.
"""

import numpy as np
import scipy

from fastmlp.engine.reference import data_loss

# scipy.optimize.minimize ends L-BFGS on a callback's StopIteration from 1.11 on.
_LBFGS_STOPS = tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 11)

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin
    HAS_CALLBACKS = True
except ImportError:  # older scikit-learn: estimators without set_callbacks
    HAS_CALLBACKS = False

    class CallbackSupportMixin:  # noqa: D101 -- a stand-in with nothing to document
        pass


def _listened_to(est):
    """Whether this fit has callbacks of its own or runs inside a meta-estimator's task."""
    return HAS_CALLBACKS and (bool(getattr(est, "_skl_callbacks", None))
                              or hasattr(est, "_parent_callback_ctx"))


class EpochEvents:
    """What happens around each epoch of one ``fit`` or ``partial_fit`` call.

    Parameters
    ----------
    est : FastMLPClassifier or FastMLPRegressor
        The estimator being fitted.
    X, y : array-like
        The data as passed to ``fit``, handed to the callbacks' hooks.
    sample_weight : array-like or None
        Handed to the hooks as ``metadata={"sample_weight": ...}``.
    incremental : bool
        Whether this is a ``partial_fit`` call (one epoch).
    """

    def __init__(self, est, X, y, sample_weight, incremental):
        self._est = est
        self._validation = None
        self._epoch_ctx = None
        self.context = None
        self._lbfgs_stopped = False
        if not _listened_to(est):
            return
        if est.solver in ("sgd", "adam"):
            n_epochs = 1 if incremental else est.max_iter
        else:  # L-BFGS: its iterations, and one empty task after the last
            n_epochs = max(est.max_iter, 1) + 1
        self._hook_args = dict(X=X, y=y, metadata=None if sample_weight is None
                               else {"sample_weight": sample_weight})
        self.context = est._init_callback_context(
            task_name="partial_fit" if incremental else "fit", max_subtasks=n_epochs)
        # Epoch subtasks only when some callback of this fit can see them.
        self._epochs_listened = bool(self.context._callbacks) and n_epochs > 0
        self.context.call_on_fit_task_begin(estimator=est, **self._hook_args)

    @property
    def per_epoch(self):
        """Whether something runs after each epoch, so epochs must run one per call."""
        return self._epochs_listened if self.context is not None else False

    def watch_validation(self, X_val, Y_val, sample_weight_val, batch_size):
        """Record the validation loss after each epoch (see :func:`validation_loss`).

        Parameters
        ----------
        X_val : {ndarray, sparse matrix} of shape (n_val, n_features)
            The held-out rows, in the compute dtype.
        Y_val : ndarray of shape (n_val, n_outputs)
            Their targets as the network is trained on them (one-hot for classifiers).
        sample_weight_val : ndarray of shape (n_val,) or None
            Their weights.
        batch_size : int
            Rows per training mini-batch.
        """
        Y_val = np.asarray(Y_val, dtype=np.float64)
        self._validation = (X_val, Y_val, sample_weight_val, batch_size)

    def begin_epoch(self, task_name="epoch", attributes=None):
        """Open the task of the next epoch and call ``on_fit_task_begin``.

        Parameters
        ----------
        task_name : str, default="epoch"
            The task's name.
        attributes : dict, callable or None, default=None
            The weights a ``fitted_estimator`` gets (a callable is called only
            if a hook asks for one); None for the estimator's current weights.
        """
        if not self.per_epoch:
            return
        est = self._est
        if attributes is None:
            attributes = lambda: _fitted_attributes(est)  # noqa: E731
        self._epoch_ctx = self.context.subcontext(task_name=task_name)
        self._epoch_ctx.call_on_fit_task_begin(
            estimator=est, reconstruction_attributes=attributes, **self._hook_args)

    def end_epoch(self, attributes=None):
        """Bookkeeping after an epoch; returns whether a callback asks to stop.

        Parameters
        ----------
        attributes : dict, callable or None, default=None
            As in :meth:`begin_epoch`.

        Returns
        -------
        stop : bool
        """
        est = self._est
        if self._validation is not None:
            est.validation_loss_curve_.append(validation_loss(est, *self._validation))
        if not self.per_epoch or self._epoch_ctx is None:
            return False
        if attributes is None:
            attributes = lambda: _fitted_attributes(est)  # noqa: E731
        ctx, self._epoch_ctx = self._epoch_ctx, None
        return ctx.call_on_fit_task_end(estimator=est, reconstruction_attributes=attributes,
                                        **self._hook_args)

    def lbfgs_callback(self, unpack):
        """The ``callback`` for ``scipy.optimize.minimize``, or None when nothing listens.

        As scikit-learn's ``LogisticRegression`` bridges its L-BFGS: each
        iteration is a task, ended by scipy's callback, which opens the next
        one; :meth:`end_lbfgs` closes the last, which never ran.

        Parameters
        ----------
        unpack : callable
            Maps scipy's parameter vector to ``(coefs, intercepts)``.

        Returns
        -------
        callback : callable or None
        """
        if not self.per_epoch:
            return None
        est = self._est
        coefs, intercepts = unpack(np.concatenate(
            [np.ravel(a) for a in [*est.coefs_, *est.intercepts_]]))
        self.begin_epoch("lbfgs-iter", _attributes(coefs, intercepts))

        def callback(intermediate_result):
            attributes = _attributes(*unpack(intermediate_result.x))
            stop = self.end_epoch(attributes)
            self.begin_epoch("lbfgs-iter", attributes)
            if stop and _LBFGS_STOPS:
                self._lbfgs_stopped = True
                raise StopIteration
        return callback

    def end_lbfgs(self):
        """Close the L-BFGS task that never ran; returns whether a callback stopped it."""
        if self._epoch_ctx is not None:
            ctx, self._epoch_ctx = self._epoch_ctx, None
            ctx.call_on_fit_task_end(estimator=self._est)
        return self._lbfgs_stopped

    def end_fit(self):
        """Close the fit's task, after the final model is in place."""
        if self.context is not None:
            self.context.call_on_fit_task_end(estimator=self._est, reconstruction_attributes={},
                                              **self._hook_args)


def _attributes(coefs, intercepts):
    return {"coefs_": [np.array(c) for c in coefs],
            "intercepts_": [np.array(b) for b in intercepts]}


def _fitted_attributes(est):
    """The weights at this point of training, copied: training goes on updating them."""
    return _attributes(est.coefs_, est.intercepts_)


def validation_loss(est, X_val, Y_val, sample_weight_val, batch_size):
    """The training loss on held-out rows, with the L2 term of one training mini-batch.

    The data term is the loss the network is trained on (log-loss, squared
    error, Poisson deviance), averaged over the held-out rows with their
    weights. The L2 term is ``alpha / (2 * B * w) * sum of squared weights``,
    with ``B`` the rows of a training mini-batch and ``w`` the mean held-out
    weight (1 without ``sample_weight``): the term each mini-batch's loss
    carries, so ``loss_curve_`` (the mean of those losses) and this loss
    differ by their data terms only.

    Parameters
    ----------
    est : FastMLPClassifier or FastMLPRegressor
        The estimator, with the weights to evaluate.
    X_val : {ndarray, sparse matrix} of shape (n_val, n_features)
        The held-out rows.
    Y_val : ndarray of shape (n_val, n_outputs)
        Their targets as trained on (one-hot or indicator for classifiers).
    sample_weight_val : ndarray of shape (n_val,) or None
        Their weights.
    batch_size : int
        Rows per training mini-batch.

    Returns
    -------
    loss : numpy.float64
    """
    network = est._network(est._layer_units())
    out = est._forward_pass_fast(X_val, check_input=False)
    data = data_loss(Y_val, out.astype(np.float64, copy=False), network.loss, sample_weight_val)
    l2 = sum(float(np.dot(c.ravel(), c.ravel())) for c in est.coefs_)
    mean_weight = 1.0 if sample_weight_val is None else float(np.mean(sample_weight_val))
    return np.float64(data + 0.5 * est.alpha * l2 / (batch_size * mean_weight))
