"""Passes over the layers of a block of rows: forward, backward deltas, gradients.

The rows of a batch are positions ``r0`` to ``r0 + m`` of ``data.rows``
(sample indices), or of X itself when ``data.rows`` is empty. Activations
and deltas go to a :class:`~fastmlp.kernels.bundles.Scratch`'s ``acts`` and
``deltas``: one block of ``cap`` rows per layer.
"""

import numpy as np

from fastmlp.kernels.blas import NO_TRANS, TRANS, cast_like, gemm
from fastmlp.kernels.elementwise import activate, block_nonfinite, derivative, has_nonfinite
from fastmlp.kernels.jit import addr, jit, kernel, output_offset_of
from fastmlp.kernels.prefetch import prefetch
from fastmlp.kernels.tiles import product


@jit
def gather(X, rows, r0, m, xb, w0):
    """Copy rows ``rows[r0:r0+m]`` of X into rows ``w0`` to ``w0 + m`` of ``xb``.

    ``xb`` is one shuffled batch, never a copy of X.
    """
    u0 = X.shape[1]
    for i in range(m):
        src = X[rows[r0 + i]]
        dst = xb[(w0 + i) * u0:(w0 + i + 1) * u0]
        for j in range(u0):
            dst[j] = src[j]


@jit
def row_addresses(X, rows, lo, hi, out):
    """Addresses of the rows of X at positions ``lo`` to ``hi`` of ``rows`` (or of X
    when ``rows`` is empty) into ``out``; returns how many."""
    u0 = X.shape[1]
    for i in range(lo, hi):
        out[i - lo] = addr(X, (rows[i] if rows.size > 0 else i) * u0)
    return hi - lo


@jit
def prefetch_rows(Y, sw, rows, start, stop):
    """Prefetch the targets (and sample weights) of batch positions ``start`` to ``stop``."""
    if rows.size == 0:
        return  # rows in order: the hardware prefetcher follows them
    for i in range(start, stop):
        r = rows[i]
        prefetch(addr(Y, r * Y.shape[1]))
        if sw.size > 0:
            prefetch(addr(sw, r))


@kernel
def _rows_nonfinite(X, Xdata, Xptr, rows, r0, m):
    """Whether rows ``r0`` to ``r0 + m`` of the batch (``rows`` order, or X's) hold NaN or inf.

    The kernels check X as they train instead of scikit-learn's separate pass
    over all of it, and only the rows of a batch whose first-layer products
    are not finite: NaN or inf in a row makes every product of it NaN or inf
    (``x * w`` is for any w, 0 included, and no finite term undoes it), so
    finite products clear the rows at the cost of checking u1 values per row
    instead of u0. Products can also overflow with finite rows: then this
    exact check decides.
    """
    bad = False
    for i in range(m):
        r = rows[r0 + i] if rows.size > 0 else r0 + i
        if Xptr.size > 0:
            bad |= has_nonfinite(Xdata[Xptr[r]:Xptr[r + 1]])
        else:
            bad |= has_nonfinite(X[r])
    return bad


@jit
def rows_nonfinite(data, r0, m):
    """:func:`_rows_nonfinite` of ``data``'s rows."""
    return _rows_nonfinite(data.X, data.Xdata, data.Xptr, data.rows, r0, m)


@jit
def _sparse_first_layer(data, r0, m, z, n, weights, wo, ldw, acts, u_out):
    """The first layer's products of m rows of CSR X (see :func:`layer_forward`)."""
    gathered = data.rows.size > 0
    zero = cast_like(acts, 0.0)
    for i in range(m):
        zrow = acts[z + i * u_out:z + i * u_out + n]
        for j in range(n):
            zrow[j] = zero
        r = data.rows[r0 + i] if gathered else r0 + i
        for p in range(data.Xptr[r], data.Xptr[r + 1]):
            v = data.Xdata[p]
            wrow = wo + data.Xind[p] * ldw
            w = weights[wrow:wrow + n]
            for j in range(n):
                zrow[j] += v * w[j]


@jit
def layer_forward(layer, a_ptr, data, r0, m, w0, c_lo, c_hi, weights, wo, ldw, net, act, scr,
                  check):
    """Units ``c_lo`` to ``c_hi`` of one layer for m rows: product, bias and activation.

    With ``check``, returns whether the products (before bias and activation)
    hold NaN or inf (see :func:`_rows_nonfinite`); else False.

    The input rows start at address ``a_ptr`` (``units[layer]`` values each), or
    are rows ``r0`` to ``r0 + m`` of the CSR matrix for a sparse first layer.
    The weights of those units are at ``weights[wo:]``, rows ``ldw`` apart.
    Results go to rows ``w0`` to ``w0 + m`` of the layer's block in ``scr.acts``.
    """
    units = net.units
    acts = scr.acts
    u_in = units[layer]
    u_out = units[layer + 1]
    z = output_offset_of(units, layer, scr.cap) + w0 * u_out + c_lo
    n = c_hi - c_lo
    if layer == 0 and data.Xptr.size > 0:
        _sparse_first_layer(data, r0, m, z, n, weights, wo, ldw, acts, u_out)
    else:
        # Non-literal flags (np.int64, np.bool_), as weight_gradient's: product
        # compiles once for both calls.
        product(np.int64(NO_TRANS), m, n, u_in, a_ptr, u_in, addr(weights, wo), ldw,
                addr(acts, z), u_out, np.bool_(False), scr.tiled, scr.iscr, scr.fscr)
    bad = check and block_nonfinite(acts, z, m, n, u_out)
    activate(acts, z, m, n, u_out, net.params, net.ioff[layer] + c_lo, act)
    return bad


