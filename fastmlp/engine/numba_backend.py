"""The ``numba`` backend's driver: workspaces, bundles and threads around the compiled kernels.

Numba and the kernel modules are imported by the backend's first use, not
with this module: importing numba and loading the compiled code costs more
than small fits on the numpy backend take (``backend='auto'``).
"""

import threading
from collections import namedtuple

import numpy as np
import scipy.sparse as sp

from fastmlp import config
from fastmlp.engine import threads
from fastmlp.engine.compile_notice import compile_notice
from fastmlp.kernels import aligned
from fastmlp.kernels.bundles import Data, Net, Optimizer, Schedule, Scratch, Team, Workspace
from fastmlp.kernels.codes import skips_zero_columns

# Empty arguments of the kernel's unused features (shared: the kernel never writes them).
_NO_ROWS = np.empty(0, dtype=np.int64)
_NO_KEY = np.empty(0, dtype=np.uint32)
_NO_POS = np.zeros(1, dtype=np.int64)
_NO_RULE = np.array([np.inf, 0.0, 0.0, 0.0])
_NO_LOSSES = np.empty(0, dtype=np.float64)

#: scikit-learn's no-improvement rule as it stands before a call: the best
#: loss so far, the count of epochs without improvement, ``tol`` and
#: ``n_iter_no_change``.
StopRule = namedtuple("StopRule", "best_loss count tol n_iter_no_change")


def zero_columns_skipped(n_features, n_zero_columns):
    """Whether the training kernel skips a batch's zero columns (the rule it applies).

    Parameters
    ----------
    n_features : int
        Columns of X.
    n_zero_columns : int
        Columns zero in every row of the batch.

    Returns
    -------
    bool
        True when there are enough of them to pay for the pass that finds
        them (:data:`fastmlp.config.ZERO_COLUMN_SHARE`). Skipping needs the
        tiles and dense X with at least
        :data:`fastmlp.config.MIN_ZERO_COLUMN_INPUTS` columns besides.

    Examples
    --------
    >>> zero_columns_skipped(784, 300)
    True
    """
    return bool(skips_zero_columns(int(n_features), int(n_zero_columns),
                                   config.ZERO_COLUMN_SHARE))


def threadable(units, flops_per_piece=None):
    """Whether work on a network of these layer widths may be split for threads.

    The one rule of every numba call (training, loss and gradient, predict):
    a first layer of at least :data:`fastmlp.config.MIN_THREADED_INPUTS`
    inputs and, where given, at least :data:`fastmlp.config.MIN_THREADED_FLOPS`
    per piece of work. It depends on shapes only, never on the cores, so the
    split (and with it the results) does not either.

    Parameters
    ----------
    units : sequence of int
        Layer widths, input first.
    flops_per_piece : float, optional
        Floating-point operations of the first layer per piece (a mini-batch).

    Returns
    -------
    bool
    """
    return (units[0] >= config.MIN_THREADED_INPUTS
            and (flops_per_piece is None or flops_per_piece >= config.MIN_THREADED_FLOPS))


def threads_for(n_parts, divisor=False):
    """Threads to run ``n_parts`` parts on now: as many as the fit's cores, at most ``n_parts``.

    Parameters
    ----------
    n_parts : int
        Parts of the work.
    divisor : bool, default=False
        Whether the count must divide ``n_parts`` (each thread an equal run of parts).

    Returns
    -------
    int
        See :func:`fastmlp.engine.threads.cores_for_fit`.
    """
    cores = max(1, min(n_parts, threads.cores_for_fit()))
    if not divisor:
        return cores
    return max(t for t in range(1, cores + 1) if n_parts % t == 0)


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


def _data(compute, Y, sw, rows, n_rows):
    return Data(*compute, Y, sw, rows, int(n_rows))


def _kind(dtype, sparse, work):
    """What a kernel call compiles for, as the compile notice names it: dtype and X's layout."""
    return f"{np.dtype(dtype).name} {'sparse' if sparse else 'dense'} {work}"


def _net(network, params):
    hidden, out, loss = network.codes
    return Net(params, network.units, network.coef_offsets, network.intercept_offsets,
               hidden, out, loss)


def _blas_scratch(dtype, n=None):
    # gemm passes its scalar arguments by reference through these; one pair per thread.
    shape = () if n is None else (n,)
    return np.zeros(shape + (8,), dtype=np.int32), np.zeros(shape + (2,), dtype=dtype)


def _scratch(dtype, rows, units):
    """A :class:`~fastmlp.kernels.bundles.Scratch` for ``rows`` rows at a time."""
    size = rows * sum(units[1:])
    return Scratch(aligned.empty(size, dtype), aligned.empty(size, dtype), int(rows),
                   *_blas_scratch(dtype), tiled_products())


