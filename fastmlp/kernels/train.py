"""The compiled entry points: mini-batch training, loss and gradient, prediction.

Everything works on flat buffers allocated once per fit (see
:mod:`fastmlp.engine.numba_backend`): parameters, optimizer state, and a
workspace for the gathered batch, activations, deltas and one gradient block
per part. The arguments come in named bundles (:mod:`fastmlp.kernels.bundles`).
Matrix products go through fastmlp's register tiles
(:mod:`fastmlp.kernels.tiles`) or BLAS gemm; element-wise work (bias +
activation, output delta + loss, activation derivative, gradient + L2 +
optimizer step) is one pass each (:mod:`fastmlp.kernels.elementwise`).
"""

import numpy as np

from fastmlp.kernels.blas import cast_like
from fastmlp.kernels.bundles import Team
from fastmlp.kernels.codes import ADAM, HYPER_BETA_1, HYPER_BETA_2, HYPER_LEARNING_RATE_INIT
from fastmlp.kernels.columns import SCANNED
from fastmlp.kernels.elementwise import output_delta
from fastmlp.kernels.jit import inline, jit, kernel, output_offset_of
from fastmlp.kernels.layers import backward_deltas, bias_gradient, forward, weight_gradient
from fastmlp.kernels.mt19937 import shuffle
from fastmlp.kernels.phases import (
    batch_inputs, first_layer, make_plan, meet, move_first_layer, rows_phase, update_phase)
from fastmlp.kernels.sync import contended, hand_over, handed_over, mark_start

#: ``n_done`` of a training call that stopped because another thread gave up.
ABORTED = -1


@jit
def _adam_step_size(hyper, t):
    """Adam's step size at step t, as scikit-learn computes it."""
    return (hyper[HYPER_LEARNING_RATE_INIT] * np.sqrt(1.0 - hyper[HYPER_BETA_2] ** t)
            / (1.0 - hyper[HYPER_BETA_1] ** t))


@inline
def _train_batch(b, t, data, net, opt, work, schedule, team, plan):
    """Batch b, the optimizer's step t: phases 0 to 3 (see :mod:`fastmlp.kernels.phases`).

    Returns whether the threads got through it (False: one gave up), its
    loss (data loss plus the L2 term, over the weight sum), its rows, and
    whether the first thread runs every part from the next batch on
    (:func:`fastmlp.kernels.sync.hand_over`).
    """
    batch_size = schedule.batch_size
    r0 = b * batch_size
    m = min(batch_size, data.n_rows - r0)
    lr_t = _adam_step_size(opt.hyper, t) if opt.kind == ADAM else 0.0
    x_ptr, scan_ahead, ok = batch_inputs(b, r0, m, data, net, work, schedule, team, plan)
    if not ok:
        return False, 0.0, m, False
    nonfinite = first_layer(r0, m, x_ptr, scan_ahead, data, net, work, batch_size, team, plan)
    if not meet(team):
        return False, 0.0, m, False
    # Decided between this barrier and the next, read by all after the last.
    if team.n_threads > 1 and team.part_lo == 0 and contended(team.sync):
        hand_over(team.sync)
    rows_phase(r0, m, nonfinite, scan_ahead, data, net, work, batch_size, team, plan)
    plan.state[SCANNED] = scan_ahead
    if not meet(team):
        return False, 0.0, m, False
    wsum = update_phase(r0, m, x_ptr, lr_t, data, net, opt, work, batch_size, team, plan)
    if not meet(team):
        return False, 0.0, m, False
    loss = 0.0
    ssq = 0.0
    for p in range(team.n_parts):
        loss += work.partials[p, 0]
        ssq += work.partials[p, 2]
    handed = team.n_threads > 1 and handed_over(team.sync)
    return True, loss / wsum + 0.5 * opt.alpha * ssq / wsum, m, handed


@jit
def _no_improvement(epoch_loss, best_loss, count, stop_rule):
    """scikit-learn's ``_update_no_improvement_count`` (without early stopping).

    Returns the new best loss and count, and whether training stops.
    """
    if epoch_loss > best_loss - stop_rule[2]:
        count += 1.0
    else:
        count = 0.0
    if epoch_loss < best_loss:
        best_loss = epoch_loss
    return best_loss, count, count > stop_rule[3]


