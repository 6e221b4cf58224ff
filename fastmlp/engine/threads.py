"""How many BLAS threads fits get, alone and when several run at once.

The compiled kernels release the GIL (``@njit(nogil=True)``), so fits started
from several Python threads (``joblib``'s threading backend,
``concurrent.futures``) really run in parallel. Their matrix products go to
BLAS (SciPy's OpenBLAS, through ``scipy.linalg.cython_blas``), whose pthreads
thread pool is process-wide: by default every product asks for all cores.
Two fits doing that oversubscribe the machine, and OpenBLAS's threaded
level-3 driver also makes concurrent threaded products wait for one another,
so the fits end up slower than one after another.

The estimators therefore wrap every fit and prediction in :func:`share_cores`,
which keeps a process-wide, thread-safe count of the calls in progress and
sets the BLAS limit for all of them to
``max(1, min(cap, limit_before // active))``, where ``cap`` is
:data:`fastmlp.config.BLAS_THREADS_PER_FIT` (None: no cap) and
``limit_before`` is the limit in force when the first call started, so a
limit set by the user, joblib/loky or Dask is only ever lowered. When the last
call ends, the previous limits are restored. Limits are process-global, which
is why this is one shared count and not a ``threadpool_limits`` context per
fit (that would change the other fits' limit and restore it while they run).

Why the default cap is 1: OpenBLAS blocks the summed dimension of a product
differently with one thread and with several once it is longer than its
block (measured with SciPy's OpenBLAS 0.3.30 on SkylakeX: from 385 terms in
float64, 600 in float32; MNIST's 784 inputs exceed both), so the same fit
rounds differently with different thread counts, and with a limit that
follows how many fits overlap, its result would depend on timing. With
one BLAS thread per product, results are the same bits whether fits run one
after another, in threads, in loky or on Dask workers.

A fit still uses the cores it has to itself: the compiled kernels split every
mini-batch into :data:`fastmlp.config.KERNEL_PARTS` parts and run them in that
many threads of their own when :func:`cores_for_fit` allows (see
:mod:`fastmlp.kernels.sync`). The split is fixed, so the threads change only which
core computes a part, never the arithmetic. The ``numpy`` backend has no
threads of its own; its calls lift the cap (``share_cores(capped=False)``)
so that, alone, it gets all of BLAS's threads, as NumPy users expect.
"""

import contextlib
import math
import threading
import time

from threadpoolctl import ThreadpoolController

from fastmlp import config
from fastmlp._compat import set_blas_threads

_lock = threading.Lock()
_active = 0
_uncapped = 0  # active calls that asked for no cap (the numpy backend)
_local = threading.local()  # .depth: share_cores blocks open in this thread
_saved_limits = None  # [(library controller, limit before the first call)] while calls run
_blas_controller = None


def _blas_libraries():
    # Built once: scanning the loaded libraries takes milliseconds, and the
    # BLAS libraries fastmlp uses (NumPy's and SciPy's) are loaded on import.
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_controller.lib_controllers


def _set_threads(lib, n):
    # This module is the one arbiter of fastmlp's limits (all changes are made
    # under its lock, from whichever fit thread starts or ends), so it sets them
    # from any thread (see _compat.set_blas_threads).
    set_blas_threads(lib, n)


def blas_threads_for(limit_before, active, cap=None):
    """BLAS threads each of ``active`` concurrent calls gets.

    Parameters
    ----------
    limit_before : int
        BLAS limit in force before the calls started.
    active : int
        Calls in progress (>= 1).
    cap : int or None, optional
        Most threads for one call; None means no cap. Defaults to
        :data:`fastmlp.config.BLAS_THREADS_PER_FIT` when not given.

    Returns
    -------
    int
        ``max(1, min(cap, limit_before // active))``.

    Examples
    --------
    >>> blas_threads_for(8, 3, cap=None)
    2
    >>> blas_threads_for(8, 1, cap=1)
    1
    """
    share = limit_before // max(1, active)
    if cap is not None:
        share = min(int(cap), share)
    return max(1, share)


def _apply_limits():
    """Set the BLAS limits for the current count; the caller holds ``_lock``."""
    global _saved_limits
    if _active == 0:
        if _saved_limits is not None:
            for lib, before in _saved_limits:
                _set_threads(lib, before)
            _saved_limits = None
        return
    if _saved_limits is None:
        _saved_limits = [(lib, lib.num_threads) for lib in _blas_libraries()]
    # Any call of the compiled kernels keeps the cap; NumPy-only calls lift it.
    cap = None if _uncapped == _active else config.BLAS_THREADS_PER_FIT
    for lib, before in _saved_limits:
        if before is not None:
            _set_threads(lib, blas_threads_for(before, _active, cap))


