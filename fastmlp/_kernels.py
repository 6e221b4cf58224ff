"""Compiled kernels: many mini-batches of forward, backward and update per call.

Everything works on flat buffers allocated once per fit (see
:mod:`fastmlp.backends`): parameters, optimizer state, and a workspace for the
gathered batch, activations, deltas and one gradient block. Matrix products go
through BLAS gemm; element-wise work (bias + activation, output delta + loss,
activation derivative, gradient + L2 + optimizer step) is one pass each.
"""

import numpy as np
from numba import njit

from fastmlp._blas import NO_TRANS, TRANS, cast_like, gemm

# Codes; must match the order of fastmlp._network.ACTIVATIONS / LOSSES.
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
LOG_LOSS, BINARY_LOG_LOSS, SQUARED_ERROR, POISSON, SIGMOID_SQUARED_ERROR = 0, 1, 2, 3, 4
SGD, ADAM = 0, 1

_jit = njit(cache=True, nogil=True)


@njit(cache=True, nogil=True, inline="always")
def _addr(a, offset):
    """Address of ``a.flat[offset]`` as int64 (uintp arithmetic would promote to float64)."""
    return np.int64(a.ctypes.data) + np.int64(offset) * a.itemsize


# Loops below index slices by their own induction variable: with ``x[offset + j]``
# Numba cannot drop its negative-index check, and the loop does not vectorise
# (measured: the optimizer pass ran 7x slower).


@_jit
def _activate(z, zo, m, u, params, bo, act):
    """In place on the m x u block at ``z[zo:]``: add the bias ``params[bo:bo+u]``, apply ``act``."""
    one = cast_like(z, 1.0)
    zero = cast_like(z, 0.0)
    b = params[bo:bo + u]
    for i in range(m):
        row = z[zo + i * u:zo + (i + 1) * u]
        # One loop per activation, so each is branch-free.
        if act == LOGISTIC:
            for j in range(u):
                # exp(-v) overflows to inf for very negative v: exactly 0, never NaN.
                row[j] = one / (one + np.exp(-(row[j] + b[j])))
        elif act == TANH:
            for j in range(u):
                row[j] = np.tanh(row[j] + b[j])
        elif act == RELU:
            for j in range(u):
                v = row[j] + b[j]
                row[j] = zero if v < zero else v  # NaN stays NaN, as np.maximum
        elif act == EXP:
            for j in range(u):
                row[j] = np.exp(row[j] + b[j])
        elif act == SOFTMAX:
            top = row[0] + b[0]
            for j in range(u):
                v = row[j] + b[j]
                row[j] = v
                if v > top:
                    top = v
            total = zero
            for j in range(u):
                e = np.exp(row[j] - top)
                row[j] = e
                total += e
            for j in range(u):
                row[j] = row[j] / total
        else:
            for j in range(u):
                row[j] = row[j] + b[j]


@_jit
def _derivative(d, do, a, ao, m, u, act):
    """Multiply the deltas at ``d[do:]`` by the activation's derivative, written in terms of its output."""
    one = cast_like(d, 1.0)
    zero = cast_like(d, 0.0)
    n = m * u
    dd = d[do:do + n]
    aa = a[ao:ao + n]
    if act == LOGISTIC:
        for j in range(n):
            s = aa[j]
            dd[j] = (dd[j] * s) * (one - s)
    elif act == TANH:
        for j in range(n):
            s = aa[j]
            dd[j] = dd[j] * (one - s * s)
    elif act == RELU:
        for j in range(n):
            if aa[j] == zero:
                dd[j] = zero


@_jit
def _clip(x, lo, hi):
    # Comparisons, not min/max, so NaN passes through (as np.clip) and is noticed.
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@_jit
def _xlogy(y, x):
    return 0.0 if y == 0 else y * np.log(x)


