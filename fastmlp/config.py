"""Tuning knobs in one place (stumpy style); change them before fitting."""

#: Target wall time, in seconds, of one compiled training call. Training hands
#: control back to Python this often, so Ctrl-C is honoured and divergence is
#: caught within about this long.
CHUNK_SECONDS = 0.25

#: Rows per compiled call in ``predict``/``predict_proba``: bounds the memory
#: of the activations for large inputs.
PREDICT_CHUNK_ROWS = 4096

#: Rows per block when the full-batch loss and gradient are computed (L-BFGS):
#: bounds the activation memory to this many rows instead of all of X.
FULL_BATCH_BLOCK_ROWS = 2048

#: BLAS threads of one fit or prediction (see :mod:`fastmlp._threads`). 1: every
#: fit computes with single-threaded BLAS, so results are the same bits however
#: fits are scheduled (one after another, in threads, loky, Dask) and
#: concurrent fits never oversubscribe the cores. None: a fit alone uses BLAS's
#: own limit (all cores) and overlapping fits split it, but layers with more
#: than ~384 inputs then round differently depending on the overlap.
BLAS_THREADS_PER_FIT = 1
