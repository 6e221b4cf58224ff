"""fastmlp.kernels.mt19937.shuffle against NumPy's legacy RandomState.shuffle, the specification."""

import numpy as np
import pytest
from numba import njit

from fastmlp.kernels import mt19937


@njit(cache=True)
def _shuffle(x, key, pos):
    mt19937.shuffle(x, key, pos)


def _state(rs):
    state = rs.get_state()
    return np.array(state[1], dtype=np.uint32), np.array([state[2]], dtype=np.int64)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 623, 624, 625, 1347, 5000, 70000])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_orders_and_state_equal_random_state(n, seed):
    rs = np.random.RandomState(seed)
    rs.random_sample(seed % 7)  # start at different positions in the 624-word block
    key, pos = _state(rs)
    ours = np.arange(n, dtype=np.int64)
    theirs = np.arange(n, dtype=np.int64)
    for _ in range(3):  # consecutive epochs compose, as the kernels use them
        _shuffle(ours, key, pos)
        rs.shuffle(theirs)
        np.testing.assert_array_equal(ours, theirs)
    state = rs.get_state()
    np.testing.assert_array_equal(key, state[1])
    assert pos[0] == state[2]


def test_state_at_the_end_of_a_block():
    # pos == 624: the next draw first regenerates the whole block.
    rs = np.random.RandomState(3)
    rs.randint(0, 2**31, size=624)  # 624 32-bit words
    key, pos = _state(rs)
    assert pos[0] == 624
    x = np.arange(100, dtype=np.int64)
    _shuffle(x, key, pos)
    expected = np.arange(100, dtype=np.int64)
    rs.shuffle(expected)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(key, rs.get_state()[1])


def test_shuffles_values_not_positions():
    # In place on any order: the same swaps as shuffling arange(n) and indexing
    # the order with it (sklearn's shuffle(sample_idx)).
    rs = np.random.RandomState(7)
    order = np.random.RandomState(8).permutation(500).astype(np.int64) * 3
    key, pos = _state(rs)
    x = order.copy()
    _shuffle(x, key, pos)
    perm = np.arange(500)
    rs.shuffle(perm)
    np.testing.assert_array_equal(x, order[perm])
