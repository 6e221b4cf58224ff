"""A spin barrier for the threads of one fit, callable from ``@njit(nogil=True)`` code.

The kernels split every mini-batch into parts (:data:`fastmlp.config.KERNEL_PARTS`)
and, when a fit has the cores to itself, run the parts in separate Python
threads that meet at a barrier up to four times per batch. A batch takes tens of
microseconds to a few milliseconds, far too short for a lock or condition
variable, so the threads spin on an atomic counter and yield the core when
the wait grows long (the other thread was descheduled).

The counter only grows: barrier ``k`` of a call is passed when it reaches
``n_threads * (k + 1)``, so it never has to be reset between barriers
(:func:`start` zeroes it before the threads start).

A partner that is not running (another process holds its core) makes waits
long, and two threads then run slower than one. Waits that outlast the spins
are counted (``sync[LATE]``) and timed (``sync[STALL]``, in time-stamp-counter
ticks); when they take a large share of the call's time (:func:`contended`),
the first thread takes over every part at the end of a batch
(:data:`HANDOFF`) and the others return. The parts and their arithmetic stay
the same, so the bits do too. The share is a ratio of two tick counts, so
the counter's frequency cancels; on CPUs other than x86 the kernels read no
counter and never fall back.
"""

import ctypes
import platform
import sys

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastmlp import config

COUNTER = 0
ABORT = 8  # one cache line away from the counter
LATE = 9  # waits that outlasted the spins; written once per wait, at its end, so beside ABORT
HANDOFF = 10  # set: the first thread runs every part from the next batch on
SPINS = 11  # the knobs of fastmlp.config, written by start()
LATE_MIN = 12
LATE_SHARE = 13
STALL = 14  # ticks spent in late waits, all threads
START = 15  # the first thread's tick count at the call's start
SYNC_SIZE = 16

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

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


@intrinsic
def ticks(typingctx):
    """The time-stamp counter (``rdtsc``) on x86; 0 elsewhere. Only differences are used."""

    def codegen(context, builder, signature, args):
        if not _X86:
            return context.get_constant(types.int64, 0)
        rdtsc = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), []), "llvm.readcyclecounter")
        return builder.call(rdtsc, [])

    return types.int64(), codegen


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
                late_since = ticks()
            _yield()
    # A call's first barrier also waits for the other threads to start: not contention.
    if spins > max_spins and k > 0:
        _atomic_add(sync, LATE, 1)
        _atomic_add(sync, STALL, ticks() - late_since)
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
def mark_start(sync):
    """Record the call's start (the first thread, before its first barrier).

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array.
    """
    sync[START] = ticks()


@njit(cache=True, nogil=True)
def contended(sync):
    """Whether the threads' waits say a partner is not running.

    At least :data:`fastmlp.config.CONTENDED_LATE_WAITS` waits outlasted the
    spins, and the threads spent at least 1 /
    :data:`fastmlp.config.CONTENDED_LATE_SHARE` of the time since the call
    started in them. On a quiet machine the parts are even, and waits are
    short and take a small share; a partner that loses its core for a
    scheduler's time slice makes waits of milliseconds.

    Parameters
    ----------
    sync : ndarray of int64, shape (SYNC_SIZE,)
        The threads' shared array.

    Returns
    -------
    bool
    """
    late = _atomic_load(sync, LATE)
    stall = _atomic_load(sync, STALL)
    return late >= sync[LATE_MIN] and stall * sync[LATE_SHARE] >= ticks() - sync[START] > 0


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