def _workspace(network, rows, dtype, n_parts):
    """The training :class:`~fastmlp.kernels.bundles.Workspace`, and the threads' ``sync``.

    The gradient block and the BLAS scratch exist once per part of a batch,
    so parts can run in different threads. Cache-line aligned: the threads
    split these at 64-byte boundaries (:mod:`fastmlp.kernels.aligned`).
    """
    from fastmlp.kernels import sync

    units = network.layer_units
    # The first layer's units padded to whole cache lines: its blocks may be
    # strip-major (see fastmlp.kernels.update.first_layer_blocks).
    line = aligned.CACHE_LINE // np.dtype(dtype).itemsize
    first_block = units[0] * -(-units[1] // line) * line
    block = max(a * b for a, b in zip(units[:-1], units[1:]))
    # Each part's row ends with strips no thread writes, so that the prefetcher
    # following a part's strip-major gradient does not take the next part's
    # lines from the core writing them (aligned.PREFETCH_REACH_STRIPS).
    guard = aligned.PREFETCH_REACH_STRIPS * units[0] * line if n_parts > 1 else 0
    iscrs, fscrs = _blas_scratch(dtype, n_parts)
    # Each part writes its own row of (loss, weight sum, sum of squares).
    partials = aligned.rows(n_parts, 3, np.float64)
    partials[...] = 0.0
    # Each part marks the columns of X non-zero in its share of the next batch,
    # in integers of X's width (no columns: the kernel does not look for zero columns).
    skip = units[0] >= config.MIN_ZERO_COLUMN_INPUTS
    col_seen = aligned.rows(n_parts, units[0] if skip else 0,
                            np.uint32 if np.dtype(dtype).itemsize == 4 else np.uint64)
    work = Workspace(
        xb=aligned.empty(rows * units[0], dtype),
        acts=aligned.empty(rows * sum(units[1:]), dtype),
        deltas=aligned.empty(rows * sum(units[1:]), dtype),
        gbufs=aligned.rows(n_parts, max(block, first_block, max(units[1:])) + guard, dtype),
        # The first layer's weights and optimizer state, one contiguous block per part.
        first=aligned.rows(3, first_block, dtype),
        iscrs=iscrs, fscrs=fscrs, partials=partials, col_seen=col_seen,
        tiled=tiled_products(), zero_column_share=int(config.ZERO_COLUMN_SHARE),
        max_dense_batches=int(config.MAX_DENSE_BATCHES))
    return work, aligned.zeros(sync.SYNC_SIZE, np.int64)


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

    #: Whether :meth:`run_epochs` can run whole epochs in one call.
    runs_epochs = True

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
        # Split only networks whose parts may run in threads: the split doubles
        # the BLAS calls, which small networks feel. A network without a hidden
        # layer is never split: its first layer is the output layer, whose
        # activation (softmax) needs whole rows.
        split = len(units) > 2 and threadable(units, self.first_layer_flops)
        self.n_parts = max(1, int(config.KERNEL_PARTS)) if split else 1
        self.work, self.sync = _workspace(network, self.batch_size, dtype, self.n_parts)

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
        schedule = Schedule(self.batch_size, int(b_start), int(b_stop), float(loss_sum), 0,
                            _NO_KEY, _NO_POS, _NO_RULE, _NO_LOSSES)
        return self._call(params, optimizer, rows, alpha, schedule)

    def run_epochs(self, params, optimizer, rows, n_epochs, alpha, random_state, stop_rule):
        """Run up to ``n_epochs`` whole epochs in one compiled call.

        Each epoch first shuffles ``rows`` in place as ``random_state.shuffle``
        would (scikit-learn's epoch order), then runs all its batches; the call
        returns early after an epoch where scikit-learn's no-improvement rule
        says to stop, or at a non-finite batch loss. The kernel draws from a
        copy of the random state, written back only when the call succeeds.

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
        random_state : numpy.random.RandomState or None
            The generator of the shuffles (MT19937); None when ``rows`` is None.
        stop_rule : StopRule
            The no-improvement rule's state before the call.

        Returns
        -------
        epoch_losses : ndarray of float64
            Mean loss of each epoch run to its end with a finite loss.
        diverged : bool
            Whether the call stopped at a non-finite batch loss (in the epoch
            after those) or left non-finite parameters.
        """
        state = None if random_state is None else random_state.get_state()
        key, pos = _NO_KEY, _NO_POS
        if state is not None:
            key = np.array(state[1], dtype=np.uint32)
            pos = np.array([state[2]], dtype=np.int64)
        losses = np.zeros(n_epochs)
        n_rows = self.n_samples if rows is None else rows.shape[0]
        n_batches = -(-n_rows // self.batch_size)
        schedule = Schedule(self.batch_size, 0, n_batches, 0.0, int(n_epochs), key, pos,
                            np.asarray(stop_rule, dtype=np.float64), losses)
        loss_sum, n_done = self._call(params, optimizer, rows, alpha, schedule)
        # A non-finite batch loss stops the call with the loss sum of its epoch
        # non-finite; n_done counts that batch, the epochs before it ran to their end.
        stopped = not np.isfinite(loss_sum)
        diverged = stopped or not np.isfinite(params).all()
        if state is not None and not diverged:
            random_state.set_state((state[0], key, int(pos[0]), state[3], state[4]))
        return losses[:(n_done - 1 if stopped else n_done) // n_batches], diverged

    def _call(self, params, optimizer, rows, alpha, schedule):
        from fastmlp.kernels import sync, train
        from fastmlp.kernels.fpenv import subnormals_flushed

        n_rows = self.n_samples if rows is None else rows.shape[0]
        data = _data(self.X, self.Y, self.sw, _NO_ROWS if rows is None else rows, n_rows)
        hyper, s1, s2, step = optimizer.kernel_state()
        opt = Optimizer(optimizer.kind, hyper, s1, s2, step, float(alpha))
        work = self.work._replace(tiled=tiled_products(),
                                  zero_column_share=int(config.ZERO_COLUMN_SHARE),
                                  max_dense_batches=int(config.MAX_DENSE_BATCHES))
        args = (data, _net(self.network, params), opt, work, schedule)
        n_threads = self.threads_for_run()
        if not threads.CONTENTION.threads_allowed():
            n_threads = 1
        with compile_notice(_kind(params.dtype, data.Xdata.size > 0, "training")):
            if n_threads == 1:
                with subnormals_flushed():
                    loss_sum, n_done = train.train_batches(*args, self._team(0, 1))
            else:
                loss_sum, n_done = self._run_in_threads(train.train_batches, args, n_threads)
                threads.CONTENTION.record(handed_over=bool(self.sync[sync.HANDOFF]))
        optimizer.sync_from_kernel(step)
        return loss_sum, n_done

    def _team(self, thread, n_threads):
        # Thread t runs parts [P t / T, P (t + 1) / T): any T from 1 to P.
        return Team(self.n_parts * thread // n_threads, self.n_parts * (thread + 1) // n_threads,
                    self.n_parts, n_threads, self.sync, np.zeros(1, dtype=np.int64))

    def threads_for_run(self):
        """Threads the next :meth:`run` uses: a divisor of the batch's parts, for equal shares.

        Returns
        -------
        int
            As many as the cores this fit has to itself
            (:func:`fastmlp.engine.threads.cores_for_fit`), at most the parts of a
            batch: :data:`fastmlp.config.KERNEL_PARTS`, or 1 when the first
            layer is too small for threads to pay (:func:`threadable`).
        """
        return threads_for(self.n_parts, divisor=True)

    def _run_in_threads(self, kernel, args, n_threads):
        """Run ``kernel`` on ``n_threads`` threads (at most the parts), each taking a run of parts.

        The calling thread takes the first run. If any thread fails, the others
        are told to give up at their next barrier, and the first error is raised
        once all have stopped. Without a second thread to be had, all parts run
        in the calling thread (the same bits).
        """
        from fastmlp.kernels.fpenv import subnormals_flushed
        from fastmlp.kernels.sync import abort, start

        n_threads = min(n_threads, self.n_parts)  # a thread without parts would only wait
        start(self.sync)
        results = [None] * n_threads

        def work(t):
            with subnormals_flushed():
                results[t] = kernel(*args, self._team(t, n_threads))

        def serially():
            start(self.sync)
            with subnormals_flushed():
                results[0] = kernel(*args, self._team(0, 1))

        map_in_threads(work, [(t,) for t in range(n_threads)],
                       on_error=lambda: abort(self.sync), serially=serially)
        return results[0]


class NumbaObjective:
    """Loss and gradient over all rows with the compiled kernels, buffers reused across calls.

    Parameters
    ----------
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

    def __init__(self, network, X, Y, sample_weight, dtype):
        self.network = network
        self.dtype = np.dtype(dtype)
        self.X = as_compute_arrays(X, dtype)
        self.n_rows = X.shape[0]
        self.sw = (np.empty(0, dtype=dtype) if sample_weight is None
                   else np.ascontiguousarray(sample_weight, dtype=dtype))
        self.Y = np.ascontiguousarray(Y, dtype=dtype).reshape(Y.shape[0], -1)
        self.block = max(1, min(config.FULL_BATCH_BLOCK_ROWS, self.n_rows))
        # Blocks of rows are dealt to parts that may run in threads; like the
        # trainer's split, it depends on the data's shape, not on the cores.
        n_blocks = -(-self.n_rows // self.block)
        units = network.layer_units
        self.n_parts = (min(n_blocks, max(1, int(config.KERNEL_PARTS))) if threadable(units)
                        else 1)
        self.parts = [_scratch(dtype, self.block, units) for _ in range(self.n_parts)]
        self.grads = aligned.rows(self.n_parts, network.n_params, dtype)
        self.losses = np.zeros((self.n_parts, 2))

    def __call__(self, params, alpha):
        """Evaluate the objective; see :class:`fastmlp.engine.backends.FullBatchObjective`.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            Flat parameters in the compute dtype.
        alpha : float
            L2 penalty.

        Returns
        -------
        loss : float
        grad : ndarray of shape (n_params,)
        """
        from fastmlp.kernels import train
        from fastmlp.kernels.fpenv import subnormals_flushed

        network = self.network
        data = _data(self.X, self.Y, self.sw, _NO_ROWS, self.n_rows)
        net = _net(network, params)
        tiled = tiled_products()

        def part_sums(p):
            scr = self.parts[p]._replace(tiled=tiled)
            with subnormals_flushed():
                self.losses[p] = train.gradient_part(data, net, self.block, p, self.n_parts,
                                                     self.grads[p], scr)

        n_threads = threads_for(self.n_parts)
        # Thread t takes parts t, t + n_threads, ...: any thread count gives the same sums.
        with compile_notice(_kind(params.dtype, data.Xdata.size > 0, "full-batch gradient")):
            map_in_threads(lambda t: [part_sums(p) for p in range(t, self.n_parts, n_threads)],
                           [(t,) for t in range(n_threads)])
        grad = np.empty(network.n_params, dtype=self.dtype)
        loss = train.finish_gradient(self.grads, self.losses, params,
                                     int(network.coef_offsets[-1]), float(alpha), grad)
        return float(loss), grad


def predict(network, params, X, out, block):
    """Output-layer activations of all rows into ``out``; see :func:`fastmlp.engine.backends.predict`.

    Parameters
    ----------
    network : fastmlp.engine.network.Network
        Shape, activations and loss.
    params : ndarray of shape (n_params,)
        Flat parameters; their dtype is the compute dtype.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Rows.
    out : ndarray of shape (n_samples, n_outputs)
        Receives the outputs.
    block : int
        Rows per compiled call, at most.
    """
    from fastmlp.kernels import train
    from fastmlp.kernels.fpenv import subnormals_flushed

    dtype = params.dtype
    n_rows = X.shape[0]
    n_blocks = -(-n_rows // block)
    n_threads = threads_for(n_blocks) if threadable(network.layer_units) else 1
    # Threads take whole blocks, so every row goes through the same BLAS calls
    # (the same bits) whatever the number of threads.
    cuts = [min(n_rows, block * (n_blocks * t // n_threads)) for t in range(n_threads + 1)]
    net = _net(network, params)
    no_targets = np.empty((0, network.layer_units[-1]), dtype=dtype)
    no_weights = np.empty(0, dtype=dtype)

    def forward(lo, hi):
        rows = X if (lo, hi) == (0, n_rows) else X[lo:hi]
        ready = sp.issparse(rows) or (rows.dtype == dtype and rows.flags.c_contiguous)
        step = max(1, hi - lo) if ready else block  # X in the kernel's layout goes in one call
        scr = _scratch(dtype, block, network.layer_units)
        for r0 in range(0, hi - lo, step):
            part = rows if step >= hi - lo else rows[r0:r0 + step]
            data = _data(as_compute_arrays(part, dtype), no_targets, no_weights, _NO_ROWS,
                         part.shape[0])
            with subnormals_flushed():
                train.predict(data, net, block, out[lo + r0:lo + r0 + part.shape[0]], scr)
            del data  # before the next chunk is converted: one chunk in memory

    with compile_notice(_kind(dtype, sp.issparse(X), "prediction")):
        map_in_threads(forward, list(zip(cuts[:-1], cuts[1:])))


def map_in_threads(fn, arg_tuples, on_error=None, serially=None):
    """Call ``fn(*args)`` for each tuple, the first in this thread, the others in new ones.

    Returns once every call has ended, even on Ctrl-C (the calls write into
    shared buffers), then raises the first error any call raised.
    ``on_error`` runs as soon as a call fails (the training kernel's threads
    use it to release the others from their barrier). If no new thread can be
    started, the started ones are stopped with ``on_error`` and the work runs
    in this thread: ``serially()``, or else every call in turn.

    Parameters
    ----------
    fn : callable
        The work.
    arg_tuples : list of tuple
        Arguments of each call.
    on_error : callable, optional
        Called when a call fails.
    serially : callable, optional
        Runs all the work in this thread when no thread can be started.
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
