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
own Haswell kernel). float64 runs at about half the float32 rate, as in
BLAS. The gain over OpenBLAS on these shapes is recorded in the design
document (``docs/design.md``).

The tile is written in LLVM IR (vector loads, ``llvm.fma`` on whole
vectors, the sums held in registers through the loop): Numba's own loops
over these shapes keep the sums in memory. On a
CPU with neither AVX-512 nor AVX2 + FMA, :data:`PREFERRED` is False and the
kernels use BLAS ``gemm`` (:func:`product` with ``tiled=False``).

B and C may each be stored *strip-major* for :func:`product_of_rows`: their
columns cut into strips of :data:`STRIP_BYTES` (the last one padded), each
strip a block of all the rows, ``ss`` elements after the previous one. A
tile then reads B's rows one cache line after another, which the
prefetchers follow across skipped columns (row-major rows lie several lines
apart, and the runs of columns break the prefetchers' stride).

A tile can also take A's rows where they lie in X, through a list of row
addresses (:func:`product_of_rows`): the training kernel's first layer then
reads a mini-batch's rows straight from X instead of gathering a copy that
the other thread's core has to fetch again. It reads only the columns of
those rows that the kernel listed as not zero throughout the batch (as runs
of columns in the forward product, by index in the weight gradient), the
sums held in registers across the skipped columns: the same bits as
computing them.

Few tile shapes are generated, because every shape is compiled into each
kernel and lengthens the cold compile: two heights, 6 rows and 1 for leftover rows;
widths of :data:`TILE_VECTORS` vectors, 1 vector for leftover vectors, one
masked vector for the columns past the last whole vector, and for a single
row :data:`ROW_VECTORS` vectors (a lone row of 2 vectors waits on the FMA
latency).
"""

from collections import namedtuple

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fastmlp import config
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
#: this many bytes (:data:`fastmlp.config.TILE_B_BLOCK_BYTES`).
B_BLOCK_BYTES = config.TILE_B_BLOCK_BYTES
#: k block of a product of a transposed A (the weight gradients), in rows
#: (:data:`fastmlp.config.TILE_TRANS_K_BLOCK_AVX2`).
TRANS_K_BLOCK = config.TILE_TRANS_K_BLOCK_AVX512 if _AVX512 else config.TILE_TRANS_K_BLOCK_AVX2

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


#: The LLVM values a tile reads (all i64): A (``a``, strides ``sa_r``,
#: ``sa_k``, row addresses ``rows``, column indices ``cols``), B (``b``, row
#: stride ``ldb``, strip distance ``b_ss``), C (``c``, ``ldc``, ``c_ss``), the
#: k steps ``k``, ``accumulate`` (non-zero: add to C) and ``tail`` (columns of
#: a masked vector).
_TileArgs = namedtuple("_TileArgs", "a sa_r sa_k rows cols b ldb b_ss c ldc c_ss k accumulate "
                                    "tail")


class _TileEmitter:
    """Emits ``C[:R, :V*lanes] (+)= sum_p A[:R, p] B[p, :V*lanes]`` for p < k.

    A's element (r, p), and the rows of B and C, are found by ``mode``
    (:data:`STRIDED`, :data:`ROW_PER_R`, :data:`ROW_PER_P`), ``args.rows``
    being the address of an array of row addresses and ``args.cols`` that of
    an int64 array of column indices; B's rows and C's rows are ``ldb`` and
    ``ldc`` elements apart.
    B and C are stored in strips of :data:`STRIP_BYTES` (see
    :func:`product_of_rows`): vector v of a row is ``(v // per_strip) * ss +
    (v % per_strip) * lanes`` elements from its first, with ``b_ss`` and
    ``c_ss`` the strips' distances (a strip's width for row-major storage).
    Pointers are i64. With ``masked``, only the first ``args.tail`` columns
    of a single vector (V = 1) are read and written: masked loads and
    stores, which never touch memory past them.
    """

    def __init__(self, builder, R, V, fty, mode, args, masked):
        self.builder = builder
        self.R, self.V, self.fty, self.mode, self.args = R, V, fty, mode, args
        self.masked = masked
        self.align = 4 if isinstance(fty, ir.FloatType) else 8  # bytes per element
        self.lanes = VECTOR_BYTES // self.align
        self.vty = ir.VectorType(fty, self.lanes)
        self.i64 = ir.IntType(64)
        self.i32 = ir.IntType(32)
        self.shape = f"tile{R}x{V}{'m' if masked else ''}"

    def _intrinsic(self, name, fn_type):
        module = self.builder.module
        return module.globals.get(name) or ir.Function(module, fn_type, name)

    def _prepare_mask(self):
        """The masked loads and stores, and the mask of the first ``tail`` lanes."""
        builder, lanes, vty, i32 = self.builder, self.lanes, self.vty, self.i32
        vptr = vty.as_pointer()
        mask_ty = ir.VectorType(ir.IntType(1), lanes)
        suffix = f"v{lanes}f{8 * self.align}.p0"
        self.masked_load = self._intrinsic(f"llvm.masked.load.{suffix}",
                                           ir.FunctionType(vty, [vptr, i32, mask_ty, vty]))
        self.masked_store = self._intrinsic(
            f"llvm.masked.store.{suffix}",
            ir.FunctionType(ir.VoidType(), [vty, vptr, i32, mask_ty]))
        lane_ty = ir.VectorType(self.i64, lanes)
        tail_vec = builder.shuffle_vector(
            builder.insert_element(ir.Constant(lane_ty, ir.Undefined), self.args.tail,
                                   ir.Constant(i32, 0)),
            ir.Constant(lane_ty, ir.Undefined), ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))
        self.mask = builder.icmp_signed("<", ir.Constant(lane_ty, list(range(lanes))), tail_vec)
        self.align_arg = ir.Constant(i32, self.align)

    def _prepare_operands(self):
        """Pointers to A's rows or columns, B and C, and the constants of the loop."""
        builder, args, fty, i64 = self.builder, self.args, self.fty, self.i64
        self.ap = builder.inttoptr(args.a, fty.as_pointer())
        self.row_addr = builder.inttoptr(args.rows, i64.as_pointer())
        self.col_index = builder.inttoptr(args.cols, i64.as_pointer())
        if self.mode == ROW_PER_R:
            # The R rows of op(A), each from its own row of X.
            self.a_rows = [builder.inttoptr(
                builder.load(builder.gep(self.row_addr, [ir.Constant(i64, r)])), fty.as_pointer())
                for r in range(self.R)]
        elif self.mode == ROW_PER_P:
            # The R columns of X (rows of op(A), and of C) this tile computes.
            self.r_cols = [builder.load(builder.gep(self.col_index, [ir.Constant(i64, r)]))
                           for r in range(self.R)]
        self.bp = builder.inttoptr(args.b, fty.as_pointer())
        self.cp = builder.inttoptr(args.c, fty.as_pointer())
        self.zero = ir.Constant(self.vty, [ir.Constant(fty, 0.0)] * self.lanes)
        self.undef = ir.Constant(self.vty, ir.Undefined)
        self.splat_mask = ir.Constant(ir.VectorType(self.i32, self.lanes), [0] * self.lanes)
        self.b_offsets = [self._vector_offset(v, args.b_ss) for v in range(self.V)]

    def _load_vector(self, q):
        if not self.masked:
            return self.builder.load(q, align=self.align)
        return self.builder.call(self.masked_load, [q, self.align_arg, self.mask, self.zero])

    def _store_vector(self, value, q):
        if not self.masked:
            self.builder.store(value, q, align=self.align)
        else:
            self.builder.call(self.masked_store, [value, q, self.align_arg, self.mask])

    def _vector_offset(self, v, ss):
        """Elements from a row's first vector to its vector v (see the class)."""
        per_strip = STRIP_BYTES // VECTOR_BYTES
        within = ir.Constant(self.i64, (v % per_strip) * self.lanes)
        if v < per_strip:
            return within
        return self.builder.add(self.builder.mul(ir.Constant(self.i64, v // per_strip), ss),
                                within)

    def _a_element(self, a_col, r, p):
        """The address of A's element (r, p) (``a_col``: column p's start, where used)."""
        builder = self.builder
        if self.mode == STRIDED:
            return builder.gep(a_col, [builder.mul(ir.Constant(self.i64, r), self.args.sa_r)])
        if self.mode == ROW_PER_R:
            return builder.gep(self.a_rows[r], [p])
        return builder.gep(a_col, [self.r_cols[r]])

    def _step(self, p, sums):
        """Emit one k step: ``sums[r][v] + A[r, p] * B[p, v]``; return the new sums."""
        builder, vty, V = self.builder, self.vty, self.V
        b_row = builder.gep(self.bp, [builder.mul(p, self.args.ldb)])
        b_vecs = [self._load_vector(builder.bitcast(builder.gep(b_row, [self.b_offsets[v]]),
                                                    vty.as_pointer()))
                  for v in range(V)]
        a_col = None
        if self.mode == STRIDED:
            a_col = builder.gep(self.ap, [builder.mul(p, self.args.sa_k)])
        elif self.mode == ROW_PER_P:
            a_col = builder.inttoptr(builder.load(builder.gep(self.row_addr, [p])),
                                     self.fty.as_pointer())
        new_sums = []
        for r in range(self.R):
            x = builder.load(self._a_element(a_col, r, p), align=self.align)
            x_vec = builder.shuffle_vector(
                builder.insert_element(self.undef, x, ir.Constant(self.i32, 0)), self.undef,
                self.splat_mask)
            new_sums.append([builder.call(self.fma, [x_vec, b_vecs[v], sums[r][v]])
                             for v in range(V)])
        return new_sums

    def _phis(self, incoming, block):
        """Phi nodes for the sums, with ``incoming`` arriving from ``block``."""
        nodes = [[self.builder.phi(self.vty) for _ in range(self.V)] for _ in range(self.R)]
        _add_incoming(nodes, incoming, block)
        return nodes

    def _loop(self, first, stop, sums, name):
        """Emit the k steps ``first <= p < stop``; return the sums after them."""
        builder, shape = self.builder, self.shape
        entry = builder.block
        head = builder.append_basic_block(f"{shape}.{name}head")
        body = builder.append_basic_block(f"{shape}.{name}body")
        after = builder.append_basic_block(f"{shape}.{name}after")
        builder.branch(head)
        builder.position_at_end(head)
        p = builder.phi(self.i64)
        p.add_incoming(first, entry)
        loop_sums = self._phis(sums, entry)
        builder.cbranch(builder.icmp_signed("<", p, stop), body, after)
        builder.position_at_end(body)
        _add_incoming(loop_sums, self._step(p, loop_sums), body)
        p.add_incoming(builder.add(p, ir.Constant(self.i64, 1)), body)
        builder.branch(head)
        builder.position_at_end(after)
        return loop_sums

    def _runs(self, zeros, done):
        """The k steps of :data:`ROW_PER_R`: runs of columns, the sums kept across them.

        k counts runs ``[start, stop)`` (pairs in ``cols``); the sums stay in
        registers across the runs, so skipping columns changes no rounding
        (a k step through a column index would cost more). One run, the only
        one without skipping, takes a loop of its own: each run costs some 40
        cycles per tile to set up.
        """
        builder, shape, i64, col_index = self.builder, self.shape, self.i64, self.col_index
        single = builder.append_basic_block(f"{shape}.single")
        several = builder.append_basic_block(f"{shape}.several")
        builder.cbranch(builder.icmp_signed("==", self.args.k, ir.Constant(i64, 1)), single,
                        several)
        builder.position_at_end(single)
        single_sums = self._loop(builder.load(col_index), builder.load(builder.gep(
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
        sums = self._phis(zeros, several)
        builder.cbranch(builder.icmp_signed("<", j, self.args.k), run, done)
        builder.position_at_end(run)
        first = builder.load(builder.gep(col_index, [builder.shl(j, ir.Constant(i64, 1))]))
        stop = builder.load(builder.gep(col_index, [builder.add(builder.shl(
            j, ir.Constant(i64, 1)), ir.Constant(i64, 1))]))
        run_sums = self._loop(first, stop, sums, "")
        j.add_incoming(builder.add(j, ir.Constant(i64, 1)), builder.block)
        _add_incoming(sums, run_sums, builder.block)
        builder.branch(outer)
        builder.position_at_end(done)
        merged = [[builder.phi(self.vty) for _ in range(self.V)] for _ in range(self.R)]
        _add_incoming(merged, single_sums, single_end)
        _add_incoming(merged, sums, outer)
        return merged

    def _store(self, sums):
        """Write the sums to C, added to its contents when ``accumulate``."""
        builder, i64 = self.builder, self.i64
        add_old = builder.icmp_signed("!=", self.args.accumulate, ir.Constant(i64, 0))
        for r in range(self.R):
            c_row = builder.gep(self.cp, [builder.mul(
                self.r_cols[r] if self.mode == ROW_PER_P else ir.Constant(i64, r), self.args.ldc)])
            for v in range(self.V):
                q = builder.bitcast(builder.gep(c_row, [self._vector_offset(v, self.args.c_ss)]),
                                    self.vty.as_pointer())
                old = self._load_vector(q)
                new = builder.select(add_old, builder.fadd(sums[r][v], old), sums[r][v])
                self._store_vector(new, q)

    def emit(self):
        """Emit the tile at the builder's position, which it leaves after the tile."""
        builder = self.builder
        self.fma = self._intrinsic(f"llvm.fma.v{self.lanes}f{8 * self.align}",
                                   ir.FunctionType(self.vty, [self.vty] * 3))
        if self.masked:
            self._prepare_mask()
        self._prepare_operands()
        zeros = [[self.zero] * self.V for _ in range(self.R)]
        done = builder.append_basic_block(f"{self.shape}.done")
        if self.mode == ROW_PER_R:
            sums = self._runs(zeros, done)
        else:
            sums = self._loop(ir.Constant(self.i64, 0), self.args.k, zeros, "")
            builder.branch(done)
        builder.position_at_end(done)
        self._store(sums)


def _add_incoming(nodes, values, block):
    for row, in_row in zip(nodes, values):
        for node, value in zip(row, in_row):
            node.add_incoming(value, block)


def _i64s(context, builder, tuple_type, value):
    """The elements of an LLVM tuple value, each cast to i64."""
    return [context.cast(builder, builder.extract_value(value, i), ty, types.int64)
            for i, ty in enumerate(tuple_type)]


@intrinsic
def _tile(typingctx, like, mode, shape, a, b, c, k, accumulate, tail):
    """One tile of ``shape = (rows, vectors)``: rows 1 or 6; dtype of ``like``.

    ``vectors`` is 1 or :data:`TILE_VECTORS` whole vectors (or, for one
    row, :data:`ROW_VECTORS`), or :data:`MASKED`: the first ``tail``
    columns of one vector. ``mode`` (a compile-time literal) says where A's
    elements are: ``a = (a, sa_r, sa_k, rows, cols)``; ``b = (b, ldb, b_ss)``
    and ``c = (c, ldc, c_ss)`` where B's and C's rows and strips are (see
    :class:`_TileEmitter`). Integer tuples.
    """
    if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
        return None
    if not isinstance(mode, types.IntegerLiteral):
        return None
    lengths = {"shape": (shape, 2), "a": (a, 5), "b": (b, 3), "c": (c, 3)}
    for value, length in lengths.values():
        if not isinstance(value, types.BaseTuple) or len(value) != length:
            return None
    sig = types.void(like, mode, shape, a, b, c, _I64, _I64, _I64)
    mode_value = mode.literal_value

    def codegen(context, builder, signature, args):
        fty = ir.FloatType() if signature.args[0].dtype == types.float32 else ir.DoubleType()
        rows, vectors = _i64s(context, builder, signature.args[2], args[2])
        a_ = _i64s(context, builder, signature.args[3], args[3])
        b_ = _i64s(context, builder, signature.args[4], args[4])
        c_ = _i64s(context, builder, signature.args[5], args[5])
        k_, accumulate_, tail_ = (context.cast(builder, v, t, types.int64)
                                  for v, t in zip(args[6:], signature.args[6:]))
        tile_args = _TileArgs(*a_, *b_, *c_, k_, accumulate_, tail_)
        end = builder.append_basic_block("tile.end")
        which = builder.add(builder.mul(rows, ir.Constant(rows.type, 16)), vectors)
        switch = builder.switch(which, end)
        for R, widths in ((1, (MASKED, 1, TILE_VECTORS, ROW_VECTORS)),
                          (TILE_ROWS, (MASKED, 1, TILE_VECTORS))):
            for V in widths:
                case = builder.append_basic_block(f"tile{R}x{V}")
                switch.add_case(ir.Constant(which.type, 16 * R + V), case)
                builder.position_at_end(case)
                _TileEmitter(builder, R, max(V, 1), fty, mode_value, tile_args,
                             V == MASKED).emit()
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
    strip = STRIP_BYTES // size  # row-major B and C: a strip is a row's run of a cache line
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
                _tile(fscratch, STRIDED, (rows, vectors),
                      (a_ptr + (i0 * sa_r + k0 * sa_k) * size, sa_r, sa_k, 0, 0),
                      (b_ptr + (k0 * ldb + v0 * lanes) * size, ldb, strip),
                      (c_ptr + (i0 * ldc + v0 * lanes) * size, ldc, strip), kk, add, width)
                v0 += max(vectors, 1)
                vectors, width = _next_tile(rows, n_vectors - v0, tail, lanes)
            i0 += rows


@njit(cache=True, nogil=True)
def _prefetch_ahead(ahead, lines, per_tile, row, line):
    """Prefetch the next ``per_tile`` cache lines of the rows at addresses ``ahead``.

    ``row``, ``line`` is where the previous call stopped; returns where this one did.
    """
    for _ in range(per_tile):
        if row == ahead.size:
            break
        prefetch(ahead[row] + 64 * line)
        line += 1
        if line == lines:
            line = 0
            row += 1
    return row, line


@njit(cache=True, nogil=True)
def _rows_steps(trans_a, m, k, cols, runs):
    """``(m, k, k_block, index address)`` of :func:`product_of_rows`'s loops.

    With ``TRANS`` the rows of C are the listed columns and k is cut into
    :data:`TRANS_K_BLOCK` blocks; without, a tile's k steps are the runs, all
    in one block.
    """
    if trans_a == TRANS:
        return cols.size, k, TRANS_K_BLOCK, cols.ctypes.data
    n_runs = runs.size // 2
    return m, n_runs, max(n_runs, 1), runs.ctypes.data


@njit(cache=True, nogil=True)
def product_of_rows(trans_a, m, n, k, row_addrs, cols, runs, ahead, ahead_bytes, b, c,
                    accumulate, fscratch):
    """``C (+)= op(A) @ B`` where A's rows are scattered rows of a matrix (no gathered copy).

    A's stored row i starts at address ``row_addrs[i]``. Only its columns listed in ``cols``
    (or, without ``TRANS``, in ``runs``) are read; the others must be zero in every row (such
    as pixels no image of the batch uses): their terms, exact zeros, are skipped. Tiles only,
    columns past the last whole vector in a masked one. Without ``TRANS`` each tile runs over
    all of k at once, so its 6 rows stream from memory in one pass, summing in the same order
    as over all of k; with ``TRANS`` the k blocks are :data:`TRANS_K_BLOCK` rows, as
    :func:`product`'s. B and C may each be stored strip-major (see the module).

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
        computed; the others are left as they are.
    runs : ndarray of int64
        Without ``TRANS``: the same columns as runs, ``runs[2 j] <= p <
        runs[2 j + 1]`` (all of them: ``[0, k]``).
    ahead, ahead_bytes : ndarray of int64, int
        Addresses of rows of ``ahead_bytes`` bytes to prefetch, a few cache
        lines after each row tile (the training kernel's next batch).
    b, c : tuple of 3 int
        ``(address, ld, ss)`` of B and C: the first element's address, the
        row stride in elements (of a strip, when strip-major), and the
        elements from one strip to the next (``ld * rows`` when strip-major,
        the strip's width ``STRIP_BYTES // itemsize`` when row-major).
    accumulate : bool
        Add to C instead of overwriting it.
    fscratch : ndarray
        Its dtype is the compute dtype.
    """
    b_ptr, ldb, b_ss = b
    c_ptr, ldc, c_ss = c
    size = fscratch.itemsize
    lanes = VECTOR_BYTES // size
    n_vectors = n // lanes
    tail = n - n_vectors * lanes
    rows_ptr = row_addrs.ctypes.data
    m, k, k_block, index_ptr = _rows_steps(trans_a, m, k, cols, runs)
    lines = (ahead_bytes + 63) // 64
    n_tiles = -(-k // k_block) * (m // TILE_ROWS + m % TILE_ROWS)
    per_tile = -(-ahead.size * lines // max(n_tiles, 1))
    line = 0
    row = 0
    # The loops below mirror product's (the widths come from the same
    # _next_tile). They are not shared through a helper: inlined so that the
    # tile mode stays a constant, it lengthens the cold compile.
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
                    _tile(fscratch, ROW_PER_P, (rows, vectors),
                          (0, 0, 0, rows_ptr + k0 * 8, index_ptr + i0 * 8),
                          (b_v0 + k0 * ldb * size, ldb, b_ss), (c_v0, ldc, c_ss), kk, add, width)
                else:
                    _tile(fscratch, ROW_PER_R, (rows, vectors),
                          (0, 0, 0, rows_ptr + i0 * 8, index_ptr), (b_v0, ldb, b_ss),
                          (c_v0 + i0 * ldc * size, ldc, c_ss), kk, add, width)
                v0 += max(vectors, 1)
                vectors, width = _next_tile(rows, n_vectors - v0, tail, lanes)
            i0 += rows
            row, line = _prefetch_ahead(ahead, lines, per_tile, row, line)
