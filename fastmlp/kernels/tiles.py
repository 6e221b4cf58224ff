"""Register-tiled matrix products for the kernels, callable from ``@njit`` code.

OpenBLAS's small products fall well short of its large-matrix rate for the
first layer's products of a mini-batch (e.g. 128 x 784 times 784 x 64,
float32): at these sizes its packing of both operands costs as much as the
arithmetic. The operands here need no packing. The gathered batch is
row-major and the weights of a part are one contiguous block, so a block of
6 rows of A times a few vectors of B, its sums held in vector registers
through the k loop, can stream both straight from the cache.

The tile's width follows the CPU's registers: with AVX-512 (32 registers of
64 bytes) 6 rows x 4 vectors, 24 sums; with AVX2 and FMA (16 registers of 32
bytes) 6 rows x 2 vectors, 12 sums (the 6 x 16 float32 shape of OpenBLAS's
own Haswell kernel). Measured, one core, float32, first-layer shapes at batch
32 / 128 / 512 (rows scattered in X, in cache): Intel Xeon (AVX-512) forward
1.3-2x and weight gradient 1.4-1.6x OpenBLAS (145-170 GFLOP/s); AMD EPYC
(Zen 3, AVX2) forward 86-98 against OpenBLAS's 48-85 GFLOP/s, weight gradient
86-94 against 66-76 (OpenBLAS on large products: 96). Either way float64
runs at about half the float32 rate, as in BLAS.

The tile is written in LLVM IR (vector loads, ``llvm.fma`` on whole
vectors, the sums held in registers through the loop): Numba's own loops
over these shapes reach 15-25 GFLOP/s (the sums go through memory). On a
CPU with neither AVX-512 nor AVX2 + FMA, :data:`PREFERRED` is False and the
kernels use BLAS ``gemm`` (:func:`product` with ``tiled=False``).

A tile can also take A's rows where they lie in X, through a list of row
addresses (:func:`product_of_rows`): the training kernel's first layer then
reads a mini-batch's rows straight from X instead of gathering a copy that
the other thread's core has to fetch again. It reads only the columns of
those rows that the kernel listed as not zero throughout the batch (as runs
of columns in the forward product, by index in the weight gradient), the
sums held in registers across the skipped columns: the same bits as
computing them.

Few tile shapes are generated, because every shape is compiled into each
kernel (on AVX-512, all 24 heights x widths cost 3 s more of cold compile
than none, 4 cost 1.4 s): two heights, 6 rows and 1 for leftover rows;
widths of :data:`TILE_VECTORS` vectors, 1 vector for leftover vectors, one
masked vector for the columns past the last whole vector, and for a single
row :data:`ROW_VECTORS` vectors (a lone row of 2 vectors waits on the FMA
latency: 16 rows x 64 x 784 took 31.6 us with it, 23.6 us with 8 vectors).
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fastmlp.kernels.aligned import CACHE_LINE
from fastmlp.kernels.blas import NO_TRANS, TRANS, gemm
from fastmlp.kernels.prefetch import prefetch

_FEATURES = llvm.get_host_cpu_features()
_AVX512 = bool(_FEATURES.get("avx512f", False))

#: Whether this CPU has the vector registers the tiles are sized for: 32
#: 512-bit ones (AVX-512F), or 16 256-bit ones with FMA (AVX2).
PREFERRED = _AVX512 or bool(_FEATURES.get("avx2", False) and _FEATURES.get("fma", False))

#: Rows of A per tile; times TILE_VECTORS vectors of B per row, the sums held in registers.
TILE_ROWS = 6
#: Vectors of B per tile row: 24 sums in AVX-512's 32 registers, 12 in AVX2's 16.
TILE_VECTORS = 4 if _AVX512 else 2
#: Vectors of B in a tile of one row (the rows left over after whole tiles):
#: 8 independent sums keep both FMA units busy despite their 4-cycle latency,
#: where one row of TILE_VECTORS sums ran at a quarter (AVX2) or half speed.
ROW_VECTORS = 8
#: Bytes per vector register.
VECTOR_BYTES = 64 if _AVX512 else 32
#: Bytes per strip of a strip-major matrix (one cache line): :func:`product_of_rows`
#: can take B and C stored as strips of this many bytes of columns, each strip's
#: rows one after another (see there).
STRIP_BYTES = CACHE_LINE
#: The k range is cut into blocks whose B rows (one tile's width) fill about
#: this many bytes, so they stay in the L1 cache while all row tiles use them.
B_BLOCK_BYTES = 32768
#: k block of a product of a transposed A (the weight gradients: k runs over
#: the batch's rows), in rows. Each k step of a tile reads from another row of
#: A, for MNIST another 4 KB page: 32 rows keep a tile's pages within the L1
#: TLB (64 entries). AMD Zen 3, first layer's weight gradient at batch 128 /
#: 512: 75 / 57 GFLOP/s with 512-row blocks, 88 / 88 with 32 (16: 81). The
#: AVX-512 tiles keep the 128 rows they were tuned with on an Intel Xeon.
TRANS_K_BLOCK = 128 if _AVX512 else 32

_I64 = types.int64

#: ``vectors`` code of a tile that computes only the first ``tail`` columns of one vector.
MASKED = 0

# Where a tile finds A's element (r, p), and which rows of B and C it uses:
STRIDED = 0  # at ``a + r * sa_r + p * sa_k`` (elements); B's row p, C's row r
# At ``rows[r] + p`` elements (row r of op(A) is a row of X); B's row p, C's
# row r; p runs over k runs of columns, ``cols[2 j] <= p < cols[2 j + 1]``.
ROW_PER_R = 1
# At ``rows[p] + cols[r]`` elements (column r of op(A) runs along a row of X);
# B's row p, C's row ``cols[r]``.
ROW_PER_P = 2


def _emit_tile(builder, R, V, fty, mode, a, sa_r, sa_k, rows, cols, b, ldb, c, ldc, k,
               accumulate, b_ss, c_ss, tail=None):
    """Emit ``C[:R, :V*lanes] (+)= sum_p A[:R, p] B[p, :V*lanes]`` for p < k.

    A's element (r, p), and the rows of B and C, are found by ``mode``
    (:data:`STRIDED`, :data:`ROW_PER_R`, :data:`ROW_PER_P`), ``rows`` being
    the address of an array of row addresses and ``cols`` that of an int64
    array of column indices; B's rows and C's rows are ``ldb`` and ``ldc``
    elements apart.
    B and C are stored in strips of :data:`STRIP_BYTES` (see
    :func:`product_of_rows`): vector v of a row is ``(v // per_strip) * ss +
    (v % per_strip) * lanes`` elements from its first, with ``b_ss`` and
    ``c_ss`` the strips' distances (a strip's width for row-major storage).
    Pointers are i64. With ``tail`` (an i64 below ``lanes``), only the first
    ``tail`` columns of a single vector (V = 1) are read and written: masked
    loads and stores, which never touch memory past them.
    """
    align = 4 if isinstance(fty, ir.FloatType) else 8  # bytes per element
    lanes = VECTOR_BYTES // align
    vty = ir.VectorType(fty, lanes)
    i64 = ir.IntType(64)
    i32 = ir.IntType(32)
    module = builder.module
    name = f"llvm.fma.v{lanes}f{8 * align}"
    fma = module.globals.get(name) or ir.Function(module, ir.FunctionType(vty, [vty] * 3), name)
    if tail is not None:
        vptr = vty.as_pointer()
        mask_ty = ir.VectorType(ir.IntType(1), lanes)
        suffix = f"v{lanes}f{8 * align}.p0"
        masked_load = (module.globals.get(f"llvm.masked.load.{suffix}") or ir.Function(
            module, ir.FunctionType(vty, [vptr, i32, mask_ty, vty]), f"llvm.masked.load.{suffix}"))
        masked_store = (module.globals.get(f"llvm.masked.store.{suffix}") or ir.Function(
            module, ir.FunctionType(ir.VoidType(), [vty, vptr, i32, mask_ty]),
            f"llvm.masked.store.{suffix}"))
        lane_ty = ir.VectorType(i64, lanes)
        tail_vec = builder.shuffle_vector(
            builder.insert_element(ir.Constant(lane_ty, ir.Undefined), tail, ir.Constant(i32, 0)),
            ir.Constant(lane_ty, ir.Undefined), ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
        mask = builder.icmp_signed("<", ir.Constant(lane_ty, list(range(lanes))), tail_vec)
        align_arg = ir.Constant(i32, align)

    def load_vector(q):
        if tail is None:
            return builder.load(q, align=align)
        return builder.call(masked_load, [q, align_arg, mask, zero])

    def store_vector(value, q):
        if tail is None:
            builder.store(value, q, align=align)
        else:
            builder.call(masked_store, [value, q, align_arg, mask])
    ap = builder.inttoptr(a, fty.as_pointer())
    row_addr = builder.inttoptr(rows, i64.as_pointer())
    col_index = builder.inttoptr(cols, i64.as_pointer())
    if mode == ROW_PER_R:
        # The R rows of op(A), each from its own row of X.
        a_rows = [builder.inttoptr(builder.load(builder.gep(row_addr, [ir.Constant(i64, r)])),
                                   fty.as_pointer())
                  for r in range(R)]
    elif mode == ROW_PER_P:
        # The R columns of X (rows of op(A), and of C) this tile computes.
        r_cols = [builder.load(builder.gep(col_index, [ir.Constant(i64, r)])) for r in range(R)]
    bp = builder.inttoptr(b, fty.as_pointer())
    cp = builder.inttoptr(c, fty.as_pointer())
    zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * lanes)
    undef = ir.Constant(vty, ir.Undefined)
    per_strip = STRIP_BYTES // VECTOR_BYTES

    def vector_offset(v, ss):
        """Elements from a row's first vector to its vector v (see above)."""
        within = ir.Constant(i64, (v % per_strip) * lanes)
        if v < per_strip:
            return within
        return builder.add(builder.mul(ir.Constant(i64, v // per_strip), ss), within)
    splat_mask = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

    b_offsets = [vector_offset(v, b_ss) for v in range(V)]

    def step(p, sums):
        """Emit one k step: ``sums[r][v] + A[r, p] * B[p, v]``; return the new sums."""
        b_row = builder.gep(bp, [builder.mul(p, ldb)])
        b_vecs = [load_vector(builder.bitcast(builder.gep(b_row, [b_offsets[v]]),
                                              vty.as_pointer()))
                  for v in range(V)]
        if mode == STRIDED:
            a_col = builder.gep(ap, [builder.mul(p, sa_k)])
        elif mode == ROW_PER_P:
            a_col = builder.inttoptr(builder.load(builder.gep(row_addr, [p])), fty.as_pointer())
        new_sums = []
        for r in range(R):
            if mode == STRIDED:
                x_addr = builder.gep(a_col, [builder.mul(ir.Constant(i64, r), sa_r)])
            elif mode == ROW_PER_R:
                x_addr = builder.gep(a_rows[r], [p])
            else:
                x_addr = builder.gep(a_col, [r_cols[r]])
            x = builder.load(x_addr, align=align)
            x_vec = builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)),
                                           undef, splat_mask)
            new_sums.append([builder.call(fma, [x_vec, b_vecs[v], sums[r][v]])
                             for v in range(V)])
        return new_sums

    def phis(incoming, block):
        """Phi nodes for the sums, with ``incoming`` arriving from ``block``."""
        nodes = [[builder.phi(vty) for _ in range(V)] for _ in range(R)]
        for row, in_row in zip(nodes, incoming):
            for node, value in zip(row, in_row):
                node.add_incoming(value, block)
        return nodes

    def add_incoming(nodes, values, block):
        for row, in_row in zip(nodes, values):
            for node, value in zip(row, in_row):
                node.add_incoming(value, block)

    shape = f"tile{R}x{V}{'' if tail is None else 'm'}"
    zeros = [[zero] * V for _ in range(R)]
    done = builder.append_basic_block(f"{shape}.done")
    def loop(first, stop, sums, name):
        """Emit the k steps ``first <= p < stop``; return the sums after them."""
        entry = builder.block
        head = builder.append_basic_block(f"{shape}.{name}head")
        body = builder.append_basic_block(f"{shape}.{name}body")
        after = builder.append_basic_block(f"{shape}.{name}after")
        builder.branch(head)
        builder.position_at_end(head)
        p = builder.phi(i64)
        p.add_incoming(first, entry)
        loop_sums = phis(sums, entry)
        builder.cbranch(builder.icmp_signed("<", p, stop), body, after)
        builder.position_at_end(body)
        add_incoming(loop_sums, step(p, loop_sums), body)
        p.add_incoming(builder.add(p, ir.Constant(i64, 1)), body)
        builder.branch(head)
        builder.position_at_end(after)
        return loop_sums

    if mode == ROW_PER_R:
        # k counts runs of columns [start, stop) (pairs in ``cols``); the
        # sums stay in registers across the runs, so skipping columns changes
        # no rounding. (Each k step through a column index instead cost 25 %.)
        # One run, the only one without skipping, takes a loop of its own:
        # each run costs ~40 cycles per tile to set up (digits: 0.7 us per batch).
        entry = builder.block
        single = builder.append_basic_block(f"{shape}.single")
        several = builder.append_basic_block(f"{shape}.several")
        builder.cbranch(builder.icmp_signed("==", k, ir.Constant(i64, 1)), single, several)
        builder.position_at_end(single)
        single_sums = loop(builder.load(col_index), builder.load(builder.gep(
            col_index, [ir.Constant(i64, 1)])), zeros, "single.")
        single_end = builder.block
        builder.branch(done)
        builder.position_at_end(several)
        outer = builder.append_basic_block(f"{shape}.runs")
        run = builder.append_basic_block(f"{shape}.run")
        builder.branch(outer)
        builder.position_at_end(outer)
        j = builder.phi(i64)
        j.add_incoming(ir.Constant(i64, 0), several)
        sums = phis(zeros, several)
        builder.cbranch(builder.icmp_signed("<", j, k), run, done)
        outer_exit = outer
        builder.position_at_end(run)
        first = builder.load(builder.gep(col_index, [builder.shl(j, ir.Constant(i64, 1))]))
        stop = builder.load(builder.gep(col_index, [builder.add(builder.shl(
            j, ir.Constant(i64, 1)), ir.Constant(i64, 1))]))
        run_sums = loop(first, stop, sums, "")
        j.add_incoming(builder.add(j, ir.Constant(i64, 1)), builder.block)
        add_incoming(sums, run_sums, builder.block)
        builder.branch(outer)
        builder.position_at_end(done)
        merged = [[builder.phi(vty) for _ in range(V)] for _ in range(R)]
        add_incoming(merged, single_sums, single_end)
        add_incoming(merged, sums, outer_exit)
        sums = merged
    else:
        sums = loop(ir.Constant(i64, 0), k, zeros, "")
        builder.branch(done)
    builder.position_at_end(done)
    add_old = builder.icmp_signed("!=", accumulate, ir.Constant(i64, 0))
    for r in range(R):
        c_row = builder.gep(cp, [builder.mul(r_cols[r] if mode == ROW_PER_P
                                             else ir.Constant(i64, r), ldc)])
        for v in range(V):
            q = builder.bitcast(builder.gep(c_row, [vector_offset(v, c_ss)]),
                                vty.as_pointer())
            old = load_vector(q)
            new = builder.select(add_old, builder.fadd(sums[r][v], old), sums[r][v])
            store_vector(new, q)


