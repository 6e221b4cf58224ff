"""The machinery FastMLPClassifier and FastMLPRegressor share: scikit-learn's MLP hooks, replaced.

The estimators (:mod:`fastmlp.estimators`) subclass :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor`, so parameters, validation, error
messages, fitted attributes and the early-stopping / ``n_iter_no_change``
bookkeeping are scikit-learn's own. What is replaced is the work: the
mini-batch loop (many batches per compiled call, shuffling by index), the
L-BFGS objective and the forward pass of ``predict``.
"""

import contextlib
import copy
import numbers
import time
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import assert_all_finite, column_or_1d, validate_data

from fastmlp import _callbacks, _class_weight, _compat, config
from fastmlp._compat import Options, StrOptions
from fastmlp.engine import threads
from fastmlp.engine import backends
from fastmlp.engine.labels import encode_labels
from fastmlp.engine.network import Network
from fastmlp.engine.optimizers import make_optimizer


class TrainingDivergedError(ValueError):
    """Training produced a non-finite loss or parameter.

    The estimator keeps the last finite parameters (those at the start of the
    failing chunk of mini-batches), so it can still predict or be refitted.
    Its message starts with scikit-learn's for the same failure. Fits with
    ``early_stopping=True`` do not raise it: as in scikit-learn, they stop
    with the weights of the best validation score.
    """


# scikit-learn's message when its MLP ends a fit with non-finite weights.
_SKLEARN_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may "
                       "contain large values and need to be preprocessed.")


_EXTRA_CONSTRAINTS = {
    "backend": [StrOptions({"auto", *backends.BACKENDS})],
    "dtype": [None, StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64})],
}


