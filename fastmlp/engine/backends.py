"""The two interchangeable training backends behind the estimators.

``numba`` runs compiled kernels over many mini-batches per call with a
workspace allocated once per fit (:mod:`fastmlp.engine.numba_backend`);
``numpy`` is the vectorised reference (:mod:`fastmlp.engine.reference`).
Both take and update the same flat parameter buffer and optimizer objects,
so they can be swapped mid-training. The estimators talk to them through
this module only: :func:`make_trainer` (run batches or epochs),
:class:`FullBatchObjective` (loss plus gradient), :func:`predict`.
"""

import numpy as np
import scipy.sparse as sp

from fastmlp import config
from fastmlp.engine import reference
from fastmlp.engine.numba_backend import NumbaObjective, NumbaTrainer, StopRule, tiled_products
from fastmlp.engine import numba_backend

__all__ = ["BACKENDS", "ChunkSizer", "FullBatchObjective", "NumbaTrainer", "NumpyTrainer",
           "StopRule", "auto_backend", "checks_x_while_training", "loss_and_gradient",
           "make_trainer", "predict", "tiled_products"]

BACKENDS = ("numba", "numpy")


class NumpyTrainer:
    """Mini-batch training with the NumPy reference; same interface as :class:`NumbaTrainer`.

    Parameters
    ----------
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training rows.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets.
    sample_weight : ndarray of shape (n_samples,) or None
        Per-row weights.
    batch_size : int
        Rows per mini-batch.
    dtype : numpy dtype
        Compute dtype.
    """

    #: Whether it can run whole epochs in one call (see :class:`NumbaTrainer`): no.
    runs_epochs = False

    def __init__(self, network, X, Y, sample_weight, batch_size, dtype):
        self.network = network
        self.X = sp.csr_matrix(X, dtype=dtype) if sp.issparse(X) else np.asarray(X, dtype=dtype)
        self.Y = np.asarray(Y, dtype=dtype).reshape(Y.shape[0], -1)
        self.sw = None if sample_weight is None else np.asarray(sample_weight, dtype=dtype)
        self.batch_size = int(batch_size)

    def run(self, params, optimizer, rows, b_start, b_stop, alpha, loss_sum=0.0):
        """Run batches ``b_start`` to ``b_stop``; see :func:`fastmlp.engine.reference.train_batches`.

        Parameters
        ----------
        params : ndarray
            Flat parameters, updated in place.
        optimizer : fastmlp.engine.optimizers.SGD or fastmlp.engine.optimizers.Adam
            Optimizer whose state is updated in place.
        rows : ndarray of int64 or None
            Sample indices in epoch order; None for the rows of X in order.
        b_start, b_stop : int
            Batches to run.
        alpha : float
            L2 penalty.
        loss_sum : float, default=0.0
            Running loss sum of the epoch so far.

        Returns
        -------
        loss_sum : float
        n_done : int
        """
        return reference.train_batches(self.network, params, optimizer, self.X, self.Y,
                                       self.sw, rows, self.batch_size, b_start, b_stop, alpha,
                                       loss_sum)


def make_trainer(backend, network, X, Y, sample_weight, batch_size, dtype):
    """Build the mini-batch trainer of a backend.

    Parameters
    ----------
    backend : {'numba', 'numpy'}
        Which backend.
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    X, Y, sample_weight
        Training data; see :class:`NumbaTrainer`.
    batch_size : int
        Rows per mini-batch.
    dtype : numpy dtype
        Compute dtype.

    Returns
    -------
    trainer : NumbaTrainer or NumpyTrainer
    """
    cls = {"numba": NumbaTrainer, "numpy": NumpyTrainer}[_check_backend(backend)]
    return cls(network, X, Y, sample_weight, batch_size, dtype)


def auto_backend(n_batches, n_flops):
    """The backend ``backend='auto'`` runs a call of this size on.

    Parameters
    ----------
    n_batches : int
        Mini-batches (or chunks of rows) the call runs, at most.
    n_flops : float
        Floating-point operations of the call, at most.

    Returns
    -------
    {'numba', 'numpy'}
        ``'numpy'`` when NumPy's estimated time, ``n_batches`` times
        :data:`fastmlp.config.NUMPY_SECONDS_PER_BATCH` plus ``n_flops`` at
        :data:`fastmlp.config.NUMPY_FLOPS_PER_SECOND`, is below
        :data:`fastmlp.config.AUTO_NUMPY_SECONDS`: less than loading the
        compiled kernels into a new process costs.

    Examples
    --------
    >>> auto_backend(35, 6.4e6)  # 5 epochs of 200 rows, 64-16-3, batch 32
    'numpy'
    >>> auto_backend(3800, 3.0e9)  # 100 epochs of digits, 64-64-10, batch 32
    'numba'
    """
    seconds = (n_batches * config.NUMPY_SECONDS_PER_BATCH
               + n_flops / config.NUMPY_FLOPS_PER_SECOND)
    return "numpy" if seconds < config.AUTO_NUMPY_SECONDS else "numba"


def checks_x_while_training(backend, solver):
    """Whether training looks for NaN and inf in X itself, so validation may skip that pass.

    The training kernels check each batch's rows as they train them (while
    the rows are in cache), instead of scikit-learn's separate pass over X.

    Parameters
    ----------
    backend : {'numba', 'numpy'}
        The fit's backend.
    solver : str
        The fit's solver.

    Returns
    -------
    bool
    """
    return backend == "numba" and solver in ("sgd", "adam")


