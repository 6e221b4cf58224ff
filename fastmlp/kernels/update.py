"""Gradient and optimizer step of the parameters one part of a batch owns.

Of the first layer, part p owns its share of the units (columns of the
weights, entries of the bias): the same block whose forward pass it
computes, kept contiguous in ``first`` (see :func:`first_layer_blocks`) so
it never leaves the core that runs the part. Of every later layer it owns
its share of the input units (rows of the weights, one contiguous stretch)
and of the bias.
"""

import numpy as np

from fastmlp.kernels.blas import TRANS, cast_like
from fastmlp.kernels.elementwise import step
from fastmlp.kernels.jit import addr, cut, inline, jit, output_offset_of
from fastmlp.kernels.layers import bias_gradient, weight_gradient
from fastmlp.kernels.tiles import product_of_rows


@jit
def first_layer_blocks(params, s1, s2, first, u0, u1, lo, hi, strip, into_blocks):
    """Copy units ``lo`` to ``hi`` of the first layer between sklearn's layout and a block.

    ``params``, ``s1`` and ``s2`` hold the first layer's weights as a u0 x u1
    row-major matrix from offset 0; in ``first[0]``, ``first[1]`` and
    ``first[2]`` the columns ``lo`` to ``hi`` form one contiguous block from
    offset ``u0 * lo``: a u0 x (hi - lo) matrix, row-major when ``strip`` is
    0, else strip-major in strips of ``strip`` columns (``lo`` a multiple of
    it; see :func:`fastmlp.kernels.tiles.product_of_rows`), the last one padded.
    A block per part, not interleaved columns: cache lines updated by two
    cores would ping-pong between them.
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


@jit
def _zero_unlisted_rows(g, n, m, cols):
    """Zero the rows of the m x n matrix ``g`` that ``cols`` (ascending) does not list."""
    zero = cast_like(g, 0.0)
    start = 0
    for i in range(cols.size + 1):
        stop = cols[i] if i < cols.size else m
        for j in range(start * n, stop * n):
            g[j] = zero
        start = stop + 1


@inline
def _update_first_layer(lo, hi, align, batch, data, units, opt, wsum, lr_t, gbuf, first, scr):
    """Weight gradient and step of the first layer's units ``lo`` to ``hi``; returns the L2 sum.

    With ``batch.x_rows`` (the addresses of the batch's rows of X) the
    gradient reads X directly, in the blocks' strip-major layout, for the
    columns listed in ``batch.cols`` (the others are zero in every row of the
    batch); otherwise it reads the gathered batch (or CSR X).
    """
    u0 = units[0]
    u1 = units[1]
    w = hi - lo
    x_rows = batch.x_rows
    cols = batch.cols
    if x_rows.size == 0:
        weight_gradient(gbuf, 0, w, 0.0, 0, 0, u0, lo, hi, batch.x_ptr, data, batch.r0,
                        batch.m, units, scr)
        return step(first[0], u0 * lo, 0, gbuf, 0, 0, 1, u0 * w, opt.alpha, wsum, opt.kind,
                    opt.hyper, first[1], first[2], lr_t)
    if cols.size < u0:
        for j0 in range(0, w, align):
            _zero_unlisted_rows(gbuf[u0 * j0:u0 * (j0 + align)], align, u0, cols)
    # Non-literal flags, as in the forward pass: product_of_rows compiles once
    # for both directions.
    product_of_rows(np.int64(TRANS), u0, w, batch.m, x_rows, cols, cols[:0], cols[:0],
                    np.int64(0), (addr(scr.deltas, output_offset_of(units, 0, scr.cap) + lo), u1,
                                  align), (addr(gbuf, 0), align, u0 * align), False, scr.fscr)
    full = w - w % align
    ssq = step(first[0], u0 * lo, 0, gbuf, 0, 0, 1, u0 * full, opt.alpha, wsum, opt.kind,
               opt.hyper, first[1], first[2], lr_t)
    if full < w:
        # The last strip's padding is left alone (nothing reads it).
        ssq += step(first[0], u0 * (lo + full), align, gbuf, u0 * full, align, u0, w - full,
                    opt.alpha, wsum, opt.kind, opt.hyper, first[1], first[2], lr_t)
    return ssq


@inline
def update_part(part, n_parts, align, batch, data, net, opt, wsum, lr_t, gbuf, first, scr):
    """Gradient and optimizer step of the parameters part ``part`` owns (see the module).

    ``batch`` is the batch's :class:`Batch`. Returns the sum of squares of the
    part's weights before the update (for the L2 term of the loss).
    """
    units = net.units
    u1 = units[1]
    lo = cut(u1, part, n_parts, align)
    hi = cut(u1, part + 1, n_parts, align)
    ssq = _update_first_layer(lo, hi, align, batch, data, units, opt, wsum, lr_t, gbuf, first,
                              scr)
    bias_gradient(gbuf, 0, False, 0, lo, hi, batch.m, units, scr.deltas, scr.cap)
    step(net.params, net.ioff[0] + lo, 0, gbuf, 0, 0, 1, hi - lo, 0.0, wsum, opt.kind, opt.hyper,
         opt.s1, opt.s2, lr_t)
    for layer in range(1, units.size - 1):
        u_in = units[layer]
        u_out = units[layer + 1]
        lo = cut(u_in, part, n_parts, align)
        hi = cut(u_in, part + 1, n_parts, align)
        weight_gradient(gbuf, 0, u_out, 0.0, layer, lo, hi, 0, u_out, batch.x_ptr, data,
                        batch.r0, batch.m, units, scr)
        ssq += step(net.params, net.coff[layer] + lo * u_out, 0, gbuf, 0, 0, 1, (hi - lo) * u_out,
                    opt.alpha, wsum, opt.kind, opt.hyper, opt.s1, opt.s2, lr_t)
        lo = u_out * part // n_parts
        hi = u_out * (part + 1) // n_parts
        bias_gradient(gbuf, 0, False, layer, lo, hi, batch.m, units, scr.deltas, scr.cap)
        step(net.params, net.ioff[layer] + lo, 0, gbuf, 0, 0, 1, hi - lo, 0.0, wsum, opt.kind,
             opt.hyper, opt.s1, opt.s2, lr_t)
    return ssq
