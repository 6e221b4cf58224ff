"""An idiomatic NumPy trainer: the "NumPy" that ``fastmlp bench`` quotes speed-ups against.

It trains the benchmark's network (sigmoid hidden layers, softmax output with
log loss, mini-batch SGD with momentum and an L2 penalty) the way someone who
wanted fast NumPy would write it:

* every buffer (the gathered batch, activations, deltas, gradients, velocity,
  scratch) is allocated once and reused; products write into them with
  ``out=`` and element-wise steps run in place;
* the parameters, gradients and velocity each live in one flat array with
  per-layer views, so the optimizer's update is four whole-array operations;
* matrix products go to NumPy's BLAS with the threads it has.

The math and the random draws are scikit-learn's ``MLPClassifier(solver="sgd")``
step for step (the same starting weights, the same shuffles from the same
``RandomState``, the same order of floating-point operations in the update),
so its loss curve follows scikit-learn's and fastmlp's to rounding and only
the time differs.
"""

import copy

import numpy as np
from scipy.special import expit
from sklearn.utils import check_random_state

__all__ = ["NumpyMLPClassifier"]


class NumpyMLPClassifier:
    """Sigmoid MLP classifier trained by mini-batch SGD in plain, preallocated NumPy.

    One :meth:`partial_fit` call is one epoch over the data, as in
    scikit-learn's ``MLPClassifier.partial_fit``; the momentum and the random
    state carry over between calls.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Widths of the hidden layers.
    batch_size : int, default=200
        Rows per mini-batch (clipped to the number of rows).
    learning_rate_init : float, default=0.1
        Constant learning rate.
    momentum : float, default=0.9
        Momentum of the velocity.
    nesterovs_momentum : bool, default=True
        Whether the update uses Nesterov's momentum.
    alpha : float, default=1e-4
        L2 penalty, scaled by the batch rows as in scikit-learn.
    shuffle : bool, default=True
        Whether every epoch visits the rows in a new random order.
    random_state : int, RandomState instance or None, default=None
        Source of the starting weights and the shuffles. Pass the same
        ``RandomState`` seed as to scikit-learn or fastmlp to get their weights
        and order.
    dtype : {"float32", "float64"}, default="float32"
        Compute dtype; ``X`` is converted to it once per call.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coefs_, intercepts_ : list of ndarray
        Views of the weights ``(fan_in, fan_out)`` and biases of each layer.
    loss_curve_ : list of float
        Mean training loss of every epoch (data loss plus the L2 term, per
        batch, weighted by the batch rows).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp.bench.baselines import NumpyMLPClassifier
    >>> X = np.random.default_rng(0).random((60, 4))
    >>> y = np.arange(60) % 3
    >>> model = NumpyMLPClassifier((8,), batch_size=16, random_state=0)
    >>> model.partial_fit(X, y, classes=[0, 1, 2]).predict(X).shape
    (60,)
    """

    def __init__(self, hidden_layer_sizes=(100,), batch_size=200, learning_rate_init=0.1,
                 momentum=0.9, nesterovs_momentum=True, alpha=1e-4, shuffle=True,
                 random_state=None, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.alpha = alpha
        self.shuffle = shuffle
        self.random_state = random_state
        self.dtype = dtype

    def _initialize(self, n_features, classes):
        """Draw scikit-learn's starting weights into one flat buffer with per-layer views."""
        self.classes_ = np.asarray(classes)
        if self.classes_.size < 3:
            raise ValueError(
                "NumpyMLPClassifier trains a softmax output and needs at least 3 classes, "
                f"got {self.classes_.size}; use scikit-learn's MLPClassifier for binary "
                "problems.")
        self._rng = check_random_state(self.random_state)
        self._dtype = np.dtype(self.dtype)
        self.units_ = [int(n_features), *map(int, self.hidden_layer_sizes),
                       self.classes_.size]
        shapes = list(zip(self.units_[:-1], self.units_[1:]))
        n_params = sum(a * b + b for a, b in shapes)
        self._params = np.empty(n_params, dtype=self._dtype)
        self._grads = np.empty_like(self._params)
        self._velocity = np.zeros_like(self._params)
        self._update = np.empty_like(self._params)
        self.coefs_, self.intercepts_ = self._views(self._params)
        self._coef_grads, self._intercept_grads = self._views(self._grads)
        # The update buffer is free until the step: the penalty term borrows it.
        self._penalties, _ = self._views(self._update)
        for (fan_in, fan_out), W, b in zip(shapes, self.coefs_, self.intercepts_):
            # scikit-learn's _init_coef for logistic units: weights then biases, per layer.
            bound = np.sqrt(2.0 / (fan_in + fan_out))
            W[...] = self._rng.uniform(-bound, bound, (fan_in, fan_out))
            b[...] = self._rng.uniform(-bound, bound, fan_out)
        self.loss_curve_ = []
        self._rows = 0

    def __deepcopy__(self, memo):
        """An independent copy whose layer views alias its own flat buffers, as the original's do.

        ``copy.deepcopy`` copies each NumPy view on its own, which would leave ``coefs_`` apart
        from the buffer the steps update; the benchmarks copy a trained model every round.
        """
        clone = copy.copy(self)
        memo[id(self)] = clone
        for name, value in vars(self).items():
            if isinstance(value, (list, np.ndarray, np.random.RandomState)):
                setattr(clone, name, copy.deepcopy(value, memo))
        if hasattr(self, "_params"):
            clone.coefs_, clone.intercepts_ = clone._views(clone._params)
            clone._coef_grads, clone._intercept_grads = clone._views(clone._grads)
            clone._penalties, _ = clone._views(clone._update)
            clone._rows = 0  # per-batch buffers are made anew on the next call
        return clone

    def _views(self, flat):
        """Per-layer weight and bias views of a flat buffer: all weights first, then biases."""
        coefs, intercepts, start = [], [], 0
        for fan_in, fan_out in zip(self.units_[:-1], self.units_[1:]):
            coefs.append(flat[start:start + fan_in * fan_out].reshape(fan_in, fan_out))
            start += fan_in * fan_out
        for fan_out in self.units_[1:]:
            intercepts.append(flat[start:start + fan_out])
            start += fan_out
        return coefs, intercepts

    def _allocate(self, rows):
        """The per-batch buffers, for batches of up to ``rows`` rows."""
        if self._rows == rows:
            return
        dt = self._dtype
        self._xb = np.empty((rows, self.units_[0]), dtype=dt)
        self._labels_b = np.empty(rows, dtype=np.intp)
        self._acts = [np.empty((rows, u), dtype=dt) for u in self.units_[1:]]
        self._deltas = [np.empty((rows, u), dtype=dt) for u in self.units_[1:]]
        self._scratch = [np.empty((rows, u), dtype=dt) for u in self.units_[1:]]
        self._row_stat = np.empty((rows, 1), dtype=dt)
        self._arange = np.arange(rows)
        self._true_p = np.empty(rows, dtype=dt)
        self._rows = rows

    def _forward(self, A, n):
        """Activations of the first ``n`` buffered rows, input ``A``; returns the output's view."""
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            Z = self._acts[i][:n]
            np.matmul(A, W, out=Z)
            Z += b
            if i < last:
                expit(Z, out=Z)
            else:  # softmax, row by row, as scikit-learn's inplace_softmax
                peak = self._row_stat[:n]
                np.max(Z, axis=1, keepdims=True, out=peak)
                Z -= peak
                np.exp(Z, out=Z)
                np.sum(Z, axis=1, keepdims=True, out=peak)
                Z /= peak
            A = Z
        return A

    def _batch_loss(self, P, labels, n):
        """Mean log loss of the true classes (clipped as scikit-learn) plus the L2 term."""
        true_p = self._true_p[:n]
        np.copyto(true_p, P[self._arange[:n], labels])
        eps = np.finfo(self._dtype).eps
        np.clip(true_p, eps, 1 - eps, out=true_p)
        np.log(true_p, out=true_p)
        l2 = sum(np.dot(W.ravel(), W.ravel()) for W in self.coefs_)
        return float(-true_p.sum() / n + 0.5 * self.alpha * l2 / n)

    def _backward(self, X_b, labels, n):
        """Gradients of the batch into the flat gradient buffer."""
        last = len(self.coefs_) - 1
        delta = self._deltas[last][:n]
        np.copyto(delta, self._acts[last][:n])
        delta[self._arange[:n], labels] -= 1  # softmax output minus one-hot targets
        for i in range(last, -1, -1):
            A_prev = X_b if i == 0 else self._acts[i - 1][:n]
            cg, ig = self._coef_grads[i], self._intercept_grads[i]
            np.matmul(A_prev.T, delta, out=cg)
            penalty = np.multiply(self.coefs_[i], self.alpha, out=self._penalties[i])
            cg += penalty
            cg /= n
            np.sum(delta, axis=0, out=ig)
            ig /= n
            if i > 0:
                prev = self._deltas[i - 1][:n]
                np.matmul(delta, self.coefs_[i].T, out=prev)
                A = self._acts[i - 1][:n]
                prev *= A  # scikit-learn's inplace_logistic_derivative: delta * A * (1 - A)
                one_minus = self._scratch[i - 1][:n]
                np.subtract(1, A, out=one_minus)
                prev *= one_minus
                delta = prev

    def _step(self):
        """scikit-learn's SGD update, in place on the flat buffers."""
        g, v, u = self._grads, self._velocity, self._update
        g *= self.learning_rate_init  # g is now lr * grad
        v *= self.momentum
        v -= g
        if self.nesterovs_momentum:
            np.multiply(v, self.momentum, out=u)
            u -= g
            self._params += u
        else:
            self._params += v

    def partial_fit(self, X, y, classes=None):
        """Train one epoch over ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,)
            Labels, all in ``classes``.
        classes : array-like of shape (n_classes,), optional
            All labels; required on the first call, ignored afterwards.

        Returns
        -------
        self : NumpyMLPClassifier
        """
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._initialize(np.shape(X)[1], np.unique(classes))
        X = np.ascontiguousarray(X, dtype=self._dtype)
        y = np.asarray(y)
        labels = np.searchsorted(self.classes_, y)
        known = labels < self.classes_.size
        if not known.all() or np.any(self.classes_[labels] != y):
            raise ValueError(f"y has labels not in classes {self.classes_.tolist()}.")
        n_samples = X.shape[0]
        batch = int(np.clip(self.batch_size, 1, n_samples))
        self._allocate(batch)
        order = np.arange(n_samples)
        if self.shuffle:
            self._rng.shuffle(order)
        loss_sum = 0.0
        for start in range(0, n_samples, batch):
            idx = order[start:start + batch]
            n = idx.size
            X_b = np.take(X, idx, axis=0, out=self._xb[:n], mode="clip")
            labels_b = np.take(labels, idx, out=self._labels_b[:n], mode="clip")
            P = self._forward(X_b, n)
            loss_sum += self._batch_loss(P, labels_b, n) * n
            self._backward(X_b, labels_b, n)
            self._step()
        self.loss_curve_.append(loss_sum / n_samples)
        return self

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        A = np.asarray(X, dtype=self._dtype)
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            Z = A @ W + b
            if i < len(self.coefs_) - 1:
                A = expit(Z, out=Z)
            else:
                Z -= Z.max(axis=1, keepdims=True)
                np.exp(Z, out=Z)
                A = Z / Z.sum(axis=1, keepdims=True)
        return A

    def predict(self, X):
        """Most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y):
        """Accuracy on ``X``, ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows.
        y : array-like of shape (n_samples,)
            True labels.

        Returns
        -------
        accuracy : float
        """
        return float(np.mean(self.predict(X) == np.asarray(y)))