@intrinsic
def _tile(typingctx, like, mode, rows, vectors, a, sa_r, sa_k, a_rows, cols, b, ldb, c, ldc,
          k, accumulate, tail, b_ss, c_ss):
    """One tile of ``rows`` (1 or 6) rows and ``vectors`` vectors; dtype of ``like``.

    ``vectors`` is 1 or :data:`TILE_VECTORS` whole vectors (or, for one
    row, :data:`ROW_VECTORS`), or :data:`MASKED`: the first ``tail``
    columns of one vector. ``mode`` (a compile-time
    literal) says where A's elements are, ``b_ss`` and ``c_ss`` where B's
    and C's strips are (see :func:`_emit_tile`).
    """
    if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
        return None
    if not isinstance(mode, types.IntegerLiteral):
        return None
    sig = types.void(like, mode, *([_I64] * 16))
    mode_value = mode.literal_value

    def codegen(context, builder, signature, args):
        fty = ir.FloatType() if signature.args[0].dtype == types.float32 else ir.DoubleType()
        (_, _, rows, vectors, a, sa_r, sa_k, a_rows, cols, b, ldb, c, ldc, k, accumulate, tail,
         b_ss, c_ss) = args
        end = builder.append_basic_block("tile.end")
        which = builder.add(builder.mul(rows, ir.Constant(rows.type, 16)), vectors)
        switch = builder.switch(which, end)
        for R, widths in ((1, (MASKED, 1, TILE_VECTORS, ROW_VECTORS)),
                          (TILE_ROWS, (MASKED, 1, TILE_VECTORS))):
            for V in widths:
                case = builder.append_basic_block(f"tile{R}x{V}")
                switch.add_case(ir.Constant(which.type, 16 * R + V), case)
                builder.position_at_end(case)
                _emit_tile(builder, R, max(V, 1), fty, mode_value, a, sa_r, sa_k, a_rows, cols,
                           b, ldb, c, ldc, k, accumulate, b_ss, c_ss,
                           tail if V == MASKED else None)
                builder.branch(end)
        builder.position_at_end(end)
        return context.get_dummy_value()

    return sig, codegen