@inline
def _run(data, net, opt, work, schedule, team, plan):
    """The batches or epochs of :func:`train_batches`.

    Returns ``(loss_sum, n_done, team)``, with the team this thread ended
    in: all parts in one thread after a hand-over, or no parts for a thread
    that handed its parts over and stopped.
    """
    t0 = opt.step[0]
    n_done = 0
    loss_sum = schedule.loss_sum
    best_loss = schedule.stop_rule[0]
    count = schedule.stop_rule[1]
    for e in range(max(schedule.n_epochs, 1)):
        if schedule.n_epochs > 0:
            loss_sum = 0.0
            plan.state[SCANNED] = 0
            if schedule.mt_key.size > 0:
                if team.part_lo == 0:
                    shuffle(data.rows, schedule.mt_key, schedule.mt_pos)
                if not meet(team):
                    return loss_sum, ABORTED, team
        for b in range(schedule.b_start, schedule.b_stop):
            ok, batch_loss, m, handed = _train_batch(b, t0 + n_done + 1, data, net, opt, work,
                                                     schedule, team, plan)
            if not ok:
                return loss_sum, ABORTED, team
            loss_sum += batch_loss * m
            n_done += 1
            if handed:
                if team.part_lo > 0:
                    return loss_sum, n_done, _stopped(team)
                team = _alone(team)
            if not np.isfinite(batch_loss):
                return loss_sum, n_done, team
        if schedule.n_epochs == 0:
            break
        epoch_loss = loss_sum / data.n_rows
        schedule.epoch_losses[e] = epoch_loss
        best_loss, count, stop = _no_improvement(epoch_loss, best_loss, count, schedule.stop_rule)
        if stop:
            break
    return loss_sum, n_done, team


@jit
def _alone(team):
    """``team`` as the one thread running every part."""
    # Fields computed from team's (not literals 0 and 1) keep their int64 types:
    # the rebound team stays one Numba type.
    return Team(team.part_lo * 0, team.n_parts, team.n_parts, team.n_threads * 0 + 1, team.sync,
                team.passed)


@jit
def _stopped(team):
    """``team`` as a thread that handed its parts over: no parts left."""
    return Team(team.part_lo, team.part_lo, team.n_parts, team.n_threads, team.sync, team.passed)


@kernel
def train_batches(data, net, opt, work, schedule, team):
    """Mini-batches ``b_start`` to ``b_stop`` of an epoch, or whole epochs: forward to update.

    Batch b covers positions ``[b * batch_size, min((b + 1) * batch_size, n_rows))``
    of ``data.rows`` (sample indices in epoch order) or, when ``rows`` is
    empty, the rows of X themselves. Stops early at the first non-finite batch
    loss, and at the first batch with NaN or inf in its rows of X (its loss
    is then NaN). Each batch runs in phases and parts
    (:mod:`fastmlp.kernels.phases`); this call runs ``team``'s parts.

    ``schedule.loss_sum`` is the running sum carried over from the previous
    call of the epoch, so the epoch's loss is summed in batch order however it
    is chunked.

    With ``schedule.n_epochs`` > 0 the call instead runs up to ``n_epochs``
    whole epochs (``b_start`` 0, ``b_stop`` all batches), each from a loss sum
    of 0, writing epoch e's mean loss (sklearn's ``loss_``) to
    ``epoch_losses[e]``. Each epoch starts by shuffling ``rows`` in place with
    the MT19937 state ``mt_key``, ``mt_pos``
    (:func:`fastmlp.kernels.mt19937.shuffle`: scikit-learn's order) unless
    ``mt_key`` is empty. After each epoch it applies scikit-learn's
    no-improvement rule (without early stopping) to ``stop_rule = [best_loss,
    count, tol, n_iter_no_change]`` (a local copy; the caller replays the
    rule on the returned losses) and returns after the epoch where the count
    exceeds ``n_iter_no_change``.

    When the threads' waits say a partner is not running (another process
    holds its core), the first thread runs every part from the end of a
    batch on and the others return (:func:`fastmlp.kernels.sync.contended`);
    the results are the same bits.

    With tiles and dense X, the first layer's products skip the columns of X
    that are zero in every row of the batch (:mod:`fastmlp.kernels.columns`),
    unless ``work.col_seen`` has fewer columns than X.

    Parameters
    ----------
    data : fastmlp.kernels.bundles.Data
    net : fastmlp.kernels.bundles.Net
        Its ``params`` are updated in place.
    opt : fastmlp.kernels.bundles.Optimizer
        Its state (and Adam's step counter) is updated in place.
    work : fastmlp.kernels.bundles.Workspace
    schedule : fastmlp.kernels.bundles.Schedule
    team : fastmlp.kernels.bundles.Team

    Returns
    -------
    loss_sum : float
        ``loss_sum`` plus, over the batches, batch loss times batch length
        (sklearn's ``accumulated_loss``).
    n_done : int
        Number of batches run (over all epochs); :data:`ABORTED` if another
        thread gave up.
    """
    if team.part_lo == 0:
        mark_start(team.sync)
    plan = make_plan(data, net, work, schedule.batch_size)
    move_first_layer(net, opt, work, team, plan, True)
    t0 = opt.step[0]
    loss_sum, n_done, team = _run(data, net, opt, work, schedule, team, plan)
    move_first_layer(net, opt, work, team, plan, False)
    if team.part_lo == 0 and opt.kind == ADAM and n_done > 0:
        opt.step[0] = t0 + n_done
    return loss_sum, n_done


