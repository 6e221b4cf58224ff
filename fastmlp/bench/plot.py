"""The plot of ``fastmlp bench``: seconds per epoch as bars, and the loss curves."""

from fastmlp.bench.report import LABELS, busy_note

__all__ = ["make_figure", "write_plot"]


def _agg_figure():
    """A matplotlib Figure drawn by Agg (no display), or None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(13, 5), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _data_title(cfg):
    """What was trained on, saying when only the first rows of the training set were used."""
    name = cfg["dataset"]
    if cfg.get("n_available"):
        name += f" (first {cfg['n_train']:,} of {cfg['n_available']:,} training rows)"
    elif name == "digits":
        name += " (MNIST unavailable; 8x8 images)"
    return (f"{name}, MLP {'-'.join(map(str, cfg['layer_units']))}, {cfg['dtype']}, "
            f"median of {cfg['epochs']} epochs")


def _bar_chart(ax, rows, libraries, batch_sizes, colors):
    """Seconds per epoch, grouped by batch size, one bar per library, ratio to fastmlp on top."""
    width = 0.8 / len(libraries)
    seconds = {(r["library"], r["batch_size"]): r["seconds_per_epoch"] for r in rows}
    for j, library in enumerate(libraries):
        xs = [i + (j - (len(libraries) - 1) / 2) * width for i in range(len(batch_sizes))]
        heights = [seconds[library, b] for b in batch_sizes]
        bars = ax.bar(xs, heights, width, color=colors[library], label=LABELS[library])
        if "fastmlp" in libraries:
            ratios = [seconds[library, b] / seconds["fastmlp", b] for b in batch_sizes]
            ax.bar_label(bars, [f"{r:.2f}x" if r < 10 else f"{r:.0f}x" for r in ratios],
                         fontsize="small", padding=2)
    ax.set_xticks(range(len(batch_sizes)), [f"batch {b}" for b in batch_sizes])
    ax.set_ylabel("seconds per epoch (lower is faster)")
    ax.margins(y=0.12)
    ax.grid(axis="y", alpha=0.3)
    # Above the axes, in one row: it can cover no bar and no label.
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0),
              ncols=len(libraries), frameon=False)
    ax.set_title("seconds per epoch; above each bar: its time / fastmlp's", pad=24)


def _loss_curves(ax, rows, libraries, batch_sizes, colors):
    """Every library's loss curve at every batch size; the legend sits outside the axes."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    # The curves of all libraries coincide (same start and shuffles): markers
    # shrinking in drawing order keep each one visible; the line style tells
    # the batch size.
    markers = {lib: "oxs+^v"[i % 6] for i, lib in enumerate(libraries)}
    sizes = {lib: 10 - 2.5 * i for i, lib in enumerate(libraries)}
    styles = {b: ["-", "--", ":", "-."][i % 4] for i, b in enumerate(batch_sizes)}
    for r in rows:
        curve = r["loss_curve"]
        ax.plot(range(1, len(curve) + 1), curve, styles[r["batch_size"]],
                marker=markers[r["library"]], markersize=sizes[r["library"]],
                color=colors[r["library"]], fillstyle="none")
    ax.set(yscale="log", xlabel="epoch", ylabel="training loss",
           title="loss curves (same start weights and shuffles)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[lib], marker=markers[lib], fillstyle="none",
                      label=LABELS[lib]) for lib in libraries]
    handles += [Line2D([], [], color="0.3", linestyle=styles[b], label=f"batch {b}")
                for b in batch_sizes]
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1),
              borderaxespad=0)


def make_figure(results):
    """Draw seconds per epoch by batch size and library, and the loss curves.

    Parameters
    ----------
    results : dict
        From :func:`fastmlp.bench.run.run_bench`.

    Returns
    -------
    figure : matplotlib.figure.Figure or None
        Two panels (bars, then loss curves) under a title naming the data;
        None when matplotlib (the ``plot`` extra) is not installed.
    """
    fig = _agg_figure()
    if fig is None:
        return None
    rows = results["rows"]
    libraries = list(dict.fromkeys(r["library"] for r in rows))
    batch_sizes = list(dict.fromkeys(r["batch_size"] for r in rows))
    colors = {lib: f"C{i}" for i, lib in enumerate(LABELS) if lib in libraries}
    ax_time, ax_loss = fig.subplots(1, 2, width_ratios=(1.15, 1))
    _bar_chart(ax_time, rows, libraries, batch_sizes, colors)
    _loss_curves(ax_loss, rows, libraries, batch_sizes, colors)
    fig.suptitle(_data_title(results["config"]))
    machine = results.get("machine", {})
    if busy_note(*machine.get("load_average", (None, None)), machine.get("cpu_count") or 1):
        fig.text(0.01, 0.005, "The machine was busy during this run (load average "
                 f"{', '.join(f'{x:.1f}' for x in machine['load_average'] if x is not None)}"
                 f" on {machine['cpu_count']} cores): timings unreliable.",
                 color="C3", fontsize="small", va="bottom")
    return fig


def write_plot(results, path):
    """Write :func:`make_figure`'s figure to a PNG.

    Parameters
    ----------
    results : dict
        From :func:`fastmlp.bench.run.run_bench`.
    path : str or os.PathLike
        Output file.

    Returns
    -------
    written : bool
        False when matplotlib (the ``plot`` extra) is not installed.
    """
    fig = make_figure(results)
    if fig is None:
        return False
    fig.savefig(path, dpi=110)
    return True
