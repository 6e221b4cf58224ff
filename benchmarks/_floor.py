"""The layer-1 GEMM floor: an epoch of only the first layer's two matrix products.

Every mini-batch of a sigmoid MLP on MNIST multiplies its rows of X by the
first weight matrix (forward, ``X_b W1``) and its transpose by the first
layer's deltas (weight gradient, ``X_b^T D1``). With 784 inputs those two
products are most of an epoch's flops. This "library" does only them, with
NumPy's BLAS (all its threads), preallocated outputs and contiguous slices
of X (no shuffle, no gather): no trainer that computes them can beat it by
much, so ``fastmlp ÷ floor`` says how much of an epoch is anything else.
"""

import numpy as np


class LayerOneGemms:
    """The two first-layer products of every mini-batch of an epoch.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous rows.
    units : int
        Units of the first hidden layer.
    batch_size : int
        Mini-batch rows.
    seed : int, default=0
        Of the random weights and deltas (the values do not change the time).
    """

    def __init__(self, X, units, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        dtype = X.dtype
        self.X = X
        self.batch_size = batch_size
        self.W = rng.normal(scale=0.05, size=(X.shape[1], units)).astype(dtype)
        self.D = rng.normal(size=(batch_size, units)).astype(dtype)
        self.Z = np.empty((batch_size, units), dtype=dtype)
        self.G = np.empty((X.shape[1], units), dtype=dtype)

    def epoch(self):
        """Run both products for every batch; returns the last batch's row count.

        Returns
        -------
        int
        """
        m = 0
        for r0 in range(0, self.X.shape[0], self.batch_size):
            Xb = self.X[r0:r0 + self.batch_size]
            m = Xb.shape[0]
            np.dot(Xb, self.W, out=self.Z[:m])
            np.dot(Xb.T, self.D[:m], out=self.G)
        return m

    def last_batch_error(self):
        """Largest relative error of the outputs against a fresh product of the last batch.

        Returns
        -------
        float
        """
        n = self.X.shape[0]
        m = n - (n - 1) // self.batch_size * self.batch_size
        Xb = self.X[n - m:].astype(np.float64)
        z = Xb @ self.W.astype(np.float64)
        g = Xb.T @ self.D[:m].astype(np.float64)
        return max(np.abs(self.Z[:m] - z).max() / np.abs(z).max(),
                   np.abs(self.G - g).max() / np.abs(g).max())
