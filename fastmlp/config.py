"""Tuning knobs in one place (stumpy style); change them before fitting."""

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
#: between cores cost more than the split saves. Measured on 2 cores: MNIST
#: 784-32-10 at batch 32 (4.8 MFLOP) runs 1.2x faster in two threads,
#: 784-16-10 (2.4 MFLOP) 1.04x; digits (64 inputs) 0.7-1.15x at any width.
MIN_THREADED_INPUTS = 256
MIN_THREADED_FLOPS = 4_000_000

#: Matrix products of the kernels through fastmlp's register tiles (True) or
#: BLAS gemm only (False). None: tiles where the CPU has AVX-512, or AVX2 with
#: FMA (measured faster than OpenBLAS on the first layer's products of a
#: mini-batch on both: 1.3-2x on an Intel Xeon, 1.1-2x on an AMD EPYC); see
#: :mod:`fastmlp.kernels.tiles`. Either way the results agree to rounding; a given
#: setting gives the same bits on every run.
TILED_PRODUCTS = None

#: With the tiles, the first layer's products skip the columns of X that are
#: zero in every row of a mini-batch (the same bits; MNIST: a third of the
#: pixels at batch 128, epochs 10-15 % faster), for networks with at least
#: this many inputs. Below, listing the columns costs more than skipping
#: them saves: digits (64 inputs) fits 1-1.5 % slower. 0 skips for any width.
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
#: in a process imports numba and loads their code from its cache, ~0.35 s
#: (measured on 2 cores: 0.27 s of a tiny fit), which a call that short never
#: wins back. The bound is kept low because small fits take 5-11x longer on
#: NumPy than on loaded kernels (measured: 53 ms against 4.6 ms, 61 against
#: 12 ms), which grid searches over many such fits pay every time. The
#: choice depends on the shapes and parameters only, so a given fit always
#: runs (and rounds) the same way. 0: always the kernels.
AUTO_NUMPY_SECONDS = 0.02

#: NumPy's cost per mini-batch (Python and small-array overhead) and its
#: floating-point rate in that estimate. Measured with small networks on 2
#: cores: 100-200 us per batch of 32 rows (SGD or Adam, relu or logistic), up
#: to 310 us for 150-row batches; the rate is set low on purpose, so that work
#: dominated by flops goes to the kernels.
NUMPY_SECONDS_PER_BATCH = 200e-6
NUMPY_FLOPS_PER_SECOND = 10e9