@jit
def forward(data, r0, m, net, xb, scr):
    """Forward pass of m rows into the first m rows of each layer's block in ``scr.acts``.

    Rows given by ``data.rows`` are gathered into ``xb`` first. Returns the
    address of the first layer's input rows.
    """
    units = net.units
    n_layers = units.size - 1
    if data.rows.size > 0 and data.Xptr.size == 0:
        gather(data.X, data.rows, r0, m, xb, 0)
        a_ptr = addr(xb, 0)
    else:
        a_ptr = addr(data.X, r0 * units[0])
    x_ptr = a_ptr
    for layer in range(n_layers):
        act = net.out_act if layer == n_layers - 1 else net.hidden_act
        layer_forward(layer, a_ptr, data, r0, m, 0, 0, units[layer + 1], net.params,
                      net.coff[layer], units[layer + 1], net, act, scr, False)
        a_ptr = addr(scr.acts, output_offset_of(units, layer, scr.cap))
    return x_ptr


@jit
def backward_deltas(m, w0, net, scr):
    """Deltas of every hidden layer for workspace rows ``w0`` to ``w0 + m``.

    The output layer's deltas must already be in ``scr.deltas``, which has the
    layout of ``scr.acts``. Uses the weights as they are (before any update).
    """
    units = net.units
    deltas = scr.deltas
    for layer in range(units.size - 2, 0, -1):
        u_in = units[layer]
        u_out = units[layer + 1]
        off = output_offset_of(units, layer, scr.cap)
        below = output_offset_of(units, layer - 1, scr.cap)
        gemm(NO_TRANS, TRANS, m, u_in, u_out, 1.0, addr(deltas, off + w0 * u_out), u_out,
             addr(net.params, net.coff[layer]), u_out, 0.0,
             addr(deltas, below + w0 * u_in), u_in, scr.iscr, scr.fscr)
        derivative(deltas, below + w0 * u_in, scr.acts, below + w0 * u_in, m, u_in,
                   net.hidden_act)


@jit
def _sparse_weight_gradient(target, t_off, ldt, beta, r_lo, r_hi, n, d_off, u_out, data, r0, m,
                            deltas):
    """The first layer's weight gradient from CSR X (see :func:`weight_gradient`)."""
    gathered = data.rows.size > 0
    if beta == 0.0:
        zero = cast_like(target, 0.0)
        for f in range(r_hi - r_lo):
            g = target[t_off + f * ldt:t_off + f * ldt + n]
            for j in range(n):
                g[j] = zero
    for i in range(m):
        drow = deltas[d_off + i * u_out:d_off + i * u_out + n]
        r = data.rows[r0 + i] if gathered else r0 + i
        for p in range(data.Xptr[r], data.Xptr[r + 1]):
            f = data.Xind[p]
            if r_lo <= f < r_hi:
                v = data.Xdata[p]
                go = t_off + (f - r_lo) * ldt
                g = target[go:go + n]
                for j in range(n):
                    g[j] += v * drow[j]


@jit
def weight_gradient(target, t_off, ldt, beta, layer, r_lo, r_hi, c_lo, c_hi, x_ptr, data, r0, m,
                    units, scr):
    """Block ``[r_lo:r_hi, c_lo:c_hi]`` of a layer's weight gradient (summed over m batch rows).

    Written to ``target[t_off:]`` with rows ``ldt`` apart, added to ``beta``
    times its contents (beta is 0 or 1). ``x_ptr`` is the address of the
    first layer's input rows (unused for sparse X).
    """
    u_in = units[layer]
    u_out = units[layer + 1]
    n = c_hi - c_lo
    d_off = output_offset_of(units, layer, scr.cap) + c_lo
    if layer == 0 and data.Xptr.size > 0:
        _sparse_weight_gradient(target, t_off, ldt, beta, r_lo, r_hi, n, d_off, u_out, data, r0,
                                m, scr.deltas)
        return
    acts = scr.acts
    in_ptr = x_ptr if layer == 0 else addr(acts, output_offset_of(units, layer - 1, scr.cap))
    product(np.int64(TRANS), r_hi - r_lo, n, m, in_ptr + r_lo * acts.itemsize, u_in,
            addr(scr.deltas, d_off), u_out, addr(target, t_off), ldt, beta != 0.0, scr.tiled,
            scr.iscr, scr.fscr)


@jit
def bias_gradient(target, t_off, add, layer, lo, hi, m, units, deltas, cap):
    """Entries ``lo`` to ``hi`` of a layer's bias gradient: column sums of its deltas.

    Added to ``target[t_off:]`` when ``add``, else written there.
    """
    u_out = units[layer + 1]
    d_off = output_offset_of(units, layer, cap)
    g = target[t_off:t_off + hi - lo]
    if not add:
        zero = cast_like(target, 0.0)
        for j in range(hi - lo):
            g[j] = zero
    for i in range(m):
        drow = deltas[d_off + i * u_out + lo:d_off + i * u_out + hi]
        for j in range(hi - lo):
            g[j] += drow[j]
