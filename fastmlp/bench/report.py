"""The text of ``fastmlp bench``: the header, the results table and what its columns mean."""

import numpy as np

__all__ = ["LABELS", "REFERENCES", "layer_units", "describe_run", "format_report", "busy_note"]

#: How each library is named in the table and the plot.
LABELS = {"fastmlp": "fastmlp", "numpy": "NumPy", "sklearn": "scikit-learn"}

#: The libraries speed-ups are quoted against, one table column each.
REFERENCES = ("numpy", "sklearn")
REFERENCE_NAMES = {"numpy": "the idiomatic NumPy trainer",
                   "sklearn": "scikit-learn's MLPClassifier"}


def layer_units(n_features, hidden, n_classes):
    """Units of every layer, input to output.

    Parameters
    ----------
    n_features : int
        Input width.
    hidden : sequence of int
        Hidden layer widths.
    n_classes : int
        Number of classes (softmax outputs; 2 classes use one sigmoid output).

    Returns
    -------
    units : list of int
    """
    n_out = 1 if n_classes == 2 else n_classes
    return [int(n_features), *map(int, hidden), n_out]


def describe_run(data, hidden, epochs, dtype):
    """The header: where the data came from, the network, the optimizer, any fallback notice.

    Parameters
    ----------
    data : BenchData
        The loaded data.
    hidden : sequence of int
        Hidden layer widths.
    epochs : int
        Measured epochs.
    dtype : str or numpy dtype
        Compute dtype.

    Returns
    -------
    text : str
    """
    units = layer_units(data.X_train.shape[1], hidden, len(np.unique(data.y_train)))
    rows = f"{data.X_train.shape[0]} training"
    if data.n_available:
        rows = f"the first {data.X_train.shape[0]} of {data.n_available} training"
    text = (f"fastmlp bench: {data.name} ({data.source}), {rows} / "
            f"{data.X_test.shape[0]} test rows; MLP {'-'.join(map(str, units))} logistic, "
            f"SGD lr 0.1 Nesterov momentum 0.9, alpha 1e-4, {np.dtype(dtype).name}; "
            f"{epochs} timed epochs per library and batch size.")
    if data.notice:
        text = f"NOTE: {data.notice}\n\n{text}"
    return text


def _format_table(headers, lines):
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *lines)]

    def fmt(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines])


def format_report(results):
    """The results table, what its columns mean, the warm-up line and the GEMM line.

    Parameters
    ----------
    results : dict
        From :func:`run_bench`.

    Returns
    -------
    text : str
    """
    rows = results["rows"]
    references = [ref for ref in REFERENCES if f"speedup_vs_{ref}" in rows[0]]
    headers = ["library", "batch", "s/epoch", *(f"vs {LABELS[ref]}" for ref in references),
               "GFLOP/s", "of GEMM", "final loss", "test acc"]
    lines = [[LABELS[r["library"]], r["batch_size"], f"{r['seconds_per_epoch']:.3f}",
              *(f"{r[f'speedup_vs_{ref}']:.2f}x" for ref in references),
              f"{r['gflops_per_second']:.1f}", f"{100 * r['gemm_fraction']:.1f}%",
              f"{r['final_loss']:.5f}", f"{r['test_accuracy']:.4f}"] for r in rows]
    warmups = {}
    for r in rows:
        warmups.setdefault(LABELS[r["library"]], []).append(r["warmup_seconds"])
    warm_text = ", ".join(f"{lib} {sum(w):.2f} s" for lib, w in warmups.items())
    gemm = results["gemm"]
    n = gemm["n"]
    columns = " and ".join(f"'vs {LABELS[ref]}'" for ref in references)
    names = " or ".join(REFERENCE_NAMES[ref] for ref in references)
    return "\n".join([
        f"Speed-up columns, one per reference: {columns} = how many times faster this row "
        f"trains than {names} at the same batch size (the reference's s/epoch / this "
        "row's; above 1.00x is faster).",
        "",
        _format_table(headers, lines),
        "",
        "s/epoch: median of the timed epochs.",
        f"Warm-up, not in s/epoch (Numba JIT compile or cache load on its first call): "
        f"{warm_text}.",
        f"Large-GEMM rate of this machine: {gemm['gflops_per_second']:.1f} GFLOP/s (NumPy "
        f"{gemm['dtype']} {n}x{n}x{n} matmul, best of 3); one epoch = "
        f"{results['epoch_flops'] / 1e9:.2f} GFLOP, so 'of GEMM' = GFLOP/s / "
        f"{gemm['gflops_per_second']:.1f}.",
        *_skipped_lines(rows, results["epoch_flops"]),
    ])


def _skipped_lines(rows, flops):
    """fastmlp's skipped first-layer work and the GEMM fraction of what it executes."""
    fast = [r for r in rows if r.get("skipped_flops", 0) > 0]
    if not fast:
        return []
    parts = [f"batch {r['batch_size']}: {r['skipped_flops'] / 1e9:.1f} GFLOP skipped, "
             f"{100 * r['executed_gemm_fraction']:.1f}% of GEMM executed" for r in fast]
    return [f"fastmlp skips the first-layer terms of input columns that are zero in every "
            f"row of a batch (estimated, of the {flops / 1e9:.2f}): " + "; ".join(parts) + "."]


def busy_note(load_before, load_after, cpu_count):
    """A warning when other programs shared the cores while the timings ran.

    The run itself keeps up to all cores busy (fastmlp's threads, BLAS's
    threads), so the load average read after it may reach ``cpu_count`` on
    its own; more than one core's worth beyond that, or more than one core
    busy before it started, is someone else's work.

    Parameters
    ----------
    load_before, load_after : float or None
        One-minute load averages read before and after the run (None: unknown).
    cpu_count : int
        Logical cores.

    Returns
    -------
    note : str or None
        None when neither reading shows other work (or both are unknown).
    """
    busy = ((load_before is not None and load_before > 1.0)
            or (load_after is not None and load_after > cpu_count + 1.0))
    if not busy:
        return None
    loads = ", ".join(f"{x:.1f}" for x in (load_before, load_after) if x is not None)
    return (f"NOTE: the machine was busy while this ran (load average {loads} on "
            f"{cpu_count} cores), so other programs took CPU time from every library: "
            "the timings and ratios above are unreliable. Rerun on an idle machine.")
