"""NumPy's legacy ``RandomState.shuffle`` in compiled code, for shuffling inside the kernels.

scikit-learn's MLP shuffles the sample order at the start of every epoch with
its ``RandomState`` (``sklearn.utils.shuffle``: one ``shuffle`` of
``arange(n)``, composed with the previous order). A Python call per epoch
is a noticeable share of a small epoch's batches, so the
kernels run many epochs per call and shuffle themselves, with these
functions on a copy of the generator's state: the same Mersenne Twister
(MT19937) words and the same bounded draws (NumPy's ``random_interval``,
masked rejection), so the same orders, and the state the caller writes back
is the one ``RandomState`` would have. The legacy stream is frozen by
NumPy's compatibility policy (NEP 19); ``tests/test_mt19937.py`` checks the
orders and states against ``RandomState`` itself.
"""

import numpy as np
from numba.extending import register_jitable

_N = 624
_M = 397
_LOW32 = 0xFFFFFFFF


@register_jitable
def _twist(key, i, j, k):
    """Word i of the next state, from words i, j = i + 1 and k = i + 397 (mod 624)."""
    y = (np.int64(key[i]) & 0x80000000) | (np.int64(key[j]) & 0x7FFFFFFF)
    # Branch-free: the low bit is a coin flip, which a branch would mispredict half the time.
    key[i] = np.uint32(np.int64(key[k]) ^ (y >> 1) ^ (-(y & 1) & 0x9908B0DF))


@register_jitable
def _regenerate(key):
    """The next 624 words of the state (the generator's ``mt19937_gen``).

    Three loops instead of indices modulo 624, which doubled a shuffle's time.
    """
    for i in range(_N - _M):
        _twist(key, i, i + 1, i + _M)
    for i in range(_N - _M, _N - 1):
        _twist(key, i, i + 1, i + _M - _N)
    _twist(key, _N - 1, 0, _M - 1)


@register_jitable
def _temper(y):
    """The output word of state word y (as int64)."""
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C5680
    y ^= (y << 15) & 0xEFC60000
    return y ^ (y >> 18)


@register_jitable
def shuffle(x, key, pos):
    """Shuffle the 1-D array ``x`` in place as ``RandomState.shuffle`` would.

    Swaps ``x[i]`` with ``x[j]``, j uniform in ``[0, i]``, for i from the end
    down to 1; j is the next word (two words past 32 bits) masked to the bits
    of i, drawn again while above i (NumPy's ``random_interval``). The draw is
    written out in the loop: as a helper returning (word, position) the
    shuffle took twice as long.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Values to shuffle.
    key : ndarray of uint32, shape (624,)
        The MT19937 state words (``RandomState.get_state()[1]``), advanced in place.
    pos : ndarray of int64, shape (1,)
        The position in ``key`` (``RandomState.get_state()[2]``), advanced in place.
    """
    p = pos[0]
    for i in range(x.size - 1, 0, -1):
        mask = i
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        mask |= mask >> 32
        while True:
            if p >= _N:
                _regenerate(key)
                p = 0
            j = _temper(np.int64(key[p]))
            p += 1
            if i > _LOW32:
                if p >= _N:
                    _regenerate(key)
                    p = 0
                j = (j << 32) | _temper(np.int64(key[p]))
                p += 1
            j &= mask
            if j <= i:
                break
        t = x[i]
        x[i] = x[j]
        x[j] = t
    pos[0] = p
