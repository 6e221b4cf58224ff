"""A spin barrier for the threads of one fit, callable from ``@njit(nogil=True)`` code.

The kernels split every mini-batch into parts (:data:`fastmlp.config.KERNEL_PARTS`)
and, when a fit has the cores to itself, run the parts in separate Python
threads that meet at a barrier up to four times per batch. A batch takes tens of
microseconds to a few milliseconds, far too short for a lock or condition
variable, so the threads spin on an atomic counter and yield the core when
the wait grows long (the other thread was descheduled).

The counter only grows: barrier ``k`` of a call is passed when it reaches
``n_threads * (k + 1)``, so it never has to be reset between barriers (the
caller zeroes it before starting the threads).

A partner that is not running (another process holds its core) makes every
wait long, and two threads then run slower than one. Waits that outlast the
spins are counted (``sync[LATE]``); when they are a large share of the
barriers (:func:`contended`), the first thread takes over every part at the
end of a batch (:data:`HANDOFF`) and the others return. The parts and their
arithmetic stay the same, so the bits do too.
"""

import ctypes
import sys

import llvmlite.binding as llvm
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp import config

COUNTER = 0
ABORT = 8  # one cache line away from the counter
LATE = 9  # waits that outlasted the spins; rare, so beside ABORT
HANDOFF = 10  # set: the first thread runs every part from the next batch on
SPINS = 11  # the knobs of fastmlp.config, written by start()
LATE_MIN = 12
LATE_SHARE = 13
SYNC_SIZE = 16

if sys.platform == "win32":
    _yield_address = ctypes.cast(ctypes.windll.kernel32.SwitchToThread, ctypes.c_void_p).value
else:
    # dlopen(NULL): the process's own symbols, libc's among them (threadpoolctl
    # finds libc the same way). ctypes.util.find_library("c") runs ldconfig in a
    # subprocess: 1-5 ms of every import.
    _libc = ctypes.CDLL(None)
    _yield_address = ctypes.cast(_libc.sched_yield, ctypes.c_void_p).value
# Bound by name, like BLAS in fastmlp.kernels.blas, so kernels calling it stay cacheable.
llvm.add_symbol("fastmlp_yield", _yield_address)
_yield = types.ExternalFunction("fastmlp_yield", types.int32())


def _item_pointer(context, builder, arr_type, arr, index, index_type):
    array = context.make_array(arr_type)(context, builder, arr)
    index = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, arr_type, array, [index])


@intrinsic
def _atomic_add(typingctx, arr, index, value):
    """``arr[index] += value`` as one sequentially consistent atomic operation."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature.args[0], args[0], args[1],
                            signature.args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, value, "seq_cst")

    return types.int64(arr, index, value), codegen


@intrinsic
def _atomic_load(typingctx, arr, index):
    """``arr[index]``, read atomically and never hoisted out of a loop."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature.args[0], args[0], args[1],
                            signature.args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)

    return types.int64(arr, index), codegen


def start(sync):
    """Zero ``sync`` for a new call and write :mod:`fastmlp.config`'s barrier knobs into it.

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array, before they start.
    """
    sync[:] = 0
    sync[SPINS] = config.BARRIER_SPINS
    sync[LATE_MIN] = config.CONTENDED_LATE_WAITS
    sync[LATE_SHARE] = config.CONTENDED_LATE_SHARE


@njit(cache=True, nogil=True)
def barrier(sync, n_threads, k):
    """Wait until all ``n_threads`` threads have reached barrier number ``k``.

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        Shared by the threads; set by :func:`start` before they start.
    n_threads : int
        Threads taking part; with 1 this returns at once.
    k : int
        How many barriers this thread passed before in this call.

    Returns
    -------
    bool
        False if another thread gave up (``sync[ABORT]`` set): stop at once.
    """
    if n_threads == 1:
        return True
    _atomic_add(sync, COUNTER, 1)
    target = n_threads * (k + 1)
    max_spins = sync[SPINS]
    spins = 0
    while _atomic_load(sync, COUNTER) < target:
        if _atomic_load(sync, ABORT) != 0:
            return False
        spins += 1
        if spins > max_spins:
            if spins == max_spins + 1:
                _atomic_add(sync, LATE, 1)
            _yield()
    return True


@njit(cache=True, nogil=True)
def abort(sync):
    """Make every thread waiting at, or later reaching, a barrier on ``sync`` give up.

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array.
    """
    _atomic_add(sync, ABORT, 1)


@njit(cache=True, nogil=True)
def contended(sync, n_passed):
    """Whether the threads' waits say a partner is not running.

    At least :data:`fastmlp.config.CONTENDED_LATE_WAITS` waits outlasted the
    spins, and they are at least 1 / :data:`fastmlp.config.CONTENDED_LATE_SHARE`
    of the ``n_passed`` barriers: on a quiet machine only the odd wait does
    (an interrupt, the first thread's shuffle at an epoch's start).

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array.
    n_passed : int
        Barriers the calling thread passed in this call.

    Returns
    -------
    bool
    """
    late = _atomic_load(sync, LATE)
    return late >= sync[LATE_MIN] and late * sync[LATE_SHARE] >= n_passed


@njit(cache=True, nogil=True)
def hand_over(sync):
    """Ask every thread to let the first one run all parts from the next batch on.

    Only the first thread calls this, between the first and second barrier
    of a batch: every thread then reads the same :func:`handed_over` at the
    batch's end.

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array.
    """
    _atomic_add(sync, HANDOFF, 1)


@njit(cache=True, nogil=True)
def handed_over(sync):
    """Whether the first thread took over every part (see :func:`hand_over`).

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array.

    Returns
    -------
    bool
    """
    return _atomic_load(sync, HANDOFF) != 0