@kernel
def gradient_part(data, net, block, part, n_parts, grad, scr):
    """Raw loss and gradient sums over blocks ``part``, ``part + n_parts``, ... of the rows.

    The rows (``data.rows`` empty) go ``block`` at a time; ``grad`` (the
    layout of ``params``) receives the sums of the per-row gradients, without
    the L2 term and unscaled. Parts touch only their own ``grad`` and
    ``scr``, so they can run in any threads; :func:`finish_gradient` adds
    them up in part order. Returns (weighted data-loss sum, weight sum).
    """
    zero = cast_like(grad, 0.0)
    for j in range(grad.size):
        grad[j] = zero
    units = net.units
    n_layers = units.size - 1
    k = units[n_layers]
    out_off = output_offset_of(units, n_layers - 1, block)
    loss = 0.0
    wsum = 0.0
    for r0 in range(part * block, data.n_rows, n_parts * block):
        m = min(block, data.n_rows - r0)
        x_ptr = forward(data, r0, m, net, scr.acts[:0], scr)
        part_loss, w = output_delta(scr.acts, out_off, scr.deltas, out_off, m, k, data.Y,
                                    data.sw, data.rows, r0, net.loss_kind)
        backward_deltas(m, 0, net, scr)
        for layer in range(n_layers):
            u_out = units[layer + 1]
            weight_gradient(grad, net.coff[layer], u_out, 1.0, layer, 0, units[layer], 0, u_out,
                            x_ptr, data, r0, m, units, scr)
            bias_gradient(grad, net.ioff[layer], True, layer, 0, u_out, m, units, scr.deltas,
                          block)
        loss += part_loss
        wsum += w
    return loss, wsum


@kernel
def finish_gradient(grads, losses, params, n_coef, alpha, grad):
    """Add the parts' sums in part order, then the L2 term; scale by the weight sum.

    ``grads`` holds one raw gradient per part (rows), ``losses`` their
    (data-loss sum, weight sum) pairs. Writes ``grad`` and returns the loss.
    """
    n_parts = grads.shape[0]
    loss = 0.0
    wsum = 0.0
    for p in range(n_parts):
        loss += losses[p, 0]
        wsum += losses[p, 1]
    for j in range(grad.size):
        grad[j] = grads[0, j]
    for p in range(1, n_parts):
        g = grads[p]
        for j in range(grad.size):
            grad[j] += g[j]
    alpha_c = cast_like(grad, alpha)
    sw = cast_like(grad, wsum)
    ssq = 0.0
    for j in range(n_coef):
        w = params[j]
        ssq += np.float64(w) * np.float64(w)
        grad[j] = (grad[j] + alpha_c * w) / sw
    for j in range(n_coef, grad.size):
        grad[j] = grad[j] / sw
    return loss / wsum + 0.5 * alpha * ssq / wsum


@kernel
def predict(data, net, block, out, scr):
    """Output-layer activations for all rows (``data.rows`` empty), ``block`` at a time, into ``out``."""
    units = net.units
    k = units[units.size - 1]
    out_off = output_offset_of(units, units.size - 2, block)
    for r0 in range(0, data.n_rows, block):
        m = min(block, data.n_rows - r0)
        forward(data, r0, m, net, scr.acts[:0], scr)
        for i in range(m):
            for c in range(k):
                out[r0 + i, c] = scr.acts[out_off + i * k + c]
