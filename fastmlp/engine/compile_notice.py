"""Say so, once, when a first call into the kernels is compiling them.

Numba compiles a kernel for each new signature on its first call, then caches the machine code on
disk; later processes load it in well under a second. A compile takes long enough (tens of seconds
on a cold cache) that a silent first fit looks hung, so the first call of each kind arms a timer:
if the call is still running after ``config.COMPILE_NOTICE_SECONDS``, one message goes to the
``fastmlp`` logger (printed on stderr when logging is not configured). Loading from the cache and a
first chunk of epochs (``config.CHUNK_SECONDS``) both end well before the timer.
"""

import contextlib
import logging
import threading

from fastmlp import config

logger = logging.getLogger("fastmlp")

_seen = set()
_seen_lock = threading.Lock()


def _message(what):
    return (f"fastmlp: compiling the {what} kernels for this machine. This happens once per "
            f"machine and fastmlp version and takes roughly {config.COMPILE_NOTICE_ESTIMATE}; "
            "later fits load the compiled code from numba's cache in under a second.")


@contextlib.contextmanager
def compile_notice(what):
    """Log one notice if the first call of kind ``what`` runs longer than a compile threshold.

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
    timer = threading.Timer(config.COMPILE_NOTICE_SECONDS, logger.warning, (_message(what),))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