@_jit
def _output_delta(a, ao, d, do, m, k, Y, sw, rows, r0, loss_kind):
    """Output delta ``A - Y`` (times the sample weight) and the loss, in one pass.

    Returns the weighted sum of per-sample losses and the sum of weights.
    """
    one = cast_like(a, 1.0)
    eps = cast_like(a, 1.1920928955078125e-07) if a.itemsize == 4 else 2.220446049250313e-16
    hi = one - eps
    gathered = rows.size > 0
    weighted = sw.size > 0
    loss = 0.0
    wsum = 0.0
    for i in range(m):
        r = rows[r0 + i] if gathered else r0 + i
        w = sw[r] if weighted else one
        wsum += w
        li = 0.0
        for c in range(k):
            p = a[ao + i * k + c]
            y = Y[r, c]
            if loss_kind == LOG_LOSS:
                li -= _xlogy(y, _clip(p, eps, hi))
            elif loss_kind == BINARY_LOG_LOSS:
                pc = _clip(p, eps, hi)
                li -= _xlogy(y, pc) + _xlogy(one - y, one - pc)
            elif loss_kind == POISSON:
                li += _xlogy(y, y / p) - y + p
            else:
                li += 0.5 * (y - p) * (y - p)
            delta = p - y
            if loss_kind == SIGMOID_SQUARED_ERROR:
                delta = delta * p * (one - p)
            if weighted:
                delta = delta * w
            d[do + i * k + c] = delta
        loss += w * li
    if loss_kind == SQUARED_ERROR:
        loss /= k  # sklearn averages the squared error over outputs
    return loss, wsum


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sum_squares(x, o, n):
    """Sum of squares of ``x[o:o+n]`` in float64 (reassociation lets it vectorise)."""
    total = 0.0
    xs = x[o:o + n]
    for j in range(n):
        v = np.float64(xs[j])
        total += v * v
    return total


@_jit
def _step(params, po, g, go, n, alpha, wsum, opt_kind, hyper, s1, s2, lr_t):
    """Gradient ``(G + alpha W) / wsum`` and the optimizer update, one pass over n parameters.

    Returns the sum of squares of the parameters before the update (the L2 term;
    0 when alpha is 0). Each optimizer has its own branch-free loop so it vectorises.
    """
    ssq = _sum_squares(params, po, n) if alpha != 0.0 else 0.0
    P = params[po:po + n]
    G = g[go:go + n]
    V = s1[po:po + n]
    one = cast_like(params, 1.0)
    alpha_c = cast_like(params, alpha)
    sw = cast_like(params, wsum)
    lr = cast_like(params, hyper[0])
    mom = cast_like(params, hyper[1])
    if opt_kind == SGD and hyper[2] != 0.0:
        for j in range(n):
            w = P[j]
            grad = (G[j] + alpha_c * w) / sw
            v = mom * V[j] - lr * grad
            V[j] = v
            P[j] = w + (mom * v - lr * grad)
    elif opt_kind == SGD:
        for j in range(n):
            w = P[j]
            grad = (G[j] + alpha_c * w) / sw
            v = mom * V[j] - lr * grad
            V[j] = v
            P[j] = w + v
    else:
        M2 = s2[po:po + n]
        b1 = cast_like(params, hyper[3])
        b2 = cast_like(params, hyper[4])
        eps = cast_like(params, hyper[5])
        for j in range(n):
            w = P[j]
            grad = (G[j] + alpha_c * w) / sw
            mo = b1 * V[j] + (one - b1) * grad
            ve = b2 * M2[j] + (one - b2) * (grad * grad)
            V[j] = mo
            M2[j] = ve
            # sklearn's step size is a float64 scalar, so the update is float64.
            P[j] = w + (-lr_t * np.float64(mo)) / np.float64(np.sqrt(ve) + eps)
    return ssq


@_jit
def _forward(X, Xdata, Xind, Xptr, rows, r0, m, params, units, coff, ioff,
             hidden_act, out_act, xb, acts, cap, iscr, fscr):
    """Forward pass of m rows into ``acts``; returns the first layer's input pointer."""
    n_layers = units.size - 1
    u0 = units[0]
    sparse = Xptr.size > 0
    gathered = rows.size > 0
    if sparse:
        a_ptr = 0
    elif gathered:
        for i in range(m):
            src = X[rows[r0 + i]]
            dst = xb[i * u0:(i + 1) * u0]
            for j in range(u0):
                dst[j] = src[j]
        a_ptr = _addr(xb, 0)
    else:
        a_ptr = _addr(X, r0 * u0)
    x_ptr = a_ptr
    zo = 0
    for layer in range(n_layers):
        u_in = units[layer]
        u_out = units[layer + 1]
        if layer == 0 and sparse:
            zero = cast_like(acts, 0.0)
            for j in range(m * u_out):
                acts[j] = zero
            for i in range(m):
                r = rows[r0 + i] if gathered else r0 + i
                for p in range(Xptr[r], Xptr[r + 1]):
                    v = Xdata[p]
                    wrow = coff[0] + Xind[p] * u_out
                    for j in range(u_out):
                        acts[i * u_out + j] += v * params[wrow + j]
        else:
            gemm(NO_TRANS, NO_TRANS, m, u_out, u_in, 1.0, a_ptr, u_in,
                 _addr(params, coff[layer]), u_out, 0.0,
                 _addr(acts, zo), u_out, iscr, fscr)
        act = out_act if layer == n_layers - 1 else hidden_act
        _activate(acts, zo, m, u_out, params, ioff[layer], act)
        a_ptr = _addr(acts, zo)
        zo += cap * u_out
    return x_ptr