class _FastMLPMixin(_callbacks.CallbackSupportMixin):
    """The training and inference machinery shared by both estimators."""

    # ---- dtype -------------------------------------------------------------------
    def _compute_dtype(self, X_dtype, first_pass):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        if not first_pass and hasattr(self, "coefs_"):
            return np.asarray(self.coefs_[0]).dtype  # keep training in the model's dtype
        return np.dtype(np.float32) if X_dtype == np.float32 else np.dtype(np.float64)

    def _validate_input(self, X, y, incremental, reset):
        # scikit-learn's MLP _validate_input, except that when the kernels look
        # for NaN and inf in each batch's rows as they train them (while the rows
        # are in cache), scikit-learn's separate pass over X is skipped: 11 ms per
        # MNIST epoch, 7 % of one at batch 128. y is always checked.
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=not is_classifier(self), dtype=(np.float64, np.float32),
                             reset=reset, ensure_all_finite=not self._kernels_check_x())
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if is_classifier(self):
            self._row_class_weight = _class_weight.row_weights(self, y)
            y = encode_labels(self, y, incremental)
        dtype = self._compute_dtype(X.dtype, first_pass=reset)
        computed = X.astype(dtype, copy=False)
        if computed.dtype.itemsize < X.dtype.itemsize and not self._kernels_check_x():
            self._assert_finite_x(computed)  # float64 beyond float32's range is inf now
        return computed, y

    def _kernels_check_x(self):
        """Whether training checks X for NaN and inf itself (see ``_assert_finite_x``)."""
        return backends.checks_x_while_training(self.backend_, self.solver)

    def _assert_finite_x(self, X):
        """scikit-learn's finiteness check and error for X, run after the kernels found NaN or inf.

        Also run on the early-stopping rows, which the kernels never train on.
        Under ``sklearn.config_context(assume_finite=True)`` it checks nothing,
        as scikit-learn's would not.
        """
        assert_all_finite(X, estimator_name=type(self).__name__, input_name="X")

    def _network(self, layer_units):
        if not is_classifier(self):
            loss = self.loss
        elif self.loss == "squared_error":
            loss = "sigmoid_squared_error"
        elif self.out_activation_ == "softmax":
            loss = "log_loss"
        else:
            loss = "binary_log_loss"
        return Network(layer_units, self.activation, loss)

    def _layer_units(self):
        return [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]

    def _initialize(self, y, layer_units, dtype):
        super()._initialize(y, layer_units, dtype)
        if is_classifier(self) and self.loss == "squared_error":
            self.out_activation_ = "logistic"  # squared error on sigmoid outputs
        if self.solver in ("sgd", "adam"):
            self.validation_loss_curve_ = [] if self.early_stopping else None
        if self.solver not in ("sgd", "adam") or not self.early_stopping:
            # Only early stopping reads these copies; elsewhere they would just
            # double the size of pickles.
            del self._best_coefs, self._best_intercepts

    # ---- backend -------------------------------------------------------------------
    def _fit_backend(self, X, incremental):
        """The backend of this fit: ``backend``, or for 'auto' the one its size calls for.

        The size is bounded from the parameters and X's shape before any
        other work (``max_iter`` epochs; the output layer, whose width is not
        known before the labels are encoded, counts as one unit), so the
        choice never depends on how training goes.
        """
        if self.backend != "auto":
            return self.backend
        if incremental:
            # A stream of partial_fit calls: its total size is unknown, and
            # many small calls are where the kernels gain most.
            return "numba"
        hidden = self.hidden_layer_sizes
        try:
            n_rows, n_features = _compat.num_samples_and_features(X)
            units = [n_features, *map(int, hidden if hasattr(hidden, "__iter__") else [hidden]),
                     1]
        except (TypeError, ValueError):
            return "numba"  # not a matrix or no layer sizes: validation will say what is wrong
        n_weights = sum(a * b for a, b in zip(units[:-1], units[1:]))
        if self.solver == "lbfgs":
            n_batches = self.max_iter  # about one pass over all rows per iteration
        else:
            rows = min(200, n_rows) if self.batch_size == "auto" else self.batch_size
            n_batches = self.max_iter * -(-n_rows // max(1, min(rows, n_rows)))
        return backends.auto_backend(n_batches, 6.0 * self.max_iter * n_rows * n_weights)

    def _predict_backend(self, network, n_rows):
        """The backend of a forward pass over ``n_rows`` rows (see :meth:`_fit_backend`)."""
        if self.backend != "auto":
            return self.backend
        n_chunks = -(-n_rows // config.PREDICT_CHUNK_ROWS)
        return backends.auto_backend(n_chunks, 2.0 * n_rows * network.n_params)

    # ---- fit -----------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        # Opened before the snapshot below, so that a failed call still leaves
        # the callbacks' context to scikit-learn's teardown.
        self._epoch_events = _callbacks.EpochEvents(self, X, y, sample_weight, incremental)
        try:
            # A call that fails on bad input leaves the model exactly as it was.
            with _restore_on_error(self):
                self.backend_ = self._fit_backend(X, incremental)
                # BLAS threads of this fit. Only an explicit backend='numpy' lifts
                # the cap: 'auto' sends only small fits to NumPy, which gain nothing
                # from BLAS threads, and one thread per product keeps their results
                # the same bits however fits overlap, as on the kernels.
                with threads.share_cores(capped=self.backend != "numpy"):
                    super()._fit(X, y, sample_weight=sample_weight, incremental=incremental)
                self._epoch_events.end_fit()
                return self
        finally:
            del self._epoch_events
            self.__dict__.pop("_row_class_weight", None)

    def _fit_stochastic(self, X, y, sample_weight, activations, deltas, coef_grads,
                        intercept_grads, layer_units, incremental):
        sample_weight = _class_weight.combine(self, sample_weight, X.dtype)
        events = self._epoch_events
        network = self._network(layer_units)
        dtype = X.dtype
        params = network.pack(self.coefs_, self.intercepts_, dtype)
        self.coefs_, self.intercepts_ = network.views(params)
        if (not incremental or not hasattr(self, "_optimizer")
                or getattr(self._optimizer, "kind", None) is None):
            self._optimizer = make_optimizer(
                self.solver, network.n_params, dtype,
                learning_rate_init=self.learning_rate_init, learning_rate=self.learning_rate,
                momentum=self.momentum, nesterovs_momentum=self.nesterovs_momentum,
                power_t=self.power_t, beta_1=self.beta_1, beta_2=self.beta_2,
                epsilon=self.epsilon)

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        train_idx, validation = self._validation_split(X, y, sample_weight)
        n_samples = X.shape[0] if train_idx is None else train_idx.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        trainer = backends.make_trainer(self.backend_, network, X, y, sample_weight,
                                        batch_size, dtype)
        # partial_fit calls start from the rate the previous call measured.
        known = getattr(self, "_chunk_rate", None) if incremental else None
        n_batches = -(-n_samples // batch_size)  # as many as sklearn's gen_batches
        chunk = backends.ChunkSizer(n_batches, known[1] if known and known[0] == batch_size else None)
        # The epoch order, shuffled in place at the start of each epoch: the same
        # draws as sklearn's shuffle(sample_idx) (one RandomState.shuffle of
        # arange(n), applied to the previous order), and the same orders,
        # without sklearn's input checks or new arrays.
        if self.shuffle:
            rows = np.arange(n_samples, dtype=np.int64) if train_idx is None else train_idx
        else:
            rows = train_idx
        if validation is not None:
            X_val, _, sample_weight_val, Y_val = validation
            events.watch_validation(X_val, Y_val, sample_weight_val, batch_size)
        try:
            self._train_epochs(trainer, params, rows, n_samples, chunk, validation, incremental,
                               X)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        self._chunk_rate = (batch_size, chunk.rate)  # batches per second at this batch size
        if validation is not None:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _validation_split(self, X, y, sample_weight):
        """The training rows' indices and the validation set ``(X, y, sample_weight)``.

        Both None without early stopping. Splitting indices draws exactly what
        splitting X would (same random state, same stratification) without
        copying the training rows.
        """
        if not self.early_stopping:
            return None, None
        stratify = y if (is_classifier(self) and self.n_outputs_ == 1) else None
        train_idx, val_idx = train_test_split(
            np.arange(X.shape[0]), random_state=self._random_state,
            test_size=self.validation_fraction, stratify=stratify)
        X_val, y_val = X[val_idx], y[val_idx]
        if self._kernels_check_x():
            self._assert_finite_x(X_val)
        sample_weight_val = None if sample_weight is None else sample_weight[val_idx]
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset.")
        Y_val = y_val  # as trained on, for validation_loss_curve_
        if is_classifier(self):
            y_val = self._label_binarizer.inverse_transform(y_val)
        return train_idx.astype(np.int64), (X_val, y_val, sample_weight_val, Y_val)

    def _train_epochs(self, trainer, params, rows, n_samples, chunk, validation, incremental, X):
        """Epochs until scikit-learn's rules stop training, whole epochs per call where possible."""
        early_stopping = validation is not None
        X_val, y_val, sample_weight_val, _ = validation if early_stopping else (None,) * 4
        events = self._epoch_events
        many = (trainer.runs_epochs and not events.per_epoch
                and self._many_epochs_per_call(incremental, early_stopping))
        start = time.perf_counter()
        self.n_iter_ = 0
        stop = False
        while not stop and self.n_iter_ < self.max_iter:
            events.begin_epoch()
            try:
                if many and chunk.epochs() > 0:
                    losses = self._run_epochs(
                        trainer, params, rows,
                        min(chunk.epochs(), self.max_iter - self.n_iter_), chunk)
                else:
                    if self.shuffle:
                        self._random_state.shuffle(rows)
                    losses = [self._run_epoch(trainer, params, rows, chunk.n_batches, chunk)
                              / n_samples]
            except TrainingDivergedError:
                if self._kernels_check_x():
                    self._assert_finite_x(X)  # NaN or inf in X: report the input
                if not early_stopping:
                    raise
                self._end_diverged_epoch(params, n_samples, start, X_val, y_val,
                                         sample_weight_val)
                events.end_epoch()
                break
            for e, loss in enumerate(losses):
                stop = self._end_epoch(loss, n_samples, start, early_stopping, X_val, y_val,
                                       sample_weight_val, incremental)
                if stop and e < len(losses) - 1:
                    raise RuntimeError(  # the kernel applies the same rule; never expected
                        "fastmlp internal error: the kernel trained past the epoch "
                        "where training stops. Please report this.")
            stop = events.end_epoch() or stop

    def _many_epochs_per_call(self, incremental, early_stopping):
        """Whether whole epochs may run in one compiled call.

        Only where nothing per epoch needs Python: no validation score, no
        per-epoch printing, no learning rate that changes every epoch. And
        when shuffling, only with an integer ``random_state``: its
        ``RandomState`` (MT19937) is created for this fit alone, while the
        kernel draws from a copy of the state without the generator's lock,
        which a ``RandomState`` passed in (or NumPy's global one, for None)
        may share with other threads; those shuffle in Python, as
        scikit-learn does.
        """
        return (not incremental and not early_stopping
                and not self.verbose
                and (self.solver != "sgd" or self.learning_rate != "invscaling")
                and (not self.shuffle or isinstance(self.random_state, numbers.Integral)))

    def _end_epoch(self, loss, n_samples, start, early_stopping, X_val, y_val,
                   sample_weight_val, incremental):
        """scikit-learn's bookkeeping after an epoch; returns whether training stops."""
        self.n_iter_ += 1
        self.loss_ = np.float64(loss)  # sklearn's type
        self.t_ += n_samples
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print("Iteration %d, loss = %.8f, elapsed = %.2f s"
                  % (self.n_iter_, self.loss_, time.perf_counter() - start))

        self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)
        self._optimizer.iteration_ends(self.t_)

        if self._no_improvement_count > self.n_iter_no_change:
            if early_stopping:
                msg = ("Validation score did not improve more than "
                       "tol=%f for %d consecutive epochs." % (self.tol, self.n_iter_no_change))
            else:
                msg = ("Training loss did not improve more than tol=%f"
                       " for %d consecutive epochs." % (self.tol, self.n_iter_no_change))
            if self._optimizer.trigger_stopping(msg, self.verbose):
                return True
            self._no_improvement_count = 0

        if incremental:
            return True

        if self.n_iter_ == self.max_iter:
            warnings.warn(
                "Stochastic Optimizer: Maximum iterations (%d) "
                "reached and the optimization hasn't converged yet."
                % self.max_iter, ConvergenceWarning)
        return False

    def _run_epochs(self, trainer, params, rows, n_epochs, chunk):
        """Up to ``n_epochs`` whole epochs in one compiled call; returns their mean losses.

        On Ctrl-C or divergence, parameters, optimizer, order and random state
        all stay as they were before the call.
        """
        saved = params.copy(), _optimizer_snapshot(self._optimizer), \
            None if rows is None else rows.copy()
        stop_rule = backends.StopRule(self.best_loss_, self._no_improvement_count, self.tol,
                                      self.n_iter_no_change)
        tic = time.perf_counter()
        try:
            losses, diverged = trainer.run_epochs(
                params, self._optimizer, rows, n_epochs, self.alpha,
                self._random_state if self.shuffle else None, stop_rule)
        except KeyboardInterrupt:
            self._restore(params, rows, saved)
            raise
        chunk.update(chunk.n_batches * max(len(losses), 1), time.perf_counter() - tic)
        if diverged:
            self._restore(params, rows, saved)
            self._diverged(self.n_iter_ + len(losses) + 1)
        return losses

    def _restore(self, params, rows, saved):
        params[...] = saved[0]
        self._optimizer = saved[1]
        if rows is not None:
            rows[...] = saved[2]

    def _diverged(self, epoch):
        raise TrainingDivergedError(
            f"{_SKLEARN_NON_FINITE} Training diverged: the loss or the weights became "
            f"non-finite (NaN or inf) in epoch {epoch}. The last finite weights "
            "were restored. Scale the inputs (e.g. StandardScaler), lower "
            "learning_rate_init, or increase alpha.")

    def _end_diverged_epoch(self, params, n_samples, start, X_val, y_val, sample_weight_val):
        """End an early-stopping fit at a diverged epoch, as scikit-learn ends it.

        scikit-learn (issue #29504) records the epoch with its non-finite loss
        and the validation score of the non-finite weights (NaN for a
        regressor), and ends with the weights of the best validation score.
        It trains on, but non-finite weights stay non-finite and score the
        same every epoch, so later epochs cannot change the weights it ends
        with: stopping here ends with the same ones.
        """
        params[...] = np.nan  # the diverged weights, as scikit-learn holds them
        self._end_epoch(np.nan, n_samples, start, True, X_val, y_val, sample_weight_val,
                        incremental=False)
        warnings.warn(
            "Training diverged: the loss or the weights became non-finite (NaN or inf) in "
            f"epoch {self.n_iter_}. Training stopped there; the weights of the best "
            "validation score were kept. Scale the inputs (e.g. StandardScaler), lower "
            "learning_rate_init, or increase alpha.", ConvergenceWarning)

    def _run_epoch(self, trainer, params, rows, n_batches, chunk):
        """One epoch, a bounded chunk of batches per compiled call; returns the loss sum."""
        accumulated = 0.0
        b = 0
        while b < n_batches:
            stop = min(n_batches, b + chunk.size)
            saved = params.copy(), _optimizer_snapshot(self._optimizer)
            tic = time.perf_counter()
            try:
                # The running sum goes in, so the loss does not depend on chunking.
                loss_sum, n_done = trainer.run(params, self._optimizer, rows, b, stop,
                                               self.alpha, accumulated)
            except KeyboardInterrupt:
                # Ctrl-C may land between the kernel's update of params and the
                # optimizer's bookkeeping (or mid-step in NumPy): go back to the
                # consistent state at the start of this chunk.
                self._restore(params, None, saved)
                raise
            chunk.update(stop - b, time.perf_counter() - tic)
            if n_done < stop - b or not np.isfinite(loss_sum) or not np.isfinite(params).all():
                self._restore(params, None, saved)
                self._diverged(self.n_iter_ + 1)
            accumulated = loss_sum
            b = stop
        return accumulated

    def _fit_lbfgs(self, X, y, sample_weight, activations, deltas, coef_grads,
                   intercept_grads, layer_units):
        sample_weight = _class_weight.combine(self, sample_weight, X.dtype)
        network = self._network(layer_units)
        dtype = X.dtype
        objective = backends.FullBatchObjective(self.backend_, network, X, y, sample_weight,
                                                dtype)
        packed = network.pack(self.coefs_, self.intercepts_, np.float64)
        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1

        def loss_grad(w):
            loss, grad = objective(w, self.alpha)
            return loss, grad.astype(np.float64)

        events = self._epoch_events
        opt_res = scipy.optimize.minimize(
            loss_grad, packed, method="L-BFGS-B", jac=True,
            callback=events.lbfgs_callback(lambda w: network.views(w.astype(dtype))),
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_compat.lbfgs_iprint_options(iprint)})
        if not np.isfinite(opt_res.x).all() or not np.isfinite(opt_res.fun):
            raise TrainingDivergedError(
                f"{_SKLEARN_NON_FINITE} L-BFGS produced a non-finite loss or weights; the "
                "previous weights were kept. Scale the inputs (e.g. StandardScaler) or "
                "increase alpha.")
        if events.end_lbfgs():  # stopped by a callback: no convergence warning
            self.n_iter_ = min(opt_res.nit, self.max_iter)
        else:
            self.n_iter_ = _compat.check_optimize_result(opt_res, self.max_iter)
        self.loss_ = np.float64(opt_res.fun)
        self.coefs_, self.intercepts_ = network.views(opt_res.x.astype(dtype))

    # ---- predict -------------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        network = self._network(self._layer_units())
        dtype = np.asarray(self.coefs_[0]).dtype
        params = network.pack(self.coefs_, self.intercepts_, dtype)
        # Public predictions never return NaN silently (relu maps NaN to 0 in the
        # kernels, so NaN weights need their own check). Internal validation scoring
        # (check_input=False) keeps scikit-learn's rule: non-finite -> NaN score.
        if check_input and not np.isfinite(params).all():
            raise ValueError("The model's weights (coefs_ or intercepts_) contain NaN or "
                             "inf, so its outputs would not be finite. Refit the model.")
        backend = self._predict_backend(network, X.shape[0])
        with threads.share_cores(capped=self.backend != "numpy", join_enclosing=True):
            out = backends.predict(backend, network, params, X)
        if check_input and not np.isfinite(out).all():
            raise ValueError(
                "The network's outputs are not finite (NaN or inf): its weights contain "
                "NaN or inf, or the inputs are too large for them. Scale the inputs "
                "(e.g. StandardScaler) or refit the model.")
        return out.astype(np.result_type(X.dtype, dtype), copy=False)


@contextlib.contextmanager
def _restore_on_error(est):
    """Put the estimator's attributes back as they were if the block raises.

    Divergence is the exception: it keeps the last finite parameters on purpose.
    Lists (``loss_curve_``, ``validation_scores_``) and the optimizer's state are
    updated in place during training, so they are copied, not just referenced.
    """
    before = {key: list(value) if isinstance(value, list)
              else _optimizer_snapshot(value) if key == "_optimizer" else value
              for key, value in vars(est).items()}
    try:
        yield
    except TrainingDivergedError:
        raise
    except Exception:
        est.__dict__.clear()
        est.__dict__.update(before)
        raise


def _with_extra_constraints(base):
    return {**base._parameter_constraints, **_EXTRA_CONSTRAINTS}


def _optimizer_snapshot(optimizer):
    """A copy of an optimizer that later steps of the original do not change.

    A shallow copy with its own state arrays: ``copy.deepcopy`` took ~50 us.
    """
    snapshot = copy.copy(optimizer)
    for name, value in vars(optimizer).items():
        if isinstance(value, np.ndarray):
            setattr(snapshot, name, value.copy())
    return snapshot
