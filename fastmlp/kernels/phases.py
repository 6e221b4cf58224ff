"""The phases of one mini-batch of :func:`fastmlp.kernels.train.train_batches`.

Every batch is split into ``team.n_parts`` parts (1 for a network without a
hidden layer: the output activation, softmax, needs whole rows). Part p

0. finds its share of the batch's rows (:func:`batch_inputs`): gathers it
   into the workspace, or with the tiles lists the rows' addresses in X and
   the columns the batch uses;
1. computes its share of the first hidden layer's units for all rows
   (:func:`first_layer`);
2. runs the rest of the forward pass and the whole backward pass for its
   share of the rows (:func:`rows_phase`);
3. computes the gradient and update of the parameters it owns
   (:func:`update_phase`).

A thread runs parts ``team.part_lo`` to ``team.part_hi``; the threads of a
call meet (:func:`meet`) after each phase that the next one depends on. A
part's arithmetic does not depend on which thread runs it, and the parts'
sums are combined in part order, so results are the same bits for any
number of threads.
"""

import numpy as np

from fastmlp.kernels.blas import NO_TRANS
from fastmlp.kernels.bundles import Batch, Plan, Scratch
from fastmlp.kernels.columns import (
    DENSE_LEFT, N_COLS, N_RUNS, STATE_SIZE, _mark_nonzero_columns, plan_columns)
from fastmlp.kernels.elementwise import activate, block_nonfinite, output_delta
from fastmlp.kernels.jit import addr, cut, inline, jit, output_offset_of, share
from fastmlp.kernels.layers import (
    backward_deltas, gather, layer_forward, prefetch_rows, row_addresses, rows_nonfinite)
from fastmlp.kernels.sync import barrier
from fastmlp.kernels.tiles import STRIP_BYTES, product_of_rows
from fastmlp.kernels.update import first_layer_blocks, update_part


@jit
def meet(team):
    """Wait at this call's next barrier until every thread of ``team`` is there.

    The barriers are numbered by ``team.passed``, which counts those this
    thread passed: every thread meets the others at the same points, in the
    same order. Returns False if another thread gave up (it failed or was
    interrupted): the caller then stops at once and returns
    :data:`fastmlp.kernels.train.ABORTED`.
    """
    k = team.passed[0]
    team.passed[0] = k + 1
    return barrier(team.sync, team.n_threads, k)


@inline
def make_plan(data, net, work, batch_size):
    """The :class:`~fastmlp.kernels.bundles.Plan` of a training call."""
    units = net.units
    u0 = units[0]
    align = STRIP_BYTES // net.params.itemsize  # a cache line (fastmlp.kernels.aligned.CACHE_LINE)
    # Tiles can read the batch's rows where they are in X: no gathered copy, and
    # no rows passed between the threads' cores.
    direct = work.tiled and data.Xptr.size == 0
    # Their first-layer weights are then strip-major (see first_layer_blocks), in
    # strips of a cache line: align columns, the multiple the parts are cut at.
    strip = align if direct else 0
    n_direct = batch_size if direct else 0
    return Plan(align, strip, direct, data.rows.size > 0 and data.Xptr.size == 0,
                direct and work.col_seen.shape[1] >= u0,
                output_offset_of(units, units.size - 2, batch_size),
                np.empty(n_direct, dtype=np.int64),
                np.empty(u0 if direct else 0, dtype=np.int64),
                np.empty(u0 + 1 if direct else 0, dtype=np.int64),
                np.empty(n_direct, dtype=np.int64),
                np.zeros(STATE_SIZE, dtype=np.int64))


@jit
def scratch(work, cap, p):
    """Part p's :class:`~fastmlp.kernels.bundles.Scratch` in the training workspace."""
    return Scratch(work.acts, work.deltas, cap, work.iscrs[p], work.fscrs[p], work.tiled)


@jit
def move_first_layer(net, opt, work, team, plan, into_blocks):
    """Copy the first layer of this thread's parts into (or back from) their blocks."""
    u0 = net.units[0]
    u1 = net.units[1]
    for p in range(team.part_lo, team.part_hi):
        first_layer_blocks(net.params, opt.s1, opt.s2, work.first, u0, u1,
                           cut(u1, p, team.n_parts, plan.align),
                           cut(u1, p + 1, team.n_parts, plan.align), plan.strip, into_blocks)


@inline
def batch_inputs(b, r0, m, data, net, work, schedule, team, plan):
    """Phase 0. Returns the address of the batch's first-layer input rows,
    whether this batch marks the next one's columns, and False if a thread gave up.

    With the tiles reading X, each thread takes all the batch's row
    addresses: nothing to share, no barrier.
    """
    if plan.direct:
        row_addresses(data.X, data.rows, r0, r0 + m, plan.x_rows)
        plan_columns(plan.state, work.col_seen, net.units[0], plan.cols, plan.runs,
                     work.zero_column_share, work.max_dense_batches)
        scan_ahead = plan.skip and b + 1 < schedule.b_stop and plan.state[DENSE_LEFT] == 0
        return addr(work.xb, 0), scan_ahead, True
    if plan.gathered:
        for p in range(team.part_lo, team.part_hi):
            s_lo, s_hi = share(data.n_rows, r0, schedule.batch_size, p, team.n_parts)
            gather(data.X, data.rows, s_lo, s_hi - s_lo, work.xb, s_lo - r0)
        return addr(work.xb, 0), False, meet(team)
    return addr(data.X, r0 * net.units[0]), False, True