@_jit
def _forward_backward(X, Xdata, Xind, Xptr, Y, sw, rows, r0, m, params, units, coff, ioff,
                      hidden_act, out_act, loss_kind, accumulate, alpha, opt_kind, hyper,
                      s1, s2, lr_t, grad, xb, acts, deltas, gbuf, cap, iscr, fscr):
    """Forward and backward pass of m rows.

    With ``accumulate`` the raw gradient sums are added into ``grad`` (full-batch
    loss); otherwise each layer is updated by the optimizer as soon as its
    gradient is known (its old weights were already used for the deltas below).

    Returns (weighted data-loss sum, weight sum, sum of squared weights before the update).
    """
    n_layers = units.size - 1
    sparse = Xptr.size > 0
    gathered = rows.size > 0
    x_ptr = _forward(X, Xdata, Xind, Xptr, rows, r0, m, params, units, coff, ioff,
                     hidden_act, out_act, xb, acts, cap, iscr, fscr)
    out_off = 0  # offset of the output layer's activations in ``acts``
    for layer in range(1, n_layers):
        out_off += cap * units[layer]
    k = units[n_layers]
    half = deltas.size // 2
    loss, wsum = _output_delta(acts, out_off, deltas, 0, m, k, Y, sw, rows, r0, loss_kind)
    d_next = 0
    d_cur = half
    a_in = out_off
    ssq = 0.0
    zero = cast_like(params, 0.0)
    for layer in range(n_layers - 1, -1, -1):
        u_in = units[layer]
        u_out = units[layer + 1]
        if layer > 0:
            a_in -= cap * u_in
            # Deltas of the layer below, with this layer's weights before their update.
            gemm(NO_TRANS, TRANS, m, u_in, u_out, 1.0, _addr(deltas, d_next), u_out,
                 _addr(params, coff[layer]), u_out, 0.0,
                 _addr(deltas, d_cur), u_in, iscr, fscr)
            in_ptr = _addr(acts, a_in)
        else:
            in_ptr = x_ptr
        if accumulate:
            target, t_off, beta = grad, coff[layer], 1.0
        else:
            target, t_off, beta = gbuf, 0, 0.0
        if layer == 0 and sparse:
            if not accumulate:
                for j in range(u_in * u_out):
                    gbuf[j] = zero
            for i in range(m):
                r = rows[r0 + i] if gathered else r0 + i
                for p in range(Xptr[r], Xptr[r + 1]):
                    v = Xdata[p]
                    grow = t_off + Xind[p] * u_out
                    for j in range(u_out):
                        target[grow + j] += v * deltas[d_next + i * u_out + j]
        else:
            gemm(TRANS, NO_TRANS, u_in, u_out, m, 1.0, in_ptr, u_in,
                 _addr(deltas, d_next), u_out, beta,
                 _addr(target, t_off), u_out, iscr, fscr)
        # Bias gradient: column sums of the deltas, row by row (contiguous reads).
        b_off = ioff[layer] if accumulate else u_in * u_out
        bias = target[b_off:b_off + u_out]
        if not accumulate:
            for j in range(u_out):
                bias[j] = zero
        for i in range(m):
            drow = deltas[d_next + i * u_out:d_next + (i + 1) * u_out]
            for j in range(u_out):
                bias[j] += drow[j]
        if not accumulate:
            ssq += _step(params, coff[layer], gbuf, 0, u_in * u_out, alpha, wsum,
                         opt_kind, hyper, s1, s2, lr_t)
            _step(params, ioff[layer], gbuf, u_in * u_out, u_out, 0.0, wsum,
                  opt_kind, hyper, s1, s2, lr_t)
        if layer > 0:
            _derivative(deltas, d_cur, acts, a_in, m, u_in, hidden_act)
            d_next, d_cur = d_cur, d_next
    return loss, wsum, ssq


