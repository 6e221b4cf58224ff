"""Element-wise passes: bias and activation, its derivative, output delta and loss,
the optimizer step, and the checks for NaN and inf.

Each is one pass over a block, written so that its loop vectorises: loops
index slices by their own induction variable (with ``x[offset + j]`` Numba
cannot drop its negative-index check and the loop stays scalar), and each
activation or optimizer has a branch-free loop of its own. ``exp`` is
fastmlp.kernels.exp's, which vectorises (float32 values are computed in
float64 and correctly rounded), except in the float32 logistic, which uses
its float32 version (within 2 ulp).
"""

import numpy as np
from numba.extending import register_jitable

from fastmlp.kernels.blas import cast_like
from fastmlp.kernels.codes import (
    BINARY_LOG_LOSS, EXP, HYPER_BETA_1, HYPER_BETA_2, HYPER_EPSILON, HYPER_LEARNING_RATE,
    HYPER_MOMENTUM, HYPER_NESTEROV, LOG_LOSS, LOGISTIC, POISSON, RELU, SGD,
    SIGMOID_SQUARED_ERROR, SOFTMAX, SQUARED_ERROR, TANH)
from fastmlp.kernels.exp import exp, exp_float32
from fastmlp.kernels.jit import jit, jit_fma


@jit_fma
def activate(z, zo, m, u, ld, params, bo, act):
    """Add the bias ``params[bo:bo+u]`` and apply ``act``, in place.

    Works on m rows of u values at ``z[zo:]``, ``ld`` apart.
    """
    one = cast_like(z, 1.0)
    zero = cast_like(z, 0.0)
    b = params[bo:bo + u]
    if act == SOFTMAX:
        _softmax(z, zo, m, u, ld, b)
        return
    if act == LOGISTIC and ld == u:
        # Whole rows, one block: the bias first, then the exponentials in one
        # long loop (the vector loop's set-up is paid once, not per row).
        for i in range(m):
            row = z[zo + i * u:zo + (i + 1) * u]
            for j in range(u):
                row[j] = -(row[j] + b[j])
        _logistic_of_negated(z[zo:zo + m * u])
        return
    for i in range(m):
        row = z[zo + i * ld:zo + i * ld + u]
        # One loop per activation, so each is branch-free.
        if act == LOGISTIC and z.itemsize == 4:
            # float32 steps: twice the values per vector of float64 (within 2 ulp).
            for j in range(u):
                row[j] = one / (one + cast_like(z, exp_float32(-(row[j] + b[j]))))
        elif act == LOGISTIC:
            for j in range(u):
                # exp(-v) overflows to inf for very negative v: exactly 0, never NaN.
                row[j] = one / (one + cast_like(z, exp(-np.float64(row[j] + b[j]))))
        elif act == TANH:
            for j in range(u):
                row[j] = np.tanh(row[j] + b[j])
        elif act == RELU:
            for j in range(u):
                v = row[j] + b[j]
                row[j] = zero if v < zero else v  # NaN stays NaN, as np.maximum
        elif act == EXP:
            for j in range(u):
                row[j] = cast_like(z, exp(np.float64(row[j] + b[j])))
        else:
            for j in range(u):
                row[j] = row[j] + b[j]


@jit_fma
def _logistic_of_negated(v):
    """``v = 1 / (1 + exp(v))``, in place: the logistic of ``-v`` (see :func:`activate`)."""
    one = cast_like(v, 1.0)
    if v.itemsize == 4:
        for j in range(v.size):
            v[j] = one / (one + cast_like(v, exp_float32(v[j])))
    else:
        for j in range(v.size):
            v[j] = one / (one + cast_like(v, exp(np.float64(v[j]))))


@jit_fma
def _softmax(z, zo, m, u, ld, b):
    """Softmax of each of m rows of ``z[zo:] + b`` (u values, ``ld`` apart), in place."""
    zero = cast_like(z, 0.0)
    for i in range(m):
        row = z[zo + i * ld:zo + i * ld + u]
        top = row[0] + b[0]
        for j in range(u):
            v = row[j] + b[j]
            row[j] = v
            if v > top:
                top = v
        for j in range(u):
            row[j] = row[j] - top
    # The exponentials in a loop of their own so they vectorise (a running sum in
    # the same loop kept them scalar), over the whole block when it is one.
    if ld == u:
        block = z[zo:zo + m * u]
        for j in range(m * u):
            block[j] = cast_like(z, exp(np.float64(block[j])))
    else:
        for i in range(m):
            row = z[zo + i * ld:zo + i * ld + u]
            for j in range(u):
                row[j] = cast_like(z, exp(np.float64(row[j])))
    for i in range(m):
        row = z[zo + i * ld:zo + i * ld + u]
        total = zero
        for j in range(u):
            total += row[j]
        for j in range(u):
            row[j] = row[j] / total


