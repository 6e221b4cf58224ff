"""The named bundles of arguments the compiled entry points take.

Plain namedtuples (no numba): Numba passes them to ``@njit`` code as tuples
whose fields keep their names and types, and cached kernels stay cacheable.
A field's type must not change between calls (an int stays an int, a float
a float), or the kernel compiles again for the new types.
"""

from collections import namedtuple

#: The rows: dense ``X`` (C-contiguous; an empty ``(0, n_features)`` array for
#: sparse X) or the CSR arrays ``Xdata``, ``Xind``, ``Xptr`` (empty for dense
#: X); targets ``Y`` (n_rows x outputs), sample weights ``sw`` (empty: all 1),
#: ``rows`` (sample indices in epoch order; empty: the rows of X in order) and
#: ``n_rows`` (the rows trained or predicted).
Data = namedtuple("Data", "X Xdata Xind Xptr Y sw rows n_rows")

#: The network: flat ``params``, layer widths ``units``, offsets of the weight
#: matrices ``coff`` and bias vectors ``ioff`` in ``params``, and the codes of
#: :mod:`fastmlp.kernels.codes`.
Net = namedtuple("Net", "params units coff ioff hidden_act out_act loss_kind")

#: The optimizer: its code ``kind``, its scalars ``hyper`` (laid out as
#: :data:`fastmlp.kernels.codes.HYPER_FIELDS`), its state ``s1``, ``s2`` (laid
#: out as ``params``; ``s2`` empty for SGD), the step counter ``step`` (int64,
#: 1 value; Adam's, advanced by the kernel) and the L2 penalty ``alpha``.
Optimizer = namedtuple("Optimizer", "kind hyper s1 s2 step alpha")

#: One part's working memory: activations ``acts`` and ``deltas`` (blocks of
#: ``cap`` rows per layer), BLAS scratch ``iscr``, ``fscr``, and ``tiled``
#: (products through :mod:`fastmlp.kernels.tiles` instead of BLAS).
Scratch = namedtuple("Scratch", "acts deltas cap iscr fscr tiled")

#: The training workspace, allocated once per fit: the gathered batch ``xb``,
#: ``acts`` and ``deltas`` shared by the parts, one gradient block per part
#: ``gbufs``, the first layer's parameter and state blocks ``first``, BLAS
#: scratch per part ``iscrs``, ``fscrs``, per-part sums ``partials``, the
#: per-part column marks ``col_seen`` (no columns: no zero-column skipping),
#: ``tiled``, and the zero-column skipping rule's knobs ``zero_column_share``
#: and ``max_dense_batches`` (:mod:`fastmlp.config`).
Workspace = namedtuple("Workspace", "xb acts deltas gbufs first iscrs fscrs partials col_seen "
                                    "tiled zero_column_share max_dense_batches")

#: What to run: batches ``b_start`` to ``b_stop`` of ``batch_size`` rows,
#: continuing the epoch's running ``loss_sum``; or with ``n_epochs`` > 0 whole
#: epochs, shuffled with the MT19937 state ``mt_key``, ``mt_pos`` (empty key:
#: no shuffle), stopped by ``stop_rule`` (best loss, count, tol,
#: n_iter_no_change), their mean losses written to ``epoch_losses``.
Schedule = namedtuple("Schedule", "batch_size b_start b_stop loss_sum n_epochs mt_key mt_pos "
                                  "stop_rule epoch_losses")

#: This thread's place among the threads of one call: parts ``part_lo`` to
#: ``part_hi`` of ``n_parts``, ``n_threads`` threads meeting at barriers on the
#: shared ``sync``, ``passed`` (int64, 1 value, this thread's own) counting
#: the barriers it passed.
Team = namedtuple("Team", "part_lo part_hi n_parts n_threads sync passed")

#: One batch as the update phase reads it (built inside the training kernel):
#: positions ``r0`` to ``r0 + m``, the address of its first-layer input rows
#: ``x_ptr``, the addresses of its rows of X ``x_rows`` (empty unless the tiles
#: read X directly) and the columns its products read ``cols``.
Batch = namedtuple("Batch", "r0 m x_ptr x_rows cols")

#: How a training call lays out its work (built inside the training kernel):
#: ``align`` (values per cache line: the multiple the parts are cut at),
#: ``strip`` (the first layer's strip width; 0: row-major blocks), ``direct``
#: (the tiles read the batch's rows in X), ``gathered`` (rows are copied into
#: the workspace), ``skip`` (zero-column skipping on), ``out_off`` (the output
#: layer's offset in ``acts``), and its buffers: ``x_rows`` (row addresses),
#: ``cols``, ``runs`` (the columns read), ``ahead`` (the next batch's row
#: addresses) and ``state`` (:mod:`fastmlp.kernels.columns`).
Plan = namedtuple("Plan", "align strip direct gathered skip out_off x_rows cols runs ahead state")