@_jit
def train_batches(X, Xdata, Xind, Xptr, Y, sw, rows, n_rows, batch_size, b_start, b_stop,
                  params, units, coff, ioff, hidden_act, out_act, loss_kind, alpha,
                  opt_kind, hyper, s1, s2, step, xb, acts, deltas, gbuf, iscr, fscr, loss_sum):
    """Run mini-batches ``b_start`` to ``b_stop`` of an epoch: forward, backward, update.

    Batch b covers positions ``[b * batch_size, min((b + 1) * batch_size, n_rows))``
    of ``rows`` (sample indices in epoch order) or, when ``rows`` is empty, the
    rows of X themselves. Stops early at the first non-finite batch loss.

    ``loss_sum`` is the running sum carried over from the previous call of the
    epoch, so the epoch's loss is summed in batch order however it is chunked.

    Returns
    -------
    loss_sum : float
        ``loss_sum`` plus, over the batches, batch loss times batch length
        (sklearn's ``accumulated_loss``).
    n_done : int
        Number of batches run.
    """
    lr_t = 0.0
    for b in range(b_start, b_stop):
        r0 = b * batch_size
        m = min(batch_size, n_rows - r0)
        if opt_kind == ADAM:
            step[0] += 1
            t = step[0]
            lr_t = hyper[6] * np.sqrt(1.0 - hyper[4] ** t) / (1.0 - hyper[3] ** t)
        loss, wsum, ssq = _forward_backward(
            X, Xdata, Xind, Xptr, Y, sw, rows, r0, m, params, units, coff, ioff,
            hidden_act, out_act, loss_kind, False, alpha, opt_kind, hyper, s1, s2, lr_t,
            gbuf, xb, acts, deltas, gbuf, batch_size, iscr, fscr)
        batch_loss = loss / wsum + 0.5 * alpha * ssq / wsum
        loss_sum += batch_loss * m
        if not np.isfinite(batch_loss):
            return loss_sum, b - b_start + 1
    return loss_sum, b_stop - b_start


@_jit
def loss_and_gradient(X, Xdata, Xind, Xptr, Y, sw, n_rows, block, params, units, coff, ioff,
                      hidden_act, out_act, loss_kind, alpha, grad, xb, acts, deltas, gbuf,
                      iscr, fscr):
    """Loss and gradient over all rows (L-BFGS, gradient checks), ``block`` rows at a time.

    ``grad`` (same layout as ``params``) receives the gradient; returns the loss.
    """
    zero = cast_like(grad, 0.0)
    for j in range(grad.size):
        grad[j] = zero
    no_rows = np.empty(0, dtype=np.int64)
    loss = 0.0
    wsum = 0.0
    for r0 in range(0, n_rows, block):
        m = min(block, n_rows - r0)
        part, w, _ = _forward_backward(
            X, Xdata, Xind, Xptr, Y, sw, no_rows, r0, m, params, units, coff, ioff,
            hidden_act, out_act, loss_kind, True, alpha, 0, np.zeros(7), grad[:0], grad[:0],
            0.0, grad, xb, acts, deltas, gbuf, block, iscr, fscr)
        loss += part
        wsum += w
    alpha_c = cast_like(grad, alpha)
    sw = cast_like(grad, wsum)
    n_coef = coff[coff.size - 1]
    ssq = 0.0
    for j in range(n_coef):
        w = params[j]
        ssq += np.float64(w) * np.float64(w)
        grad[j] = (grad[j] + alpha_c * w) / sw
    for j in range(n_coef, grad.size):
        grad[j] = grad[j] / sw
    return loss / wsum + 0.5 * alpha * ssq / wsum


@_jit
def predict(X, Xdata, Xind, Xptr, n_rows, block, params, units, coff, ioff,
            hidden_act, out_act, acts, out, iscr, fscr):
    """Output-layer activations for all rows, ``block`` rows at a time, into ``out``."""
    n_layers = units.size - 1
    k = units[n_layers]
    out_off = 0
    for layer in range(1, n_layers):
        out_off += block * units[layer]
    no_rows = np.empty(0, dtype=np.int64)
    for r0 in range(0, n_rows, block):
        m = min(block, n_rows - r0)
        _forward(X, Xdata, Xind, Xptr, no_rows, r0, m, params, units, coff, ioff,
                 hidden_act, out_act, acts[:0], acts, block, iscr, fscr)
        for i in range(m):
            for c in range(k):
                out[r0 + i, c] = acts[out_off + i * k + c]