@jit
def derivative(d, do, a, ao, m, u, act):
    """Multiply the deltas at ``d[do:]`` by the activation's derivative (from its output)."""
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


@jit
def _clip(x, lo, hi):
    # Comparisons, not min/max, so NaN passes through (as np.clip) and is noticed.
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@jit
def _xlogy(y, x):
    return 0.0 if y == 0 else y * np.log(x)


@jit
def output_delta(a, ao, d, do, m, k, Y, sw, rows, r0, loss_kind):
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


@register_jitable(fastmath={"reassoc"})
def _sum_squares(x, o, n):
    """Sum of squares of ``x[o:o+n]`` in float64 (reassociation lets it vectorise)."""
    total = 0.0
    xs = x[o:o + n]
    for j in range(n):
        v = np.float64(xs[j])
        total += v * v
    return total


@jit
def step(params, po, ldp, g, go, ldg, rows, cols, alpha, wsum, opt_kind, hyper, s1, s2, lr_t):
    """Gradient ``(G + alpha W) / wsum`` and the optimizer update of a block of parameters.

    The block is ``rows`` runs of ``cols`` parameters, ``ldp`` apart in
    ``params`` (and the optimizer state ``s1``, ``s2``), ``ldg`` apart in ``g``.
    Returns the sum of squares of the parameters before the update (the L2
    term; 0 when alpha is 0). Each optimizer has its own branch-free loop so
    it vectorises.
    """
    one = cast_like(params, 1.0)
    alpha_c = cast_like(params, alpha)
    sw = cast_like(params, wsum)
    lr = cast_like(params, hyper[HYPER_LEARNING_RATE])
    mom = cast_like(params, hyper[HYPER_MOMENTUM])
    b1 = cast_like(params, hyper[HYPER_BETA_1])
    b2 = cast_like(params, hyper[HYPER_BETA_2])
    eps = cast_like(params, hyper[HYPER_EPSILON])
    nesterov = hyper[HYPER_NESTEROV] != 0.0
    ssq = 0.0
    for r in range(rows):
        o = po + r * ldp
        if alpha != 0.0:
            ssq += _sum_squares(params, o, cols)
        P = params[o:o + cols]
        G = g[go + r * ldg:go + r * ldg + cols]
        V = s1[o:o + cols]
        if opt_kind == SGD and nesterov:
            for j in range(cols):
                w = P[j]
                grad = (G[j] + alpha_c * w) / sw
                v = mom * V[j] - lr * grad
                V[j] = v
                P[j] = w + (mom * v - lr * grad)
        elif opt_kind == SGD:
            for j in range(cols):
                w = P[j]
                grad = (G[j] + alpha_c * w) / sw
                v = mom * V[j] - lr * grad
                V[j] = v
                P[j] = w + v
        else:
            M2 = s2[o:o + cols]
            for j in range(cols):
                w = P[j]
                grad = (G[j] + alpha_c * w) / sw
                mo = b1 * V[j] + (one - b1) * grad
                ve = b2 * M2[j] + (one - b2) * (grad * grad)
                V[j] = mo
                M2[j] = ve
                # sklearn's step size is a float64 scalar, so the update is float64.
                P[j] = w + (-lr_t * np.float64(mo)) / np.float64(np.sqrt(ve) + eps)
    return ssq


@jit
def has_nonfinite(v):
    """Whether the 1-D array ``v`` holds NaN or inf (a compare per value, vectorised)."""
    bad = False
    for j in range(v.size):
        bad |= not (abs(v[j]) < np.inf)
    return bad


@jit
def block_nonfinite(z, zo, m, n, ld):
    """Whether m rows of n values at ``z[zo:]``, ``ld`` apart, hold NaN or inf."""
    if ld == n:
        return has_nonfinite(z[zo:zo + m * n])
    bad = False
    for i in range(m):
        bad |= has_nonfinite(z[zo + i * ld:zo + i * ld + n])
    return bad