class ChunkSizer:
    """Sizes chunks of batches so that one compiled call lasts about ``config.CHUNK_SECONDS``.

    Without a known rate (batches per second) the first chunk is one batch
    (that call may also compile) and the size grows quickly from the measured
    rate. A size of more than an epoch's batches lets short epochs run
    several to a call (:meth:`NumbaTrainer.run_epochs`).

    Parameters
    ----------
    n_batches : int
        Batches per epoch.
    rate : float, optional
        Batches per second measured before (a previous ``partial_fit``).
    """

    def __init__(self, n_batches, rate=None):
        self.n_batches = n_batches
        self.rate = rate
        self.size = 1 if rate is None else self._target(rate)

    def _target(self, rate):
        return max(1, int(rate * config.CHUNK_SECONDS))

    def epochs(self):
        """Whole epochs the next call may run; 0 when a call is shorter than an epoch.

        Returns
        -------
        int
        """
        return self.size // self.n_batches

    def update(self, n_batches, seconds):
        """Size the next chunk from the rate of the last call.

        Parameters
        ----------
        n_batches : int
            Batches the last call ran.
        seconds : float
            Its wall time.
        """
        self.rate = n_batches / max(seconds, 1e-6)
        self.size = min(self._target(self.rate), 8 * self.size + 8)


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    return backend


def loss_and_gradient(backend, network, params, X, Y, alpha, sample_weight=None):
    """Loss and gradient over all rows (the L-BFGS objective).

    Parameters
    ----------
    backend : {'numba', 'numpy'}
        Which backend.
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    params : ndarray of shape (n_params,)
        Flat parameters.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Rows.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets.
    alpha : float
        L2 penalty.
    sample_weight : ndarray of shape (n_samples,), optional
        Per-row weights.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,)
        Same dtype and layout as ``params``.
    """
    return FullBatchObjective(backend, network, X, Y, sample_weight, params.dtype)(params, alpha)


class FullBatchObjective:
    """Loss and gradient over all rows, with buffers reused across calls (L-BFGS).

    Parameters
    ----------
    backend : {'numba', 'numpy'}
        Which backend.
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Rows.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets.
    sample_weight : ndarray of shape (n_samples,) or None
        Per-row weights.
    dtype : numpy dtype
        Compute dtype.
    """

    def __init__(self, backend, network, X, Y, sample_weight, dtype):
        self.backend = _check_backend(backend)
        self.network = network
        self.dtype = np.dtype(dtype)
        if self.backend == "numba":
            self._numba = NumbaObjective(network, X, Y, sample_weight, dtype)
            self.n_parts = self._numba.n_parts  # parts the rows' blocks are dealt to
            return
        # Cast like NumpyTrainer, so float64 X cannot turn a float32 objective float64.
        self.X = sp.csr_matrix(X, dtype=dtype) if sp.issparse(X) else np.asarray(X, dtype=dtype)
        self.sw = None if sample_weight is None else np.asarray(sample_weight, dtype=dtype)
        self.Y = np.ascontiguousarray(Y, dtype=dtype).reshape(Y.shape[0], -1)

    def __call__(self, params, alpha):
        """Evaluate the objective.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            Flat parameters (any float dtype; converted to the compute dtype).
        alpha : float
            L2 penalty.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
            A new array in the compute dtype.
        """
        params = np.ascontiguousarray(params, dtype=self.dtype)
        if self.backend == "numpy":
            coefs, intercepts = self.network.views(params)
            loss, cg, ig = reference.backprop(coefs, intercepts, self.X, self.Y, self.network,
                                              alpha, self.sw)
            return float(loss), np.concatenate([g.ravel() for g in cg + ig])
        return self._numba(params, alpha)


def predict(backend, network, params, X):
    """Output-layer activations (probabilities or regression outputs) for all rows.

    Parameters
    ----------
    backend : {'numba', 'numpy'}
        Which backend.
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    params : ndarray of shape (n_params,)
        Flat parameters; their dtype is the compute dtype.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Rows.

    Returns
    -------
    out : ndarray of shape (n_samples, n_outputs)

    Notes
    -----
    Rows go ``config.PREDICT_CHUNK_ROWS`` at a time, so memory beyond ``out``
    is bounded whatever the number of rows: dense X that is not already
    C-contiguous in the compute dtype is converted one chunk at a time. With
    the ``numba`` backend, a call that has several cores to itself
    (:func:`fastmlp.engine.threads.cores_for_fit`) splits the chunks among that
    many threads, each with its own chunk in memory.
    """
    dtype = params.dtype
    n_rows = X.shape[0]
    block = max(1, min(config.PREDICT_CHUNK_ROWS, n_rows))
    out = np.empty((n_rows, network.layer_units[-1]), dtype=dtype)
    if _check_backend(backend) == "numpy":
        coefs, intercepts = network.views(params)
        for r0 in range(0, n_rows, block):
            out[r0:r0 + block] = reference.forward(
                coefs, intercepts, X[r0:r0 + block].astype(dtype, copy=False),
                network.activation, network.out_activation)[-1]
        return out
    numba_backend.predict(network, params, X, out, block)
    return out
