"""PyTorch CPU reference: scikit-learn's MLP training math in eager PyTorch.

Only imported when ``torch`` is importable; it is not a fastmlp dependency.

The math equals scikit-learn's (and so fastmlp's):

* ``nn.Linear`` layers with sigmoid between them, ``cross_entropy`` on the
  logits (softmax + mean log loss over the batch);
* ``SGD(lr, momentum=0.9, nesterov=True)``. PyTorch keeps ``buf = m*buf + g``
  and steps ``w -= lr*(g + m*buf)``; scikit-learn keeps ``v = m*v - lr*g`` and
  steps ``w += m*v - lr*g``. With ``buf = -v/lr`` these are the same update, so
  scikit-learn's velocities are converted that way when the net is started
  from a scikit-learn model;
* scikit-learn's L2 term ``alpha/2 * ||W||^2 / batch_rows`` (weights only, not
  biases) is PyTorch's ``weight_decay = alpha / batch_rows`` on the weight
  group, set per batch so the last, shorter batch is scaled like scikit-learn's.

Batches are index-based gathers from one tensor of X with a fresh permutation
each epoch (no DataLoader). The shuffle order is PyTorch's own, so the loss
curve is not identical to scikit-learn's, only statistically equivalent.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class TorchSGDNet:
    """A sigmoid MLP and its SGD optimizer, trained one epoch at a time.

    Parameters
    ----------
    coefs : list of ndarray of shape (fan_in, fan_out)
        Weights, scikit-learn's layout.
    intercepts : list of ndarray of shape (fan_out,)
        Biases.
    velocities : list of ndarray or None
        scikit-learn's momentum state (coefs then intercepts), or None for zero.
    learning_rate, momentum, alpha : float
        SGD hyperparameters and L2 penalty, as in scikit-learn.
    batch_size : int
        Mini-batch rows.
    threads : int
        ``torch.set_num_threads`` value.
    seed : int or None, default=0
        Seed of the shuffles; None keeps the rows in order (used to check the
        math against scikit-learn's ``shuffle=False``).
    """

    def __init__(self, coefs, intercepts, velocities, learning_rate, momentum, alpha,
                 batch_size, threads, seed=0):
        torch.set_num_threads(int(threads))
        dtype = torch.from_numpy(np.asarray(coefs[0])).dtype
        layers = []
        for i, (w, b) in enumerate(zip(coefs, intercepts)):
            linear = nn.Linear(w.shape[0], w.shape[1], dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                linear.bias.copy_(torch.from_numpy(np.asarray(b)))
            layers.append(linear)
            if i < len(coefs) - 1:
                layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        self.weights = [m.weight for m in linears]
        self.biases = [m.bias for m in linears]
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        self.optimizer = torch.optim.SGD(
            [{"params": self.weights, "weight_decay": 0.0},
             {"params": self.biases, "weight_decay": 0.0}],
            lr=learning_rate, momentum=momentum, nesterov=True)
        if velocities is not None:
            n = len(coefs)
            bufs = [v.T for v in velocities[:n]] + list(velocities[n:])
            for p, v in zip(self.weights + self.biases, bufs):
                self.optimizer.state[p]["momentum_buffer"] = torch.from_numpy(
                    np.ascontiguousarray(-np.asarray(v) / learning_rate))
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    @classmethod
    def from_sklearn(cls, model, threads, seed=0):
        """Start from a fitted scikit-learn MLPClassifier's weights and momentum.

        Parameters
        ----------
        model : sklearn.neural_network.MLPClassifier
            Trained with ``solver='sgd'``; only read.
        threads : int
            ``torch.set_num_threads`` value.
        seed : int or None, default=0
            Seed of the shuffles (None: rows in order).

        Returns
        -------
        net : TorchSGDNet
        """
        velocities = getattr(getattr(model, "_optimizer", None), "velocities", None)
        return cls([c.copy() for c in model.coefs_], [b.copy() for b in model.intercepts_],
                   velocities, model.learning_rate_init, model.momentum, model.alpha,
                   model.batch_size, threads, seed)

    @staticmethod
    def tensors(X, y):
        """Training tensors sharing memory with the NumPy arrays.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Rows.
        y : ndarray of shape (n_samples,)
            Integer labels 0..n_classes-1.

        Returns
        -------
        X_t, y_t : torch.Tensor
        """
        return (torch.from_numpy(np.ascontiguousarray(X)),
                torch.from_numpy(np.asarray(y, dtype=np.int64)))

    def epoch(self, X, y):
        """One epoch of shuffled mini-batch SGD.

        Parameters
        ----------
        X, y : torch.Tensor
            From :meth:`tensors`.

        Returns
        -------
        loss : float
            Mean data loss over the epoch (without the L2 term, which
            scikit-learn's ``loss_`` includes).
        """
        n = X.shape[0]
        order = (torch.arange(n) if self.generator is None
                 else torch.randperm(n, generator=self.generator))
        total = torch.zeros((), dtype=torch.float64)
        weight_group = self.optimizer.param_groups[0]
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            rows = idx.shape[0]
            weight_group["weight_decay"] = self.alpha / rows
            self.optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.net(X.index_select(0, idx)), y.index_select(0, idx))
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * rows
        return float(total) / n

    def predict(self, X):
        """Class labels (argmax of the logits).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        labels : ndarray of int64
        """
        return self.predict_proba(X).argmax(axis=1)

    def predict_proba(self, X):
        """Softmax probabilities.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Rows.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        with torch.no_grad():
            return torch.softmax(self.net(torch.from_numpy(np.ascontiguousarray(X))),
                                 dim=1).numpy()