@contextlib.contextmanager
def share_cores(capped=True, join_enclosing=False):
    """Register a fit or prediction as running for as long as the ``with`` block lasts.

    While at least one block is active in the process, every loaded BLAS
    library is limited to :func:`blas_threads_for` ``(limit_before, active)``
    threads; the previous limits come back when the last block ends. The
    estimators use it around ``fit``, ``partial_fit`` and the forward pass of
    ``predict``.

    Parameters
    ----------
    capped : bool, default=True
        False for calls that compute only through NumPy (the ``numpy``
        backend): BLAS is their only way to use several cores, so while
        only such calls run, :data:`fastmlp.config.BLAS_THREADS_PER_FIT` does
        not apply. The compiled kernels use their own threads instead
        (:func:`cores_for_fit`) and keep BLAS at the cap.
    join_enclosing : bool, default=False
        If this thread is already inside a block, count as part of it
        instead of as another call: the validation predictions that
        early stopping makes inside a fit keep the fit's cores.

    Yields
    ------
    None

    Examples
    --------
    >>> from fastmlp.engine.threads import share_cores, active_calls
    >>> with share_cores():
    ...     active_calls()
    1
    >>> active_calls()
    0
    """
    global _active, _uncapped
    depth = getattr(_local, "depth", 0)
    if join_enclosing and depth > 0:
        yield
        return
    with _lock:
        _active += 1
        _uncapped += not capped
        _apply_limits()
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth
        with _lock:
            _active -= 1
            _uncapped -= not capped
            _apply_limits()


def cores_for_fit():
    """Cores a fit running now may use for its own threads.

    Returns
    -------
    int
        The BLAS limit in force before the first active call (which a user's
        ``threadpool_limits``, loky or Dask lowers) divided among the active
        calls; 1 when no call is active (kernels used outside the estimators).
    """
    with _lock:
        if _active == 0 or not _saved_limits:
            return 1
        before = [limit for _, limit in _saved_limits if limit is not None]
        return blas_threads_for(min(before), _active, cap=None) if before else 1


def active_calls():
    """Number of fits and predictions currently running in this process.

    Returns
    -------
    int
    """
    with _lock:
        return _active


class Contention:
    """Whether training calls may use threads, after calls that fell back to one.

    A call whose threads wait on a partner that is not running continues in
    one thread (:mod:`fastmlp.kernels.sync`). Calls that start in the next
    ``backoff`` seconds then run in one thread from their first batch; the
    backoff doubles from :data:`fastmlp.config.CHUNK_SECONDS` after each
    fallback, up to :data:`fastmlp.config.CONTENDED_MAX_SERIAL_SECONDS`, and
    ends with a call that kept its threads. Under lasting contention few
    calls pay for the detection; once the other process ends, the threads
    come back within seconds. Contention is the machine's, not a fit's, so
    the process has one :data:`CONTENTION`, shared by its fits.

    Parameters
    ----------
    clock : callable, default=time.monotonic
        Seconds.

    Examples
    --------
    >>> now = [0.0]
    >>> c = Contention(clock=lambda: now[0])
    >>> c.record(handed_over=True)
    >>> c.threads_allowed()
    False
    >>> now[0] += 1.0
    >>> c.threads_allowed()
    True
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.backoff = 0.0
        self.serial_until = -math.inf

    def threads_allowed(self):
        """Whether a call starting now may use threads.

        Returns
        -------
        bool
        """
        return self.clock() >= self.serial_until

    def record(self, handed_over):
        """Note how a call run in threads ended.

        Parameters
        ----------
        handed_over : bool
            Whether it fell back to one thread.
        """
        if handed_over:
            self.backoff = min(max(config.CHUNK_SECONDS, 2 * self.backoff),
                               config.CONTENDED_MAX_SERIAL_SECONDS)
            self.serial_until = self.clock() + self.backoff
        else:
            self.backoff = 0.0


#: The process's :class:`Contention`, shared by its fits.
CONTENTION = Contention()


__all__ = ["share_cores", "active_calls", "blas_threads_for", "cores_for_fit", "Contention",
           "CONTENTION"]