# Called, not inline="always" (Numba would type a copy per call site; LLVM inlines it).
@njit(cache=True, nogil=True)
def _next_tile(rows, left, tail, lanes):
    """``(vectors, columns)`` of the next tile of ``rows`` rows, or ``(-1, 0)`` when done.

    ``left`` whole vectors are still to do, then ``tail`` columns: the widest
    whole-vector tile that fits (leftover vectors one at a time: half the
    tile shapes to compile), then the tail as one :data:`MASKED` vector
    (which the caller counts as one vector, so ``left`` is then -1: done).
    """
    if left > 0:
        if rows == 1 and left >= ROW_VECTORS:
            return ROW_VECTORS, ROW_VECTORS * lanes
        vectors = TILE_VECTORS if left >= TILE_VECTORS else 1
        return vectors, vectors * lanes
    if left == 0 and tail > 0:
        return MASKED, tail
    return -1, 0


@njit(cache=True, nogil=True)
def _strip_offset(v, lanes, ss):
    """Elements from a row's first column to its vector v, strips ``ss`` elements apart."""
    per_strip = STRIP_BYTES // VECTOR_BYTES
    return v // per_strip * ss + v % per_strip * lanes


@njit(cache=True, nogil=True)
def product(trans_a, m, n, k, a_ptr, lda, b_ptr, ldb, c_ptr, ldc, accumulate, tiled,
            scratch, fscratch):
    """Row-major ``C = op(A) @ B``, or ``C += op(A) @ B`` when ``accumulate``.

    Parameters
    ----------
    trans_a : int
        ``NO_TRANS`` (A stored m x k) or ``TRANS`` (A stored k x m).
    m, n, k : int
        ``op(A)`` is m x k, B is k x n, C is m x n.
    a_ptr, b_ptr, c_ptr : int
        Addresses of the first elements.
    lda, ldb, ldc : int
        Row strides, in elements, of A, B and C as stored.
    accumulate : bool
        Add to C instead of overwriting it.
    tiled : bool
        Use the register tiles (columns past the last whole vector in a
        masked one); False: BLAS gemm.
    scratch, fscratch : ndarray
        Scratch for :func:`fastmlp.kernels.blas.gemm`; ``fscratch``'s dtype is the
        compute dtype.
    """
    if not tiled:
        gemm(trans_a, NO_TRANS, m, n, k, 1.0, a_ptr, lda, b_ptr, ldb,
             1.0 if accumulate else 0.0, c_ptr, ldc, scratch, fscratch)
        return
    size = fscratch.itemsize
    lanes = VECTOR_BYTES // size
    n_vectors = n // lanes
    tail = n - n_vectors * lanes
    sa_r, sa_k = (1, lda) if trans_a == TRANS else (lda, 1)
    k_block = TRANS_K_BLOCK if trans_a == TRANS else B_BLOCK_BYTES // (TILE_VECTORS * VECTOR_BYTES)
    for k0 in range(0, max(k, 1), k_block):
        kk = min(k_block, k - k0)
        add = 1 if accumulate or k0 > 0 else 0
        i0 = 0
        while i0 < m:
            rows = TILE_ROWS if m - i0 >= TILE_ROWS else 1
            # All of a row tile's vectors in turn, while its rows of A are in L1.
            v0 = 0
            vectors, width = _next_tile(rows, n_vectors, tail, lanes)
            while vectors >= 0:
                # One call site: each expands to every tile shape.
                _tile(fscratch, STRIDED, rows, vectors, a_ptr + (i0 * sa_r + k0 * sa_k) * size,
                      sa_r, sa_k, 0, 0, b_ptr + (k0 * ldb + v0 * lanes) * size, ldb,
                      c_ptr + (i0 * ldc + v0 * lanes) * size, ldc, kk, add, width,
                      STRIP_BYTES // size, STRIP_BYTES // size)
                v0 += max(vectors, 1)
                vectors, width = _next_tile(rows, n_vectors - v0, tail, lanes)
            i0 += rows


@njit(cache=True, nogil=True)
def product_of_rows(trans_a, m, n, k, row_addrs, cols, runs, ahead, ahead_bytes, b_ptr, ldb,
                    b_ss, c_ptr, ldc, c_ss, accumulate, fscratch):
    """``C (+)= op(A) @ B`` where A's rows are scattered rows of a matrix (no gathered copy).

    A's stored row i starts at address ``row_addrs[i]``. Only its columns
    listed in ``cols`` (or, without ``TRANS``, in ``runs``) are read; the
    others must be zero in every row (such as pixels no image of the batch
    uses): their terms, exact zeros, are skipped. Tiles only, columns past
    the last whole vector in a masked one. Without ``TRANS`` each tile runs
    over all of k at once, so its 6 rows stream from memory in one pass (k
    blocks, as :func:`product` uses on cached rows, made MNIST epochs
    10-20 % slower here), summing in the same order as over all of k; with
    ``TRANS`` the k blocks are :data:`TRANS_K_BLOCK` rows, as
    :func:`product`'s.

    B and C may each be stored *strip-major*: their columns cut into strips
    of :data:`STRIP_BYTES` (the last one padded), each strip a block of all
    the rows, ``ss`` elements after the previous one. A tile then reads B's
    rows one cache line after another, which the prefetchers follow across
    skipped columns; row-major B rows (MNIST: 64 weights, 4 strips) are
    4 lines apart and the runs of columns kept breaking the prefetchers'
    stride (the forward product at batch 128: 10-20 % slower).

    Parameters
    ----------
    trans_a : int
        ``NO_TRANS``: op(A) = A, m x k, one row address per row of op(A).
        ``TRANS``: op(A) = A^T, A is k x m, one row address per row of A.
    m, n, k : int
        ``op(A)`` is m x k, B is k x n, C is m x n.
    row_addrs : ndarray of int64
        Addresses of A's stored rows.
    cols : ndarray of int64
        With ``TRANS``: the columns of A's stored rows that may hold
        non-zeros (all of them: ``arange(m)``). Only those rows of C are
        computed; the others, zero rows of op(A) times B, are left as they
        are (the caller zeroes them if need be).
    runs : ndarray of int64
        Without ``TRANS``: the same columns as runs, ``runs[2 j] <= p <
        runs[2 j + 1]`` (all of them: ``[0, k]``).
    ahead, ahead_bytes : ndarray of int64, int
        Addresses of rows of ``ahead_bytes`` bytes to prefetch, a few cache
        lines after each row tile (the training kernel's next batch).
    b_ptr, c_ptr : int
        Addresses of B's and C's first elements.
    ldb, ldc : int
        Row strides, in elements, of B and C (of a strip, when strip-major).
    b_ss, c_ss : int
        Elements from one strip of B (C) to the next: ``ldb * rows`` when
        strip-major, the strip's width (``STRIP_BYTES`` // itemsize) when
        row-major.
    accumulate : bool
        Add to C instead of overwriting it.
    fscratch : ndarray
        Its dtype is the compute dtype.
    """
    size = fscratch.itemsize
    lanes = VECTOR_BYTES // size
    n_vectors = n // lanes
    tail = n - n_vectors * lanes
    rows_ptr = row_addrs.ctypes.data
    if trans_a == TRANS:
        m = cols.size
        k_block = TRANS_K_BLOCK
        index_ptr = cols.ctypes.data
    else:
        k = runs.size // 2  # a tile's k steps: the runs
        k_block = max(k, 1)  # see above
        index_ptr = runs.ctypes.data
    lines = (ahead_bytes + 63) // 64
    n_tiles = -(-k // k_block) * (m // TILE_ROWS + m % TILE_ROWS)
    per_tile = -(-ahead.size * lines // max(n_tiles, 1))
    line = 0
    row = 0
    # The loops below mirror product's (the widths come from the same
    # _next_tile); the loops themselves in one helper, inlined so that the
    # tile mode stays a constant, measured +1.9 s of cold compile.
    for k0 in range(0, max(k, 1), k_block):
        kk = min(k_block, k - k0)
        add = 1 if accumulate or k0 > 0 else 0
        i0 = 0
        while i0 < m:
            rows = TILE_ROWS if m - i0 >= TILE_ROWS else 1
            v0 = 0
            vectors, width = _next_tile(rows, n_vectors, tail, lanes)
            while vectors >= 0:
                b_v0 = b_ptr + _strip_offset(v0, lanes, b_ss) * size
                c_v0 = c_ptr + _strip_offset(v0, lanes, c_ss) * size
                if trans_a == TRANS:
                    _tile(fscratch, ROW_PER_P, rows, vectors, 0, 0, 0, rows_ptr + k0 * 8,
                          index_ptr + i0 * 8, b_v0 + k0 * ldb * size, ldb, c_v0, ldc, kk, add,
                          width, b_ss, c_ss)
                else:
                    _tile(fscratch, ROW_PER_R, rows, vectors, 0, 0, 0, rows_ptr + i0 * 8,
                          index_ptr, b_v0, ldb, c_v0 + i0 * ldc * size, ldc, kk, add, width,
                          b_ss, c_ss)
                v0 += max(vectors, 1)
                vectors, width = _next_tile(rows, n_vectors - v0, tail, lanes)
            i0 += rows
            for _ in range(per_tile):
                if row == ahead.size:
                    break
                prefetch(ahead[row] + 64 * line)
                line += 1
                if line == lines:
                    line = 0
                    row += 1
