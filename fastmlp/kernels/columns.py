"""The columns of X a mini-batch uses: zero-column skipping.

With the register tiles and dense X, the first layer's products skip the
columns of X that are zero in every row of the batch: their terms are exact
zeros, so the results are the same bits. Each part marks the columns
non-zero in its share of the next batch's rows (while the rows are in its
cache), and each thread lists the marked columns at the start of that batch.
Where a batch has too few zero columns to pay for the pass
(:data:`fastmlp.config.ZERO_COLUMN_SHARE`), the following batches are not
scanned, 1, 3, 7, ... of them, at most
:data:`fastmlp.config.MAX_DENSE_BATCHES`.
"""

from fastmlp.kernels.codes import skips_zero_columns
from fastmlp.kernels.jit import jit

# Slots of a training call's column state (an int64 array).
N_COLS, N_RUNS, SCANNED, DENSE_LEFT, BACKOFF = range(5)
STATE_SIZE = 5


# The rule as Python and @njit code both call it.
jit(skips_zero_columns)


@jit
def _mark_nonzero_columns(X, rows, r0, m, seen):
    """Make ``seen[j]`` non-zero for every column j of X non-zero (or NaN) in a row of the batch.

    The rows are positions ``r0`` to ``r0 + m`` of ``rows`` (or of X when
    ``rows`` is empty). ``seen`` holds unsigned integers of X's width: it
    collects the values' bits with the sign shifted out (zero for 0.0 and
    -0.0 only): an OR per value, which vectorises without the comparisons
    and the narrowing to bytes of a boolean mask.
    """
    u0 = X.shape[1]
    bits = X.view(seen.dtype)
    for i in range(m):
        x = bits[rows[r0 + i] if rows.size > 0 else r0 + i]
        for j in range(u0):
            seen[j] |= x[j] + x[j]


@jit
def _all_columns(n, cols, runs):
    """List all n columns in ``cols``, as one run in ``runs``; return ``(n, 1)``."""
    for j in range(n):
        cols[j] = j
    runs[0] = 0
    runs[1] = n
    return n, 1


@jit
def _list_columns(seen, n, cols, runs):
    """The columns j < n with ``seen[q, j]`` non-zero in any row q: as a list, and as runs.

    ``cols`` gets the columns, ``runs`` the bounds of their runs (``start,
    stop`` pairs). Returns how many of each. The first layer's products skip
    the other columns: their terms are exact zeros (MNIST: 33 % of the 784
    pixels are 0 in every image of a batch of 128, 42 % at 32).
    """
    n_cols = 0
    n_runs = 0
    before = False
    for j in range(n):
        here = False
        for q in range(seen.shape[0]):
            here |= seen[q, j] != 0
        if here:
            cols[n_cols] = j
            n_cols += 1
            if not before:
                runs[2 * n_runs] = j
                n_runs += 1
        elif before:
            runs[2 * n_runs - 1] = j
        before = here
    if before:
        runs[2 * n_runs - 1] = n
    return n_cols, n_runs


@jit
def plan_columns(state, col_seen, u0, cols, runs, zero_column_share, max_dense_batches):
    """List the columns the next batch's first-layer products read into ``cols`` and ``runs``.

    ``state`` (slots :data:`N_COLS` ...) carries the counts and the backoff
    from batch to batch; ``state[SCANNED]`` says whether ``col_seen`` holds
    this batch's marks (otherwise all columns are listed).
    """
    if state[SCANNED]:
        n_cols, n_runs = _list_columns(col_seen, u0, cols, runs)
        state[N_COLS] = n_cols
        state[N_RUNS] = n_runs
        if not skips_zero_columns(u0, u0 - n_cols, zero_column_share):
            state[BACKOFF] = min(2 * state[BACKOFF] + 1, max_dense_batches)
            state[DENSE_LEFT] = state[BACKOFF]
        else:
            state[BACKOFF] = 0
    else:
        state[DENSE_LEFT] = max(state[DENSE_LEFT] - 1, 0)
        if state[N_RUNS] != 1 or state[N_COLS] != u0:
            state[N_COLS], state[N_RUNS] = _all_columns(u0, cols, runs)
