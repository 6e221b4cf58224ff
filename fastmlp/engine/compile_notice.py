"""Say so, once, when a first call into the kernels is compiling them.

Numba compiles a kernel for each new signature on its first call, then caches the machine code on
disk; later processes load it in well under a second. A compile takes long enough (tens of seconds
on a cold cache) that a silent first fit looks hung, so the first call of each kind arms a timer:
if the call is still running after ``config.COMPILE_NOTICE_SECONDS`` and numba has started a
compile since it began (numba's ``numba:compile`` event, which loading from the cache does not
raise), one message goes to the ``fastmlp`` logger (printed on stderr when logging is not
configured). A slow cache load on a busy host says nothing.
"""

import contextlib
import logging
import threading

from fastmlp import config

logger = logging.getLogger("fastmlp")

_seen = set()
_seen_lock = threading.Lock()
_compiles = [0]  # numba compiles started in this process, counted once the listener is in


def _count_compiles():
    """Count numba's compiles from now on (idempotent; numba is imported by then)."""
    if getattr(_count_compiles, "installed", False):
        return
    from numba.core import event

    class _Counter(event.Listener):
        def on_start(self, ev):
            _compiles[0] += 1

        def on_end(self, ev):
            pass

    event.register("numba:compile", _Counter())
    _count_compiles.installed = True


def _say_if_compiling(what, compiles_before):
    if _compiles[0] > compiles_before:
        logger.warning(_message(what))


def _message(what):
    return (f"fastmlp: compiling the {what} kernels for this machine. This happens once per "
            f"machine and fastmlp version and takes roughly {config.COMPILE_NOTICE_ESTIMATE}; "
            "later fits load the compiled code from numba's cache in under a second.")


@contextlib.contextmanager
def compile_notice(what):
    """Log one notice if the first call of kind ``what`` is still compiling after a threshold.

    Parameters
    ----------
    what : str
        The kernels the call may compile, e.g. ``"float32 dense training"``: one notice per kind
        and process. Later calls of a kind already seen run without a timer.

    Yields
    ------
    None
        The body is the call that may compile.
    """
    with _seen_lock:
        first = what not in _seen
        _seen.add(what)
    if not first:
        yield
        return
    _count_compiles()
    timer = threading.Timer(config.COMPILE_NOTICE_SECONDS, _say_if_compiling,
                            (what, _compiles[0]))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
