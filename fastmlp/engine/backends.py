"""The two interchangeable training backends behind the estimators.

``numba`` runs compiled kernels over many mini-batches per call with a
workspace allocated once per fit; ``numpy`` is the vectorised reference
(:mod:`fastmlp.engine.reference`). Both take and update the same flat parameter
buffer and optimizer objects, so they can be swapped mid-training.
"""

import threading

import numpy as np
import scipy.sparse as sp

from fastmlp import config
from fastmlp.kernels import aligned
from fastmlp.engine import threads
from fastmlp.engine import reference

# Numba and the kernel modules are imported by the numba backend's first use,
# not here: importing numba and loading its compiled code costs ~0.35 s, more
# than small fits on the numpy backend take ('auto', see fastmlp.estimators).

BACKENDS = ("numba", "numpy")

# Empty arguments of the kernel's unused features (shared: the kernel never writes them).
_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_KEY = np.empty(0, dtype=np.uint32)
_NO_POS = np.zeros(1, dtype=np.int64)
_NO_RULE = np.array([np.inf, 0.0, 0.0, 0.0])
_NO_LOSSES = np.empty(0, dtype=np.float64)


def as_compute_arrays(X, dtype):
    """Put X in the layout the kernels read, copying only when necessary.

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Input rows.
    dtype : numpy dtype
        Compute dtype.

    Returns
    -------
    dense : ndarray
        C-contiguous X, or an empty ``(0, n_features)`` array for sparse X.
    data, indices, indptr : ndarray
        CSR arrays (indices as int64), or empty arrays for dense X.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=dtype)
        dense = np.empty((0, X.shape[1]), dtype=dtype)
        return (dense, X.data, X.indices.astype(np.int64, copy=False),
                X.indptr.astype(np.int64, copy=False))
    dense = np.ascontiguousarray(X, dtype=dtype)
    empty = np.empty(0, dtype=np.int64)
    return dense, np.empty(0, dtype=dtype), empty, empty


def _blas_scratch(dtype, n=None):
    # gemm passes its scalar arguments by reference through these; one pair per thread.
    shape = () if n is None else (n,)
    return np.zeros(shape + (8,), dtype=np.int32), np.zeros(shape + (2,), dtype=dtype)


class _NumbaWorkspace:
    """Buffers for ``rows`` rows at a time, allocated once and reused by every call.

    The gradient block and the BLAS scratch exist once per part of a batch
    (:data:`fastmlp.config.KERNEL_PARTS`), so parts can run in different threads.
    """

    def __init__(self, network, rows, dtype, gather, n_parts=1):
        units = network.layer_units
        self.rows = rows
        self.n_parts = n_parts
        # Cache-line aligned: the threads split these at 64-byte boundaries (_aligned).
        self.xb = aligned.empty(rows * units[0] if gather else 0, dtype)
        self.acts = aligned.empty(rows * sum(units[1:]), dtype)
        self.deltas = aligned.empty(rows * sum(units[1:]), dtype)
        # The first layer's units padded to whole cache lines: its blocks may be
        # strip-major (see train._first_layer_blocks).
        line = aligned.CACHE_LINE // np.dtype(dtype).itemsize
        first_block = units[0] * -(-units[1] // line) * line
        block = max(a * b for a, b in zip(units[:-1], units[1:]))
        # Each part's row ends with strips no thread writes, so that the prefetcher
        # following a part's strip-major gradient does not take the next part's
        # lines from the core writing them (aligned.PREFETCH_REACH_STRIPS).
        guard = aligned.PREFETCH_REACH_STRIPS * units[0] * line if n_parts > 1 else 0
        self.gbufs = aligned.rows(n_parts, max(block, first_block, max(units[1:])) + guard,
                                   dtype)
        # The first layer's weights and optimizer state, one contiguous block per part.
        self.first = aligned.rows(3, first_block if gather else 0, dtype)
        self.iscrs, self.fscrs = _blas_scratch(dtype, n_parts)
        from fastmlp.kernels import sync

        self.sync = aligned.zeros(sync.SYNC_SIZE, np.int64)
        # Each part writes its own row of (loss, weight sum, sum of squares).
        self.partials = aligned.rows(n_parts, 3, np.float64)
        self.partials[...] = 0.0
        # Each part marks the columns of X non-zero in its share of the next batch,
        # in integers of X's width (no columns: the kernel does not look for zero columns).
        skip = gather and units[0] >= config.MIN_ZERO_COLUMN_INPUTS
        self.col_seen = aligned.rows(n_parts, units[0] if skip else 0,
                                      np.uint32 if np.dtype(dtype).itemsize == 4 else np.uint64)


class NumbaTrainer:
    """Mini-batch training of one network on one data set with the compiled kernels.

    Parameters
    ----------
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training rows, in the compute dtype (C-contiguous dense X is not copied).
    Y : ndarray of shape (n_samples, n_outputs)
        Targets.
    sample_weight : ndarray of shape (n_samples,) or None
        Per-row weights.
    batch_size : int
        Rows per mini-batch.
    dtype : numpy dtype
        Compute dtype.
    """

    def __init__(self, network, X, Y, sample_weight, batch_size, dtype):
        self.network = network
        self.X = as_compute_arrays(X, dtype)
        self.Y = np.ascontiguousarray(Y, dtype=dtype).reshape(Y.shape[0], -1)
        self.sw = (np.empty(0, dtype=dtype) if sample_weight is None
                   else np.ascontiguousarray(sample_weight, dtype=dtype))
        self.n_samples = X.shape[0]
        self.batch_size = int(batch_size)
        units = network.layer_units
        self.first_layer_flops = 6 * self.batch_size * units[0] * units[1]
        # Split only networks whose parts may run in threads (threads_for_run):
        # the split doubles the BLAS calls, which small networks feel. The
        # choice depends on the network and batch size only, never on the
        # threads available, so results do not either.
        # A network without a hidden layer is never split: its first layer is
        # the output layer, whose activation (softmax) needs whole rows.
        threadable = (len(units) > 2 and units[0] >= config.MIN_THREADED_INPUTS
                      and self.first_layer_flops >= config.MIN_THREADED_FLOPS)
        n_parts = max(1, int(config.KERNEL_PARTS)) if threadable else 1
        self.ws = _NumbaWorkspace(network, self.batch_size, dtype, gather=True, n_parts=n_parts)

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
        return self._call(params, optimizer, rows, b_start, b_stop, alpha, loss_sum, 0,
                          _NO_KEY, _NO_POS, _NO_RULE, _NO_LOSSES)

    def run_epochs(self, params, optimizer, rows, n_epochs, alpha, mt_state, stop_rule):
        """Run up to ``n_epochs`` whole epochs in one compiled call.

        Each epoch first shuffles ``rows`` in place as
        ``RandomState.shuffle`` would (scikit-learn's epoch order), then runs
        all its batches; the call returns early after an epoch where
        scikit-learn's no-improvement rule says to stop, or at a non-finite
        batch loss.

        Parameters
        ----------
        params : ndarray
            Flat parameters, updated in place.
        optimizer : fastmlp.engine.optimizers.SGD or fastmlp.engine.optimizers.Adam
            Optimizer whose state is updated in place.
        rows : ndarray of int64 or None
            Sample indices in the previous epoch's order, shuffled in place;
            None for the rows of X in order (no shuffling).
        n_epochs : int
            Most epochs to run (at least 1).
        alpha : float
            L2 penalty.
        mt_state : tuple (key, pos) or None
            MT19937 state words (uint32, 624) and position, advanced in place;
            None when ``rows`` is None.
        stop_rule : sequence of 4 floats
            ``(best_loss, no_improvement_count, tol, n_iter_no_change)``.

        Returns
        -------
        epoch_losses : ndarray of float64
            Mean loss of each epoch run to its end with a finite loss.
        diverged : bool
            Whether the call stopped at a non-finite batch loss (in the epoch
            after those).
        """
        key, pos = (_NO_KEY, _NO_POS) if mt_state is None else mt_state
        losses = np.zeros(n_epochs)
        n_rows = self.n_samples if rows is None else rows.shape[0]
        n_batches = -(-n_rows // self.batch_size)
        loss_sum, n_done = self._call(params, optimizer, rows, 0, n_batches, alpha, 0.0,
                                      n_epochs, key, pos,
                                      np.asarray(stop_rule, dtype=np.float64), losses)
        # A non-finite batch loss stops the call with the loss sum of its epoch
        # non-finite; n_done counts that batch, the epochs before it ran to their end.
        diverged = not np.isfinite(loss_sum)
        return losses[:(n_done - 1 if diverged else n_done) // n_batches], diverged

    def _call(self, params, optimizer, rows, b_start, b_stop, alpha, loss_sum, n_epochs,
              mt_key, mt_pos, stop_rule, epoch_losses):
        from fastmlp.kernels import train
        from fastmlp.kernels.fpenv import subnormals_flushed

        hidden, out, loss = self.network.codes
        n_rows = self.n_samples if rows is None else rows.shape[0]
        rows = _NO_ROWS if rows is None else rows
        hyper, s1, s2, step = optimizer.kernel_state()
        ws = self.ws
        args = (*self.X, self.Y, self.sw, rows, n_rows, self.batch_size, b_start, b_stop,
                params, self.network.units, self.network.coef_offsets,
                self.network.intercept_offsets, hidden, out, loss, float(alpha),
                optimizer.kind, hyper, s1, s2, step, ws.xb, ws.acts, ws.deltas, ws.gbufs,
                ws.first, ws.iscrs, ws.fscrs, tiled_products(), float(loss_sum),
                n_epochs, mt_key, mt_pos, stop_rule, epoch_losses)
        n_parts = ws.n_parts
        n_threads = self.threads_for_run()
        if n_threads == 1 or n_parts % n_threads:
            with subnormals_flushed():
                loss_sum, n_done = train.train_batches(*args, 0, n_parts, n_parts, ws.sync,
                                                          1, ws.partials, ws.col_seen)
        else:
            loss_sum, n_done = _run_in_threads(train.train_batches, args, n_parts,
                                               n_threads, ws)
        optimizer.sync_from_kernel(step)
        return loss_sum, n_done

    def threads_for_run(self):
        """Threads the next :meth:`run` uses: a divisor of the batch's parts.

        Returns
        -------
        int
            As many as the cores this fit has to itself
            (:func:`fastmlp.engine.threads.cores_for_fit`), at most the parts of a
            batch: :data:`fastmlp.config.KERNEL_PARTS`, or 1 when the first
            layer is too small for threads to pay
            (:data:`fastmlp.config.MIN_THREADED_INPUTS`,
            :data:`fastmlp.config.MIN_THREADED_FLOPS`).
        """
        n_parts = self.ws.n_parts
        if n_parts == 1:
            return 1
        cores = min(n_parts, threads.cores_for_fit())
        return max(t for t in range(1, cores + 1) if n_parts % t == 0)


def _run_in_threads(kernel, args, n_parts, n_threads, ws):
    """Run ``kernel`` on ``n_threads`` threads, each taking an equal run of the parts.

    The calling thread takes the first run. If any thread fails, the others
    are told to give up at their next barrier, and the first error is raised
    once all have stopped. Without a second thread to be had, all parts run
    in the calling thread (the same bits).
    """
    from fastmlp.kernels.fpenv import subnormals_flushed
    from fastmlp.kernels.sync import abort

    ws.sync[:] = 0
    per = n_parts // n_threads
    results = [None] * n_threads

    def work(t):
        with subnormals_flushed():
            results[t] = kernel(*args, t * per, (t + 1) * per, n_parts, ws.sync, n_threads,
                                ws.partials, ws.col_seen)

    def serially():
        ws.sync[:] = 0
        with subnormals_flushed():
            results[0] = kernel(*args, 0, n_parts, n_parts, ws.sync, 1, ws.partials,
                                ws.col_seen)

    _map_in_threads(work, [(t,) for t in range(n_threads)],
                    on_error=lambda: abort(ws.sync), serially=serially)
    return results[0]


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
            self.X = as_compute_arrays(X, dtype)
            self.n_rows = X.shape[0]
            self.sw = (np.empty(0, dtype=dtype) if sample_weight is None
                       else np.ascontiguousarray(sample_weight, dtype=dtype))
            self.block = max(1, min(config.FULL_BATCH_BLOCK_ROWS, self.n_rows))
            # Blocks of rows are dealt to parts that may run in threads; like
            # the trainer's split, it depends on the data's shape, not on the cores.
            n_blocks = -(-self.n_rows // self.block)
            threadable = network.layer_units[0] >= config.MIN_THREADED_INPUTS
            self.n_parts = min(n_blocks, max(1, int(config.KERNEL_PARTS))) if threadable else 1
            units = network.layer_units
            self.parts = [(aligned.empty(self.block * sum(units[1:]), dtype),
                           aligned.empty(self.block * sum(units[1:]), dtype),
                           *_blas_scratch(dtype)) for _ in range(self.n_parts)]
            self.grads = aligned.rows(self.n_parts, network.n_params, dtype)
            self.losses = np.zeros((self.n_parts, 2))
        else:
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
        from fastmlp.kernels import train
        from fastmlp.kernels.fpenv import subnormals_flushed

        hidden, out, loss_kind = self.network.codes
        network = self.network

        tiled = tiled_products()

        def part_sums(p):
            acts, deltas, iscr, fscr = self.parts[p]
            with subnormals_flushed():
                self.losses[p] = train.gradient_part(
                    *self.X, self.Y, self.sw, self.n_rows, self.block, params, network.units,
                    network.coef_offsets, network.intercept_offsets, hidden, out, loss_kind,
                    p, self.n_parts, self.grads[p], acts, deltas, iscr, fscr, tiled)

        n_threads = min(self.n_parts, threads.cores_for_fit())
        # Thread t takes parts t, t + n_threads, ...: any thread count gives the same sums.
        _map_in_threads(lambda t: [part_sums(p) for p in range(t, self.n_parts, n_threads)],
                        [(t,) for t in range(n_threads)])
        grad = np.empty(network.n_params, dtype=self.dtype)
        loss = train.finish_gradient(self.grads, self.losses, params,
                                        int(network.coef_offsets[-1]), float(alpha), grad)
        return float(loss), grad


def tiled_products():
    """Whether the kernels' matrix products use fastmlp's register tiles.

    Returns
    -------
    bool
        :data:`fastmlp.config.TILED_PRODUCTS`, or when that is None, whether
        this CPU suits the tiles (:data:`fastmlp.kernels.tiles.PREFERRED`).
    """
    if config.TILED_PRODUCTS is None:
        from fastmlp.kernels import tiles

        return tiles.PREFERRED
    return bool(config.TILED_PRODUCTS)


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
    from fastmlp.kernels import train
    from fastmlp.kernels.fpenv import subnormals_flushed

    n_blocks = -(-n_rows // block)
    n_threads = 1
    if network.layer_units[0] >= config.MIN_THREADED_INPUTS:
        n_threads = max(1, min(threads.cores_for_fit(), n_blocks))
    # Threads take whole blocks, so every row goes through the same BLAS calls
    # (the same bits) whatever the number of threads.
    cuts = [min(n_rows, block * (n_blocks * t // n_threads)) for t in range(n_threads + 1)]
    hidden, out_act, _ = network.codes
    tiled = tiled_products()

    def forward(lo, hi):
        rows = X if (lo, hi) == (0, n_rows) else X[lo:hi]
        ready = sp.issparse(rows) or (rows.dtype == dtype and rows.flags.c_contiguous)
        step = max(1, hi - lo) if ready else block  # X in the kernel's layout goes in one call
        acts = aligned.empty(block * sum(network.layer_units[1:]), dtype)
        scratch = _blas_scratch(dtype)
        for r0 in range(0, hi - lo, step):
            part = rows if step >= hi - lo else rows[r0:r0 + step]
            compute = as_compute_arrays(part, dtype)
            with subnormals_flushed():
                train.predict(*compute, part.shape[0], block, params, network.units,
                                 network.coef_offsets, network.intercept_offsets, hidden,
                                 out_act, acts, out[lo + r0:lo + r0 + part.shape[0]], *scratch,
                                 tiled)
            del compute  # before the next chunk is converted: one chunk in memory

    _map_in_threads(forward, list(zip(cuts[:-1], cuts[1:])))
    return out


def _map_in_threads(fn, arg_tuples, on_error=None, serially=None):
    """Call ``fn(*args)`` for each tuple, the first in this thread, the others in new ones.

    Returns once every call has ended, even on Ctrl-C (the calls write into
    shared buffers), then raises the first error any call raised.
    ``on_error`` runs as soon as a call fails (the training kernel's threads
    use it to release the others from their barrier). If no new thread can be
    started, the started ones are stopped with ``on_error`` and the work runs
    in this thread: ``serially()``, or else every call in turn.
    """
    errors = []

    def call(args):
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the calling thread
            if on_error is not None:
                on_error()
            errors.append(exc)

    helpers = [threading.Thread(target=call, args=(args,), daemon=True)
               for args in arg_tuples[1:]]
    try:
        for helper in helpers:
            helper.start()
    except RuntimeError:  # no thread to be had
        if on_error is not None:
            on_error()
        for helper in helpers:
            if helper.ident is not None:
                helper.join()
        if serially is not None:
            serially()
        else:
            for args in arg_tuples:
                fn(*args)
        return
    interrupted = None
    try:
        call(arg_tuples[0])
    except BaseException as exc:  # noqa: BLE001 - Ctrl-C between the call and the join
        interrupted = exc
    # Wait for the helpers even on Ctrl-C: they write into buffers the caller owns.
    for helper in helpers:
        while helper.is_alive():
            try:
                helper.join(0.05)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                interrupted = interrupted or exc
    if errors or interrupted:
        raise (errors[0] if errors else interrupted)
