"""Compiled kernels: many mini-batches of forward, backward and update per call.

Everything works on flat buffers allocated once per fit (see
:mod:`fastmlp.engine.backends`): parameters, optimizer state, and a workspace for the
gathered batch, activations, deltas and one gradient block. Matrix products go
through fastmlp's register tiles (:mod:`fastmlp.kernels.tiles`) or BLAS gemm;
element-wise work (bias + activation, output delta + loss, activation
derivative, gradient + L2 + optimizer step) is one pass each.
"""

import numpy as np
from numba import njit
from numba.extending import register_jitable

from fastmlp.kernels.blas import NO_TRANS, TRANS, cast_like, gemm
from fastmlp.kernels.exp import exp, exp_float32
from fastmlp.kernels.mt19937 import shuffle
from fastmlp.kernels.prefetch import prefetch
from fastmlp.kernels.sync import barrier
from fastmlp.kernels.tiles import STRIP_BYTES, product, product_of_rows

# Codes; must match the order of fastmlp.engine.network.ACTIVATIONS / LOSSES.
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
LOG_LOSS, BINARY_LOG_LOSS, SQUARED_ERROR, POISSON, SIGMOID_SQUARED_ERROR = 0, 1, 2, 3, 4
SGD, ADAM = 0, 1
# Batches with fewer than 1 / _MIN_ZERO_COLUMNS of the columns zero in all
# their rows do not pay for the pass that finds them; after such a batch the
# kernel skips it for 1, 3, 7, ... batches, at most _MAX_DENSE_BATCHES.
_MIN_ZERO_COLUMNS = 16
_MAX_DENSE_BATCHES = 63

# error_model="numpy": a float division by zero gives inf/NaN (as in NumPy, and
# caught by the divergence check) instead of a per-element check that stops
# loops such as the logistic activation from vectorising (measured 4x slower).
# The entry points are cached dispatchers; the helpers they call are compiled
# into them (register_jitable), typed with their call sites' non-literal
# argument types: as dispatchers, each call passing a constant (layer 0, beta
# 0.0) compiled a version of its own, and a fit's cold compile took 19.5-20.9 s
# instead of 15.8-16.3 s.
_kernel = njit(cache=True, nogil=True, error_model="numpy")
_jit = register_jitable(error_model="numpy")
# The activations may also fuse a * b + c into one FMA (one rounding instead of
# two: results as accurate or more), as fastmlp.kernels.exp's exponentials do: the
# float64 logistic 3.9 -> 2.5 ns and the float32 one 1.13 -> 0.99 ns per value
# on AVX2 (exp stays within 1 ulp; exp_float32 within 0.9).
# They stay dispatchers (no call passes them constants): compiled as overloads,
# LLVM vectorised the float64 exponentials less well (1.8 -> 2.4 ns per value).
_jit_fma = njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


# Small helpers are called, not inline="always": Numba would type a copy of the
# body at each call site (22 here), LLVM inlines the call anyway.
@njit(cache=True, nogil=True)
def _addr(a, offset):
    """Address of ``a.flat[offset]`` as int64 (uintp arithmetic would promote to float64)."""
    return np.int64(a.ctypes.data) + np.int64(offset) * a.itemsize


# Loops below index slices by their own induction variable: with ``x[offset + j]``
# Numba cannot drop its negative-index check, and the loop does not vectorise
# (measured: the optimizer pass ran 7x slower). ``exp`` is fastmlp.kernels.exp's, which
# vectorises (float32 values are computed in float64 and correctly rounded),
# except in the float32 logistic, which uses its float32 version (within 2 ulp).


@_jit_fma
def _activate(z, zo, m, u, ld, params, bo, act):
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
        # long loop (per row of 64 float64 the vector loop's set-up cost 20 %).
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
            # float32 steps: 16 values per vector (2.5x faster; within 2 ulp).
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


@_jit_fma
def _logistic_of_negated(v):
    """``v = 1 / (1 + exp(v))``, in place: the logistic of ``-v`` (see :func:`_activate`)."""
    one = cast_like(v, 1.0)
    if v.itemsize == 4:
        for j in range(v.size):
            v[j] = one / (one + cast_like(v, exp_float32(v[j])))
    else:
        for j in range(v.size):
            v[j] = one / (one + cast_like(v, exp(np.float64(v[j]))))


@_jit_fma
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


@_jit
def _derivative(d, do, a, ao, m, u, act):
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


@register_jitable(fastmath={"reassoc"})
def _sum_squares(x, o, n):
    """Sum of squares of ``x[o:o+n]`` in float64 (reassociation lets it vectorise)."""
    total = 0.0
    xs = x[o:o + n]
    for j in range(n):
        v = np.float64(xs[j])
        total += v * v
    return total


@_jit
def _step(params, po, ldp, g, go, ldg, rows, cols, alpha, wsum, opt_kind, hyper, s1, s2, lr_t):
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
    lr = cast_like(params, hyper[0])
    mom = cast_like(params, hyper[1])
    b1 = cast_like(params, hyper[3])
    b2 = cast_like(params, hyper[4])
    eps = cast_like(params, hyper[5])
    nesterov = hyper[2] != 0.0
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


