"""Tuning knobs in one place (stumpy style); change them before fitting.

Most are read at every call. Those marked *compile-time* are read by the
compiled kernels when they are compiled and frozen into numba's on-disk
cache: change them before ``fastmlp.kernels`` is imported, with an empty
cache (``NUMBA_CACHE_DIR``), or they have no effect. The measured gains of
the optimisations these knobs steer are in ``docs/design.md``.
"""

#: Target wall time, in seconds, of one compiled training call. Training hands
#: control back to Python this often, so Ctrl-C is honoured and divergence is
#: caught within about this long.
CHUNK_SECONDS = 0.25

#: Rows per compiled call in ``predict``/``predict_proba``: bounds the memory
#: of the activations for large inputs, and is the unit the threads of a
#: prediction share out.
PREDICT_CHUNK_ROWS = 1024

#: Rows per block when the full-batch loss and gradient are computed (L-BFGS):
#: bounds the activation memory to this many rows instead of all of X.
FULL_BATCH_BLOCK_ROWS = 2048

#: BLAS threads of one fit or prediction (see :mod:`fastmlp.engine.threads`). 1: every
#: fit computes with single-threaded BLAS, so results are the same bits however
#: fits are scheduled (one after another, in threads, loky, Dask) and
#: concurrent fits never oversubscribe the cores. None: a fit alone uses BLAS's
#: own limit (all cores) and overlapping fits split it, but layers with more
#: than ~384 inputs then round differently depending on the overlap.
BLAS_THREADS_PER_FIT = 1

#: Parts every mini-batch is split into by the compiled kernels (the first
#: hidden layer's units, then the rows for the rest of the forward and the
#: backward pass, then the parameters for the update), for networks above the
#: thresholds below. A fit that has the cores to itself runs the parts in that
#: many threads; fits running at the same time run them one after another.
#: Results depend on this number, never on how many threads ran the parts.
#: 1 disables the split.
KERNEL_PARTS = 2

#: A fit runs its parts in threads only when its first layer has at least
#: this many inputs and does at least ``MIN_THREADED_FLOPS`` floating-point
#: operations per mini-batch (6 x batch size x inputs x units). Below that,
#: meeting the other thread four times per batch and moving the activations
#: between cores cost more than the split saves; higher thresholds leave
#: the second core idle on networks that would gain from it. The loss and
#: gradient (L-BFGS) and predictions use the inputs threshold only.
MIN_THREADED_INPUTS = 256
MIN_THREADED_FLOPS = 4_000_000

#: Matrix products of the kernels through fastmlp's register tiles (True) or
#: BLAS gemm only (False). None: tiles where the CPU has AVX-512, or AVX2 with
#: FMA, where they beat OpenBLAS on a mini-batch's small products; see
#: :mod:`fastmlp.kernels.tiles`. Either way the results agree to rounding; a given
#: setting gives the same bits on every run.
TILED_PRODUCTS = None

#: With the tiles, the first layer's products skip the columns of X that are
#: zero in every row of a mini-batch (the same bits; raw MNIST: a third of
#: the pixels at batch 128), for networks with at least this many inputs.
#: Below, listing the columns costs more than skipping them saves (digits,
#: 64 inputs). 0 skips for any width.
MIN_ZERO_COLUMN_INPUTS = 256

#: Zero-column skipping pays for its pass over a batch's rows only when at
#: least 1 / ZERO_COLUMN_SHARE of the columns are zero in all of them; after a
#: batch with fewer, the kernel skips the pass for 1, 3, 7, ... batches, at
#: most ``MAX_DENSE_BATCHES``. Lower shares skip more often and pay the pass
#: on denser data; a longer backoff wastes fewer passes on dense data and
#: notices sparse stretches later. Read at each training call.
ZERO_COLUMN_SHARE = 16
MAX_DENSE_BATCHES = 63

#: ``backend='auto'`` (the default) runs a fit or prediction on the ``numpy``
#: backend when NumPy's estimated time for the whole call is below this many
#: seconds, and on the compiled kernels otherwise. The first use of the kernels
#: in a process imports numba and loads their code from its cache, a few
#: tenths of a second, which a call that short never wins back. The bound is
#: kept low because small fits take several times longer on NumPy than on
#: loaded kernels, which grid searches over many such fits pay every time. The
#: choice depends on the shapes and parameters only, so a given fit always
#: runs (and rounds) the same way. 0: always the kernels.
AUTO_NUMPY_SECONDS = 0.02

#: NumPy's cost per mini-batch (Python and small-array overhead) and its
#: floating-point rate in that estimate (small networks: a batch of 32 rows
#: costs 100-200 us); the rate is set low on purpose, so that work dominated
#: by flops goes to the kernels.
NUMPY_SECONDS_PER_BATCH = 200e-6
NUMPY_FLOPS_PER_SECOND = 10e9

#: Spins of a thread waiting at a barrier of the training kernel before it
#: yields its core at each further spin (:mod:`fastmlp.kernels.sync`). More
#: spins answer a partner that arrives soon faster; fewer give the core back
#: sooner to a partner that was descheduled; 0 yields at once.
BARRIER_SPINS = 2000

#: A training call whose threads keep waiting on a partner that is not
#: running (another process holds its core) continues in one thread: once at
#: least ``CONTENDED_LATE_WAITS`` waits outlasted ``BARRIER_SPINS`` and the
#: threads spent at least 1 / ``CONTENDED_LATE_SHARE`` of the call's time in
#: them (:func:`fastmlp.kernels.sync.contended`; x86 only). Lower values fall
#: back sooner, and more often on a quiet machine.
CONTENDED_LATE_WAITS = 8
CONTENDED_LATE_SHARE = 2

#: After a training call fell back to one thread, the calls that start in
#: the next ``CHUNK_SECONDS`` run in one thread; the wait doubles after each
#: further fallback, up to this many seconds, and ends with a call that kept
#: its threads (:class:`fastmlp.engine.threads.Contention`).
CONTENDED_MAX_SERIAL_SECONDS = 2.0

#: The tiles' k range is cut into blocks whose rows of B (one tile's width)
#: fill about this many bytes, so they stay in the L1 cache while all row
#: tiles use them (:mod:`fastmlp.kernels.tiles`). *Compile-time*.
TILE_B_BLOCK_BYTES = 32768

#: k block, in rows, of the tiles' products with a transposed A (the weight
#: gradients: k runs over the batch's rows), with AVX2 and with AVX-512. Each
#: k step reads another row of X (another page for MNIST): short blocks keep
#: a tile's pages within the L1 TLB, long ones re-read C less often.
#: *Compile-time*.
TILE_TRANS_K_BLOCK_AVX2 = 32
TILE_TRANS_K_BLOCK_AVX512 = 128

#: Strips a CPU may prefetch past the end of a strip-major block (a strip: one
#: cache line of each of the block's rows; see ``tiles.product_of_rows``).
#: The tiles step through such a block a strip at a time, and on AMD Zen 3
#: the prefetcher follows that stride up to 7 strips past the last one, taking
#: lines another core is writing. Blocks that threads write at the same time
#: are each followed by this many strips that no thread writes (row-major
#: blocks need no such gap). More strips cost workspace memory only.
PREFETCH_REACH_STRIPS = 8

#: A first call into the kernels still running after this many seconds is compiling them (loading
#: from numba's cache and a first chunk of epochs end well before), and says so once on the
#: ``fastmlp`` logger, with ``COMPILE_NOTICE_ESTIMATE`` as the expected wait.
COMPILE_NOTICE_SECONDS = 2.0
COMPILE_NOTICE_ESTIMATE = "10-30 s"