@inline
def first_layer(r0, m, x_ptr, scan_ahead, data, net, work, batch_size, team, plan):
    """Phase 1: this thread's parts' units of the first layer, for all m rows.

    Returns whether its products hold NaN or inf. With the tiles reading X,
    each part also prefetches its share of the next batch's rows, when that
    batch's columns are to be marked.
    """
    units = net.units
    u0 = units[0]
    u1 = units[1]
    act = net.hidden_act if units.size > 2 else net.out_act
    n_cols = plan.state[N_COLS]
    n_runs = plan.state[N_RUNS]
    nonfinite = False
    for p in range(team.part_lo, team.part_hi):
        c_lo = cut(u1, p, team.n_parts, plan.align)
        c_hi = cut(u1, p + 1, team.n_parts, plan.align)
        scr = scratch(work, batch_size, p)
        if plan.direct:
            n_ahead = 0
            if scan_ahead:
                a_lo, a_hi = share(data.n_rows, r0 + batch_size, batch_size, p, team.n_parts)
                n_ahead = row_addresses(data.X, data.rows, a_lo, a_hi, plan.ahead)
            product_of_rows(np.int64(NO_TRANS), m, c_hi - c_lo, u0, plan.x_rows[:m],
                            plan.cols[:n_cols], plan.runs[:2 * n_runs], plan.ahead[:n_ahead],
                            u0 * data.X.itemsize,
                            (addr(work.first[0], u0 * c_lo), plan.strip, u0 * plan.strip),
                            (addr(work.acts, c_lo), u1, plan.strip), False, scr.fscr)
            nonfinite |= block_nonfinite(work.acts, c_lo, m, c_hi - c_lo, u1)
            activate(work.acts, c_lo, m, c_hi - c_lo, u1, net.params, net.ioff[0] + c_lo, act)
        else:
            nonfinite |= layer_forward(0, x_ptr, data, r0, m, 0, c_lo, c_hi, work.first[0],
                                       u0 * c_lo, c_hi - c_lo, net, act, scr, True)
    return nonfinite


@inline
def rows_phase(r0, m, nonfinite, scan_ahead, data, net, work, batch_size, team, plan):
    """Phase 2: the later layers, the output delta and loss, and the backward deltas of
    this thread's parts' rows; each part's (loss, weight sum) goes to ``work.partials``.

    NaN or inf in X ends the call as a non-finite loss would (the estimator
    then reports the input, not a divergence); the rows are checked only when
    the first layer's products say they may hold some.
    """
    units = net.units
    n_layers = units.size - 1
    k = units[n_layers]
    for p in range(team.part_lo, team.part_hi):
        s_lo, s_hi = share(data.n_rows, r0, batch_size, p, team.n_parts)
        lo = s_lo - r0
        mp = s_hi - s_lo
        # The targets of this part's rows, for the output delta after the later
        # layers (the first layer's stream evicted them).
        prefetch_rows(data.Y, data.sw, data.rows, r0 + lo, r0 + lo + mp)
        scr = scratch(work, batch_size, p)
        for layer in range(1, n_layers):
            act = net.out_act if layer == n_layers - 1 else net.hidden_act
            a_ptr = addr(work.acts, output_offset_of(units, layer - 1, batch_size)
                         + lo * units[layer])
            layer_forward(layer, a_ptr, data, r0 + lo, mp, lo, 0, units[layer + 1], net.params,
                          net.coff[layer], units[layer + 1], net, act, scr, False)
        out = plan.out_off + lo * k
        loss, wsum = output_delta(work.acts, out, work.deltas, out, mp, k, data.Y, data.sw,
                                  data.rows, r0 + lo, net.loss_kind)
        backward_deltas(mp, lo, net, scr)
        if p == team.part_lo and nonfinite and rows_nonfinite(data, r0, m):
            loss = np.nan
        work.partials[p, 0] = loss
        work.partials[p, 1] = wsum
        if scan_ahead:
            # Everyone has listed this batch's columns from col_seen (before phase 1's barrier).
            a_lo, a_hi = share(data.n_rows, r0 + batch_size, batch_size, p, team.n_parts)
            work.col_seen[p, :] = 0
            _mark_nonzero_columns(data.X, data.rows, a_lo, a_hi - a_lo, work.col_seen[p])


@inline
def update_phase(r0, m, x_ptr, lr_t, data, net, opt, work, batch_size, team, plan):
    """Phase 3: gradient and step of the parameters this thread's parts own.

    Each part's sum of squares of its weights goes to ``work.partials``.
    Returns the batch's weight sum.
    """
    wsum = 0.0
    for p in range(team.n_parts):
        wsum += work.partials[p, 1]
    batch = Batch(r0, m, x_ptr, plan.x_rows[:m], plan.cols[:plan.state[N_COLS]])
    for p in range(team.part_lo, team.part_hi):
        work.partials[p, 2] = update_part(p, team.n_parts, plan.align, batch, data, net, opt,
                                          wsum, lr_t, work.gbufs[p], work.first,
                                          scratch(work, batch_size, p))
    return wsum