@_jit
def _cut(n, p, n_parts, align):
    """Start of part p of ``range(n)`` cut into ``n_parts``, rounded up to a multiple of ``align``.

    Rounding keeps the parts' shares of a row in separate cache lines.
    """
    c = (n * p // n_parts + align - 1) // align * align
    return min(n, c)


@_jit
def _gather(X, rows, r0, m, xb, w0):
    """Copy rows ``rows[r0:r0+m]`` of X into rows ``w0`` to ``w0 + m`` of ``xb``.

    ``xb`` is one shuffled batch, never a copy of X.
    """
    u0 = X.shape[1]
    for i in range(m):
        src = X[rows[r0 + i]]
        dst = xb[(w0 + i) * u0:(w0 + i + 1) * u0]
        for j in range(u0):
            dst[j] = src[j]


@_jit
def _mark_nonzero_columns(X, rows, r0, m, seen):
    """Make ``seen[j]`` non-zero for every column j of X non-zero (or NaN) in a row of the batch.

    The rows are positions ``r0`` to ``r0 + m`` of ``rows`` (or of X when
    ``rows`` is empty). ``seen`` holds unsigned integers of X's width: it
    collects the values' bits with the sign shifted out (zero for 0.0 and
    -0.0 only): an OR per value, which vectorises without the comparisons
    and the narrowing to bytes of a boolean mask (MNIST rows, cached or not:
    15-33 % faster).
    """
    u0 = X.shape[1]
    bits = X.view(seen.dtype)
    for i in range(m):
        x = bits[rows[r0 + i] if rows.size > 0 else r0 + i]
        for j in range(u0):
            seen[j] |= x[j] + x[j]


@_jit
def _all_columns(n, cols, runs):
    """List all n columns in ``cols``, as one run in ``runs``; return ``(n, 1)``."""
    for j in range(n):
        cols[j] = j
    runs[0] = 0
    runs[1] = n
    return n, 1


@_jit
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


@_jit
def _share(n_rows, r0, batch_size, p, n_parts):
    """Positions ``[lo, hi)`` of part p's share of the rows of the batch starting at r0."""
    m = min(batch_size, n_rows - r0)
    return r0 + m * p // n_parts, r0 + m * (p + 1) // n_parts


@_jit
def _row_addresses(X, rows, lo, hi, out):
    """Addresses of the rows of X at positions ``lo`` to ``hi`` of ``rows`` (or of X
    when ``rows`` is empty) into ``out``; returns how many."""
    u0 = X.shape[1]
    for i in range(lo, hi):
        out[i - lo] = _addr(X, (rows[i] if rows.size > 0 else i) * u0)
    return hi - lo


@_jit
def _prefetch_rows(Y, sw, rows, start, stop):
    """Prefetch the targets (and sample weights) of batch positions ``start`` to ``stop``."""
    if rows.size == 0:
        return  # rows in order: the hardware prefetcher follows them
    for i in range(start, stop):
        r = rows[i]
        prefetch(_addr(Y, r * Y.shape[1]))
        if sw.size > 0:
            prefetch(_addr(sw, r))


@_jit
def _has_nonfinite(v):
    """Whether the 1-D array ``v`` holds NaN or inf (a compare per value, vectorised)."""
    bad = False
    for j in range(v.size):
        bad |= not (abs(v[j]) < np.inf)
    return bad


@_jit
def _block_nonfinite(z, zo, m, n, ld):
    """Whether m rows of n values at ``z[zo:]``, ``ld`` apart, hold NaN or inf."""
    if ld == n:
        return _has_nonfinite(z[zo:zo + m * n])
    bad = False
    for i in range(m):
        bad |= _has_nonfinite(z[zo + i * ld:zo + i * ld + n])
    return bad


@_kernel
def _rows_nonfinite(X, Xdata, Xptr, rows, r0, m):
    """Whether rows ``r0`` to ``r0 + m`` of the batch (``rows`` order, or X's) hold NaN or inf.

    The kernels check X as they train instead of scikit-learn's separate pass
    over all of it (11 ms per MNIST epoch at memory bandwidth), and only the
    rows of a batch whose first-layer products are not finite: NaN or inf in
    a row makes every product of it NaN or inf (``x * w`` is for any w, 0
    included, and no finite term undoes it), so finite products clear the
    rows at the cost of checking u1 values per row instead of u0 (MNIST: 128
    instead of 784; ~7 us per batch and thread). Products can also overflow
    with finite rows: then this exact check decides.
    """
    bad = False
    for i in range(m):
        r = rows[r0 + i] if rows.size > 0 else r0 + i
        if Xptr.size > 0:
            bad |= _has_nonfinite(Xdata[Xptr[r]:Xptr[r + 1]])
        else:
            bad |= _has_nonfinite(X[r])
    return bad


@_jit
def _layer_forward(layer, a_ptr, Xdata, Xind, Xptr, rows, r0, m, w0, c_lo, c_hi, weights, wo,
                   ldw, params, units, ioff, act, acts, cap, iscr, fscr, tiled, check):
    """Units ``c_lo`` to ``c_hi`` of one layer for m rows: product, bias and activation.

    With ``check``, returns whether the products (before bias and activation)
    hold NaN or inf (see :func:`_rows_nonfinite`); else False.

    The input rows start at address ``a_ptr`` (``units[layer]`` values each), or
    are rows ``r0`` to ``r0 + m`` of the CSR matrix for a sparse first layer.
    The weights of those units are at ``weights[wo:]``, rows ``ldw`` apart.
    Results go to rows ``w0`` to ``w0 + m`` of the layer's block in ``acts``.
    ``tiled``: products through :func:`fastmlp.kernels.tiles.product`'s tiles.
    """
    u_in = units[layer]
    u_out = units[layer + 1]
    z = _output_offset_of(units, layer, cap) + w0 * u_out + c_lo
    n = c_hi - c_lo
    if layer == 0 and Xptr.size > 0:
        gathered = rows.size > 0
        zero = cast_like(acts, 0.0)
        for i in range(m):
            zrow = acts[z + i * u_out:z + i * u_out + n]
            for j in range(n):
                zrow[j] = zero
            r = rows[r0 + i] if gathered else r0 + i
            for p in range(Xptr[r], Xptr[r + 1]):
                v = Xdata[p]
                wrow = wo + Xind[p] * ldw
                w = weights[wrow:wrow + n]
                for j in range(n):
                    zrow[j] += v * w[j]
    else:
        # Non-literal flags (np.int64, np.bool_), as _weight_gradient's: product
        # compiles once for both calls (literal ones compiled it twice).
        product(np.int64(NO_TRANS), m, n, u_in, a_ptr, u_in, _addr(weights, wo), ldw,
                _addr(acts, z), u_out, np.bool_(False), tiled, iscr, fscr)
    bad = check and _block_nonfinite(acts, z, m, n, u_out)
    _activate(acts, z, m, n, u_out, params, ioff[layer] + c_lo, act)
    return bad


@_jit
def _forward(X, Xdata, Xind, Xptr, rows, r0, m, params, units, coff, ioff,
             hidden_act, out_act, xb, acts, cap, iscr, fscr, tiled):
    """Forward pass of m rows into the first m rows of each layer's block in ``acts``.

    The rows are positions ``r0`` to ``r0 + m`` of ``rows`` (sample indices,
    gathered into ``xb``), or of X itself when ``rows`` is empty.
    Returns the address of the first layer's input rows.
    """
    n_layers = units.size - 1
    if rows.size > 0 and Xptr.size == 0:
        _gather(X, rows, r0, m, xb, 0)
        a_ptr = _addr(xb, 0)
    else:
        a_ptr = _addr(X, r0 * units[0])
    x_ptr = a_ptr
    for layer in range(n_layers):
        act = out_act if layer == n_layers - 1 else hidden_act
        _layer_forward(layer, a_ptr, Xdata, Xind, Xptr, rows, r0, m, 0, 0, units[layer + 1],
                       params, coff[layer], units[layer + 1], params, units, ioff, act, acts,
                       cap, iscr, fscr, tiled, False)
        a_ptr = _addr(acts, _output_offset_of(units, layer, cap))
    return x_ptr


@_jit
def _backward_deltas(acts, deltas, m, w0, params, units, coff, hidden_act, cap, iscr, fscr):
    """Deltas of every hidden layer for workspace rows ``w0`` to ``w0 + m``.

    The output layer's deltas must already be in ``deltas``, which has the
    layout of ``acts``. Uses the weights as they are (before any update).
    """
    for layer in range(units.size - 2, 0, -1):
        u_in = units[layer]
        u_out = units[layer + 1]
        off = _output_offset_of(units, layer, cap)
        below = _output_offset_of(units, layer - 1, cap)
        gemm(NO_TRANS, TRANS, m, u_in, u_out, 1.0, _addr(deltas, off + w0 * u_out), u_out,
             _addr(params, coff[layer]), u_out, 0.0,
             _addr(deltas, below + w0 * u_in), u_in, iscr, fscr)
        _derivative(deltas, below + w0 * u_in, acts, below + w0 * u_in, m, u_in, hidden_act)


@_jit
def _weight_gradient(target, t_off, ldt, beta, layer, r_lo, r_hi, c_lo, c_hi, x_ptr, Xdata,
                     Xind, Xptr, rows, r0, m, units, acts, deltas, cap, iscr, fscr, tiled):
    """Block ``[r_lo:r_hi, c_lo:c_hi]`` of a layer's weight gradient (summed over m batch rows).

    Written to ``target[t_off:]`` with rows ``ldt`` apart, added to ``beta``
    times its contents (beta is 0 or 1). ``x_ptr`` is the address of the
    first layer's input rows (unused for sparse X).
    """
    u_in = units[layer]
    u_out = units[layer + 1]
    n = c_hi - c_lo
    d_off = _output_offset_of(units, layer, cap) + c_lo
    if layer == 0 and Xptr.size > 0:
        gathered = rows.size > 0
        if beta == 0.0:
            zero = cast_like(target, 0.0)
            for f in range(r_hi - r_lo):
                g = target[t_off + f * ldt:t_off + f * ldt + n]
                for j in range(n):
                    g[j] = zero
        for i in range(m):
            drow = deltas[d_off + i * u_out:d_off + i * u_out + n]
            r = rows[r0 + i] if gathered else r0 + i
            for p in range(Xptr[r], Xptr[r + 1]):
                f = Xind[p]
                if r_lo <= f < r_hi:
                    v = Xdata[p]
                    go = t_off + (f - r_lo) * ldt
                    g = target[go:go + n]
                    for j in range(n):
                        g[j] += v * drow[j]
        return
    in_ptr = x_ptr if layer == 0 else _addr(acts, _output_offset_of(units, layer - 1, cap))
    product(np.int64(TRANS), r_hi - r_lo, n, m, in_ptr + r_lo * acts.itemsize, u_in,
            _addr(deltas, d_off), u_out, _addr(target, t_off), ldt, beta != 0.0, tiled, iscr,
            fscr)


@_jit
def _bias_gradient(target, t_off, add, layer, lo, hi, m, units, deltas, cap):
    """Entries ``lo`` to ``hi`` of a layer's bias gradient: column sums of its deltas.

    Added to ``target[t_off:]`` when ``add``, else written there.
    """
    u_out = units[layer + 1]
    d_off = _output_offset_of(units, layer, cap)
    g = target[t_off:t_off + hi - lo]
    if not add:
        zero = cast_like(target, 0.0)
        for j in range(hi - lo):
            g[j] = zero
    for i in range(m):
        drow = deltas[d_off + i * u_out + lo:d_off + i * u_out + hi]
        for j in range(hi - lo):
            g[j] += drow[j]


@_jit
def _first_layer_blocks(params, s1, s2, first, u0, u1, lo, hi, strip, into_blocks):
    """Copy units ``lo`` to ``hi`` of the first layer between sklearn's layout and a block.

    ``params``, ``s1`` and ``s2`` hold the first layer's weights as a u0 x u1
    row-major matrix from offset 0; in ``first[0]``, ``first[1]`` and
    ``first[2]`` the columns ``lo`` to ``hi`` form one contiguous block from
    offset ``u0 * lo``: a u0 x (hi - lo) matrix, row-major when ``strip`` is
    0, else strip-major in strips of ``strip`` columns (``lo`` a multiple of
    it; see :func:`fastmlp.kernels.tiles.product_of_rows`), the last one padded.
    Interleaved column blocks updated by two cores were measured 3x slower:
    the cache lines ping-pong between them.
    """
    w = hi - lo
    sw = strip if strip > 0 else w
    copies = 3 if s2.size > 0 else 2
    for c in range(copies):
        src = params if c == 0 else (s1 if c == 1 else s2)
        dst = first[c]
        for j0 in range(0, w, max(sw, 1)):
            n = min(sw, w - j0)
            base = u0 * (lo + j0)
            for r in range(u0):
                a = src[r * u1 + lo + j0:r * u1 + lo + j0 + n]
                b = dst[base + r * sw:base + r * sw + n]
                if into_blocks:
                    for j in range(n):
                        b[j] = a[j]
                else:
                    for j in range(n):
                        a[j] = b[j]


@_jit
def _zero_unlisted_rows(g, n, m, cols):
    """Zero the rows of the m x n matrix ``g`` that ``cols`` (ascending) does not list."""
    zero = cast_like(g, 0.0)
    start = 0
    for i in range(cols.size + 1):
        stop = cols[i] if i < cols.size else m
        for j in range(start * n, stop * n):
            g[j] = zero
        start = stop + 1


@_jit
def _update_part(part, n_parts, align, x_ptr, Xdata, Xind, Xptr, rows, r0, m, params, units,
                 coff, ioff, alpha, wsum, opt_kind, hyper, s1, s2, lr_t, acts, deltas, gbuf,
                 first, cap, iscr, fscr, tiled, x_rows, cols):
    """Gradient and optimizer step of the parameters a part owns.

    Of the first layer, part p owns its share of the units (columns of the
    weights, entries of the bias): the same block whose forward pass it
    computes, kept contiguous in ``first`` (see :func:`_first_layer_blocks`)
    so it never leaves the core that runs the part. Of every later layer it
    owns its share of the input units (rows of the weights, one contiguous
    stretch) and of the bias. Returns the sum of squares of its weights
    before the update (for the L2 term of the loss). With ``x_rows`` (the
    addresses of the batch's rows of X) the first layer's gradient reads X
    directly instead of the gathered batch, for its columns listed in
    ``cols`` (the others are zero in every row of the batch).
    """
    u0 = units[0]
    u1 = units[1]
    lo = _cut(u1, part, n_parts, align)
    hi = _cut(u1, part + 1, n_parts, align)
    w = hi - lo
    if x_rows.size > 0:
        # The gradient in the blocks' strip-major layout (strips of align columns).
        if cols.size < u0:
            for j0 in range(0, w, align):
                _zero_unlisted_rows(gbuf[u0 * j0:u0 * (j0 + align)], align, u0, cols)
        # Non-literal flags, as in train_batches: product_of_rows compiles once for
        # both directions (literal ones compiled it twice: ~1 s of cold compile).
        product_of_rows(np.int64(TRANS), u0, w, m, x_rows, cols, cols[:0], cols[:0],
                        np.int64(0), _addr(deltas, _output_offset_of(units, 0, cap) + lo), u1,
                        align, _addr(gbuf, 0), align, u0 * align, False, fscr)
        full = w - w % align
        ssq = _step(first[0], u0 * lo, 0, gbuf, 0, 0, 1, u0 * full, alpha, wsum, opt_kind,
                    hyper, first[1], first[2], lr_t)
        if full < w:
            # The last strip's padding is left alone (nothing reads it).
            ssq += _step(first[0], u0 * (lo + full), align, gbuf, u0 * full, align, u0,
                         w - full, alpha, wsum, opt_kind, hyper, first[1], first[2], lr_t)
    else:
        _weight_gradient(gbuf, 0, w, 0.0, 0, 0, u0, lo, hi, x_ptr, Xdata, Xind, Xptr,
                         rows, r0, m, units, acts, deltas, cap, iscr, fscr, tiled)
        ssq = _step(first[0], u0 * lo, 0, gbuf, 0, 0, 1, u0 * w, alpha, wsum, opt_kind,
                    hyper, first[1], first[2], lr_t)
    _bias_gradient(gbuf, 0, False, 0, lo, hi, m, units, deltas, cap)
    _step(params, ioff[0] + lo, 0, gbuf, 0, 0, 1, hi - lo, 0.0, wsum, opt_kind, hyper, s1, s2,
          lr_t)
    for layer in range(1, units.size - 1):
        u_in = units[layer]
        u_out = units[layer + 1]
        lo = _cut(u_in, part, n_parts, align)
        hi = _cut(u_in, part + 1, n_parts, align)
        _weight_gradient(gbuf, 0, u_out, 0.0, layer, lo, hi, 0, u_out, x_ptr, Xdata, Xind, Xptr,
                         rows, r0, m, units, acts, deltas, cap, iscr, fscr, tiled)
        ssq += _step(params, coff[layer] + lo * u_out, 0, gbuf, 0, 0, 1, (hi - lo) * u_out,
                     alpha, wsum, opt_kind, hyper, s1, s2, lr_t)
        lo = u_out * part // n_parts
        hi = u_out * (part + 1) // n_parts
        _bias_gradient(gbuf, 0, False, layer, lo, hi, m, units, deltas, cap)
        _step(params, ioff[layer] + lo, 0, gbuf, 0, 0, 1, hi - lo, 0.0, wsum, opt_kind, hyper,
              s1, s2, lr_t)
    return ssq


@_jit
def _output_offset_of(units, layer, cap):
    """Offset in ``acts`` (and ``deltas``) of a layer's block of ``cap`` rows."""
    off = 0
    for below in range(1, layer + 1):
        off += cap * units[below]
    return off


@_kernel
def train_batches(X, Xdata, Xind, Xptr, Y, sw, rows, n_rows, batch_size, b_start, b_stop,
                  params, units, coff, ioff, hidden_act, out_act, loss_kind, alpha,
                  opt_kind, hyper, s1, s2, step, xb, acts, deltas, gbufs, first, iscrs, fscrs,
                  tiled, loss_sum, n_epochs, mt_key, mt_pos, stop_rule, epoch_losses,
                  part_lo, part_hi, n_parts, sync, n_threads, partials, col_seen):
    """Mini-batches ``b_start`` to ``b_stop`` of an epoch, or whole epochs: forward to update.

    Batch b covers positions ``[b * batch_size, min((b + 1) * batch_size, n_rows))``
    of ``rows`` (sample indices in epoch order) or, when ``rows`` is empty, the
    rows of X themselves. Stops early at the first non-finite batch loss, and
    at the first batch with NaN or inf in its rows of X (its loss is then NaN).

    Every batch is split into ``n_parts`` parts (1 for a network without a
    hidden layer), in four phases: part p
    (0) gathers its share of the batch rows into ``xb`` (when ``rows`` is
    given; with tiles, the tiles read the rows in X instead and this phase
    only lists their addresses), computes
    (1) its share of the first hidden layer's units for all rows, (2) the
    rest of the forward pass and the whole backward pass for its share of the
    rows, (3) the gradient and update of the parameters it owns (see
    :func:`_update_part`). This call runs parts ``part_lo`` to
    ``part_hi``; ``n_threads`` calls running the other parts at the same time
    meet at a barrier on ``sync`` after each phase. A part's arithmetic does
    not depend on which thread runs it, and the parts' sums are combined in
    part order, so the result is the same bits for any number of threads.

    ``loss_sum`` is the running sum carried over from the previous call of the
    epoch, so the epoch's loss is summed in batch order however it is chunked.

    With ``n_epochs`` > 0 the call instead runs up to ``n_epochs`` whole
    epochs (``b_start`` 0, ``b_stop`` all batches), each from a loss sum of 0,
    writing epoch e's mean loss (sklearn's ``loss_``) to ``epoch_losses[e]``.
    Each epoch starts by shuffling ``rows`` in place with the MT19937 state
    ``mt_key``, ``mt_pos`` (:func:`fastmlp.kernels.mt19937.shuffle`: scikit-learn's
    order) unless ``mt_key`` is empty. After each epoch it applies
    scikit-learn's no-improvement rule (without early stopping) to the state
    ``stop_rule = [best_loss, count, tol, n_iter_no_change]`` (a local copy;
    the caller replays the rule on the returned losses) and returns after the
    epoch where the count exceeds ``n_iter_no_change``.

    ``tiled`` selects fastmlp's register tiles over BLAS for the products of
    the forward pass and the weight gradients (:func:`fastmlp.kernels.tiles.product`).
    With tiles and dense X, the first layer's products skip the columns of X
    that are zero in every row of the batch (exact zeros: the same bits),
    unless ``col_seen`` has fewer columns than X. Part p lists those of its
    share of the next batch's rows in row p of ``col_seen`` (shared by the
    threads) while the rows, prefetched during its first-layer product, are
    in its cache.

    Returns
    -------
    loss_sum : float
        ``loss_sum`` plus, over the batches, batch loss times batch length
        (sklearn's ``accumulated_loss``).
    n_done : int
        Number of batches run (over all epochs); -1 if another thread gave up.
    """
    n_layers = units.size - 1
    k = units[n_layers]
    u0 = units[0]
    u1 = units[1]
    align = STRIP_BYTES // params.itemsize  # a cache line (fastmlp.kernels.aligned.CACHE_LINE)
    out_off = _output_offset_of(units, n_layers - 1, batch_size)
    gathered = rows.size > 0 and Xptr.size == 0
    # Tiles can read the batch's rows where they are in X: no gathered copy, and
    # no rows passed between the threads' cores (MNIST epochs 9-21 % faster, medians).
    direct = tiled and Xptr.size == 0
    # Their first-layer weights are then strip-major (see _first_layer_blocks), in
    # strips of a cache line: align columns, the multiple the parts are cut at.
    strip = align if direct else 0
    x_rows = np.empty(batch_size if direct else 0, dtype=np.int64)
    scan_ahead = False
    skip_zero_columns = direct and col_seen.shape[1] >= u0
    # The columns of X the batch uses, listed by each thread from col_seen,
    # where each part marked those of its share of the rows a batch ahead
    # (``scanned``; the first batch of a call or epoch uses all columns). That
    # pass reads rows prefetched while the first layer computed: at the start
    # of the batch, each thread passing over all rows, it waited on memory
    # (MNIST, batch 128: 50-80 us per batch and thread, against 13 now). Where
    # a batch has too few zero columns to pay for the pass, the next
    # ``dense_left`` batches are not scanned, twice as many each time.
    cols = np.empty(u0 if direct else 0, dtype=np.int64)
    runs = np.empty(u0 + 1 if direct else 0, dtype=np.int64)
    ahead = np.empty(batch_size if direct else 0, dtype=np.int64)
    n_cols = 0
    n_runs = 0
    scanned = False
    dense_left = 0
    backoff = 0
    for p in range(part_lo, part_hi):
        _first_layer_blocks(params, s1, s2, first, u0, u1, _cut(u1, p, n_parts, align),
                            _cut(u1, p + 1, n_parts, align), strip, True)
    lr_t = 0.0
    t0 = step[0]
    n_barriers = np.int64(0)  # not a literal: barrier compiles once
    n_done = 0
    stopped = False
    best_loss = stop_rule[0]
    no_improvement = stop_rule[1]
    for e in range(max(n_epochs, 1)):
        if n_epochs > 0:
            loss_sum = 0.0
            scanned = False
            if mt_key.size > 0:
                if part_lo == 0:
                    shuffle(rows, mt_key, mt_pos)
                if not barrier(sync, n_threads, n_barriers):
                    n_done = -1
                    stopped = True
                    break
                n_barriers += 1
        for b in range(b_start, b_stop):
            r0 = b * batch_size
            m = min(batch_size, n_rows - r0)
            if opt_kind == ADAM:
                t = t0 + n_done + 1
                lr_t = hyper[6] * np.sqrt(1.0 - hyper[4] ** t) / (1.0 - hyper[3] ** t)
            if direct:
                # Each thread takes all the batch's row addresses: nothing to share, no barrier.
                _row_addresses(X, rows, r0, r0 + m, x_rows)
                if scanned:
                    n_cols, n_runs = _list_columns(col_seen, u0, cols, runs)
                    if n_cols > u0 - u0 // _MIN_ZERO_COLUMNS:
                        backoff = min(2 * backoff + 1, _MAX_DENSE_BATCHES)
                        dense_left = backoff
                    else:
                        backoff = 0
                else:
                    dense_left = max(dense_left - 1, 0)
                    if n_runs != 1 or n_cols != u0:
                        n_cols, n_runs = _all_columns(u0, cols, runs)
                scan_ahead = skip_zero_columns and b + 1 < b_stop and dense_left == 0
                x_ptr = _addr(xb, 0)
            elif gathered:
                for p in range(part_lo, part_hi):
                    s_lo, s_hi = _share(n_rows, r0, batch_size, p, n_parts)
                    _gather(X, rows, s_lo, s_hi - s_lo, xb, s_lo - r0)
                x_ptr = _addr(xb, 0)
                if not barrier(sync, n_threads, n_barriers):
                    n_done = -1
                    stopped = True
                    break
                n_barriers += 1
            else:
                x_ptr = _addr(X, r0 * u0)
            # Whether this thread's first-layer products hold NaN or inf (for all m rows).
            nonfinite = False
            for p in range(part_lo, part_hi):
                # Without a hidden layer, n_parts is 1 (the caller's rule): the
                # output activation (softmax) needs whole rows.
                c_lo = _cut(u1, p, n_parts, align)
                c_hi = _cut(u1, p + 1, n_parts, align)
                if direct:
                    # This part's share of the next batch's rows, fetched meanwhile.
                    n_ahead = 0
                    if scan_ahead:
                        a_lo, a_hi = _share(n_rows, r0 + batch_size, batch_size, p, n_parts)
                        n_ahead = _row_addresses(X, rows, a_lo, a_hi, ahead)
                    product_of_rows(np.int64(NO_TRANS), m, c_hi - c_lo, u0, x_rows[:m],
                                    cols[:n_cols], runs[:2 * n_runs], ahead[:n_ahead],
                                    u0 * X.itemsize, _addr(first[0], u0 * c_lo), strip,
                                    u0 * strip, _addr(acts, c_lo), u1, strip, False, fscrs[p])
                    nonfinite |= _block_nonfinite(acts, c_lo, m, c_hi - c_lo, u1)
                    _activate(acts, c_lo, m, c_hi - c_lo, u1, params, ioff[0] + c_lo,
                              hidden_act if n_layers > 1 else out_act)
                else:
                    nonfinite |= _layer_forward(
                        0, x_ptr, Xdata, Xind, Xptr, rows, r0, m, 0, c_lo, c_hi, first[0],
                        u0 * c_lo, c_hi - c_lo, params, units, ioff,
                        hidden_act if n_layers > 1 else out_act, acts, batch_size, iscrs[p],
                        fscrs[p], tiled, True)
            if not barrier(sync, n_threads, n_barriers):
                n_done = -1
                stopped = True
                break
            for p in range(part_lo, part_hi):
                s_lo, s_hi = _share(n_rows, r0, batch_size, p, n_parts)
                lo = s_lo - r0
                mp = s_hi - s_lo
                # The targets of this part's rows, for the output delta after the
                # later layers (fetched earlier, the first layer's stream evicted them).
                _prefetch_rows(Y, sw, rows, r0 + lo, r0 + lo + mp)
                for layer in range(1, n_layers):
                    act = out_act if layer == n_layers - 1 else hidden_act
                    a_ptr = _addr(acts, _output_offset_of(units, layer - 1, batch_size)
                                  + lo * units[layer])
                    _layer_forward(layer, a_ptr, Xdata, Xind, Xptr, rows, r0 + lo, mp, lo, 0,
                                   units[layer + 1], params, coff[layer], units[layer + 1], params,
                                   units, ioff, act, acts, batch_size, iscrs[p], fscrs[p], tiled,
                                   False)
                loss, wsum = _output_delta(acts, out_off + lo * k, deltas, out_off + lo * k, mp, k,
                                           Y, sw, rows, r0 + lo, loss_kind)
                _backward_deltas(acts, deltas, mp, lo, params, units, coff, hidden_act,
                                 batch_size, iscrs[p], fscrs[p])
                # NaN or inf in X ends the call as a non-finite loss would (the
                # estimator then reports the input, not a divergence). Rows are
                # checked only when the products say they may hold some.
                if p == part_lo and nonfinite and _rows_nonfinite(X, Xdata, Xptr, rows, r0, m):
                    loss = np.nan
                partials[p, 0] = loss
                partials[p, 1] = wsum
                if scan_ahead:
                    # Everyone has read col_seen for this batch (before the barrier above).
                    a_lo, a_hi = _share(n_rows, r0 + batch_size, batch_size, p, n_parts)
                    col_seen[p, :] = 0
                    _mark_nonzero_columns(X, rows, a_lo, a_hi - a_lo, col_seen[p])
            scanned = scan_ahead
            if not barrier(sync, n_threads, n_barriers + 1):
                n_done = -1
                stopped = True
                break
            wsum = 0.0
            for p in range(n_parts):
                wsum += partials[p, 1]
            for p in range(part_lo, part_hi):
                partials[p, 2] = _update_part(p, n_parts, align, x_ptr, Xdata, Xind, Xptr, rows, r0,
                                              m, params, units, coff, ioff, alpha, wsum, opt_kind,
                                              hyper, s1, s2, lr_t, acts, deltas, gbufs[p], first,
                                              batch_size, iscrs[p], fscrs[p], tiled, x_rows[:m],
                                              cols[:n_cols])
            if not barrier(sync, n_threads, n_barriers + 2):
                n_done = -1
                stopped = True
                break
            n_barriers += 3
            loss = 0.0
            ssq = 0.0
            for p in range(n_parts):
                loss += partials[p, 0]
                ssq += partials[p, 2]
            batch_loss = loss / wsum + 0.5 * alpha * ssq / wsum
            loss_sum += batch_loss * m
            n_done += 1
            if not np.isfinite(batch_loss):
                stopped = True
                break
        if stopped or n_epochs == 0:
            break
        epoch_loss = loss_sum / n_rows
        epoch_losses[e] = epoch_loss
        # scikit-learn's _update_no_improvement_count (without early stopping).
        if epoch_loss > best_loss - stop_rule[2]:
            no_improvement += 1.0
        else:
            no_improvement = 0.0
        if epoch_loss < best_loss:
            best_loss = epoch_loss
        if no_improvement > stop_rule[3]:
            break
    for p in range(part_lo, part_hi):
        _first_layer_blocks(params, s1, s2, first, u0, u1, _cut(u1, p, n_parts, align),
                            _cut(u1, p + 1, n_parts, align), strip, False)
    if part_lo == 0 and opt_kind == ADAM and n_done > 0:
        step[0] = t0 + n_done
    return loss_sum, n_done


@_kernel
def gradient_part(X, Xdata, Xind, Xptr, Y, sw, n_rows, block, params, units, coff, ioff,
                  hidden_act, out_act, loss_kind, part, n_parts, grad, acts, deltas, iscr, fscr,
                  tiled):
    """Raw loss and gradient sums over blocks ``part``, ``part + n_parts``, ... of the rows.

    The rows go ``block`` at a time; ``grad`` (the layout of ``params``)
    receives the sums of the per-row gradients, without the L2 term and
    unscaled. Parts touch only their own ``grad``, ``acts``, ``deltas`` and
    scratch, so they can run in any threads; :func:`finish_gradient` adds them
    up in part order. Returns (weighted data-loss sum, weight sum).
    """
    zero = cast_like(grad, 0.0)
    for j in range(grad.size):
        grad[j] = zero
    no_rows = np.empty(0, dtype=np.int64)
    n_layers = units.size - 1
    k = units[n_layers]
    out_off = _output_offset_of(units, n_layers - 1, block)
    loss = 0.0
    wsum = 0.0
    for r0 in range(part * block, n_rows, n_parts * block):
        m = min(block, n_rows - r0)
        x_ptr = _forward(X, Xdata, Xind, Xptr, no_rows, r0, m, params, units, coff, ioff,
                         hidden_act, out_act, acts[:0], acts, block, iscr, fscr, tiled)
        part_loss, w = _output_delta(acts, out_off, deltas, out_off, m, k, Y, sw, no_rows, r0,
                                     loss_kind)
        _backward_deltas(acts, deltas, m, 0, params, units, coff, hidden_act, block, iscr, fscr)
        for layer in range(n_layers):
            u_out = units[layer + 1]
            _weight_gradient(grad, coff[layer], u_out, 1.0, layer, 0, units[layer], 0, u_out,
                             x_ptr, Xdata, Xind, Xptr, no_rows, r0, m, units, acts, deltas,
                             block, iscr, fscr, tiled)
            _bias_gradient(grad, ioff[layer], True, layer, 0, u_out, m, units, deltas, block)
        loss += part_loss
        wsum += w
    return loss, wsum


@_kernel
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


@_kernel
def predict(X, Xdata, Xind, Xptr, n_rows, block, params, units, coff, ioff,
            hidden_act, out_act, acts, out, iscr, fscr, tiled):
    """Output-layer activations for all rows, ``block`` rows at a time, into ``out``."""
    k = units[units.size - 1]
    out_off = _output_offset_of(units, units.size - 2, block)
    no_rows = np.empty(0, dtype=np.int64)
    for r0 in range(0, n_rows, block):
        m = min(block, n_rows - r0)
        _forward(X, Xdata, Xind, Xptr, no_rows, r0, m, params, units, coff, ioff,
                 hidden_act, out_act, acts[:0], acts, block, iscr, fscr, tiled)
        for i in range(m):
            for c in range(k):
                out[r0 + i, c] = acts[out_off + i * k + c]
