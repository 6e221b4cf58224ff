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
