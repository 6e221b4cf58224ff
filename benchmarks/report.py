"""Turn pytest-benchmark's ``--benchmark-json`` output into the README's markdown tables.

Usage::

    python benchmarks/report.py /tmp/bench.json              # print
    python benchmarks/report.py /tmp/bench.json -o table.md  # write a file
    # keep the run as benchmarks/results/<cpu kind>.json + .md and refresh README.md's table
    python benchmarks/report.py /tmp/bench.json --results-dir benchmarks/results --readme README.md

Tables (a suite missing from the JSON is left out):

* seconds per epoch on MNIST, per network and dtype, one row per batch size:
  each library's time with its share of the machine's large-GEMM rate, and
  each library's time divided by numba's (how many times faster numba is);
* digits ``fit``, GridSearchCV, ``predict_proba`` throughput and the JIT cost
  of a fresh process, each against fastmlp's numba backend;
* any other benchmark group as a plain list of times.

Times are pytest-benchmark's per-round statistic chosen with ``--stat``
(default ``min``: on a shared machine the fastest round is the least
disturbed one).
"""

import argparse
import copy
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from statistics import median

from _results import cpu_kind, describe_cpu, update_readme

EPOCH_LIBS = ("numba", "idiomatic", "numpy", "sklearn", "torch", "floor")


def load(path):
    """Read a ``--benchmark-json`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    data : dict
        pytest-benchmark's document (``machine_info``, ``benchmarks``, ...).
    """
    with open(path) as f:
        return json.load(f)


def _seconds(bench, stat):
    return bench["stats"][stat]


def _pct(fraction):
    return f"{100 * fraction:.1f} %"


def _ratio(value, reference):
    if value is None or reference is None:
        return "–"
    return f"{value / reference:.2f}×"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def session_reference(data):
    """The machine's large-GEMM rate per dtype: the best reading of the whole session.

    The session's first measurement can fall in a moment when another tenant
    holds a core; the machine checks around the timed benchmarks read the
    same product again dozens of times over the run. The best of all readings
    is the machine's undisturbed rate (a maximum of noisy readings, so if
    anything high: the ``% GEMM`` figures it gives are conservative).

    Parameters
    ----------
    data : dict
        pytest-benchmark's document.

    Returns
    -------
    gemm : dict
        GFLOP/s by dtype name (empty without the benchmarks' machine info).
    """
    extra = data.get("machine_info", {}).get("fastmlp_bench") or {}
    start = extra.get("gemm_gflops") or {}
    gemm = {dtype: start[dtype] for dtype in ("float32", "float64") if dtype in start}
    for b in data.get("benchmarks", []):
        e = b["extra_info"]
        dtype = _check_dtype(e)
        if dtype in gemm and "gemm_check_gflops" in e:
            gemm[dtype] = max(gemm[dtype], *e["gemm_check_gflops"])
    return gemm


def _rescaled(data, gemm):
    """A copy of ``data`` whose GEMM fractions are relative to ``gemm``."""
    data = copy.deepcopy(data)
    for b in data.get("benchmarks", []):
        e = b["extra_info"]
        if e.get("dtype") in gemm and "gemm_gflops" in e:
            factor = e["gemm_gflops"] / gemm[e["dtype"]]
            for key in ("gemm_fraction", "executed_gemm_fraction"):
                if key in e:
                    e[key] *= factor
            e["gemm_gflops"] = gemm[e["dtype"]]
    return data


def header_section(data, reference=None):
    """Machine, versions and large-GEMM rates.

    Parameters
    ----------
    data : dict
        pytest-benchmark's document.
    reference : dict, optional
        The rates ``% GEMM`` is relative to (:func:`session_reference`).

    Returns
    -------
    markdown : str
    """
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    extra = info.get("fastmlp_bench") or {}
    gemm = extra.get("gemm_gflops") or {}
    versions = extra.get("versions") or {}
    lines = [f"Run: {data.get('datetime', '?')}; machine: {cpu.get('brand_raw', '?')}, "
             f"{extra.get('cpu_count', cpu.get('count', '?'))} cores, "
             f"Python {info.get('python_version', '?')}."]
    if versions:
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()
                                               if v is not None) + ".")
    if gemm:
        n = gemm.get("n")
        parts = []
        for dtype in ("float32", "float64"):
            if dtype in gemm:
                parts.append(f"{dtype} {gemm[dtype]:.1f} GFLOP/s (all cores "
                             f"{gemm.get(dtype + '_all_threads', float('nan')):.1f}, one core "
                             f"{gemm.get(dtype + '_1thread', float('nan')):.1f})")
        lines.append(f"Large-GEMM rate (NumPy, {n}³, best of 5) at the start: "
                     + "; ".join(parts) + ".")
    if reference:
        lines.append("Reference for % GEMM, the best reading of the session (the start and "
                     "the machine checks): " + "; ".join(f"{dtype} {rate:.1f} GFLOP/s"
                                                        for dtype, rate in reference.items())
                     + ".")
    if extra.get("smoke"):
        lines.append("**Smoke-mode run: sizes are tiny and times are meaningless.**")
    return "\n\n".join(lines)


def epoch_sections(benches, stat, gemm=None):
    """Seconds per epoch per network and dtype, rows by batch size.

    Parameters
    ----------
    benches : list of dict
        Benchmarks of the ``mnist-epoch`` groups.
    stat : str
        Statistic of the round times.
    gemm : dict, optional
        The session's large-GEMM rates by dtype (:func:`session_reference`):
        with them, the benchmarks run while the machine was slower are listed.

    Returns
    -------
    markdown : str
    """
    by_table = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        by_table[(e["layers"], e["dtype"])][(e["batch_size"], e["lib"])] = b
    out = []
    for (layers, dtype), cells in sorted(by_table.items(), key=lambda kv: (len(kv[0][0]),
                                                                           kv[0])):
        libs = [lib for lib in EPOCH_LIBS if any(lib == k[1] for k in cells)]
        others = [lib for lib in libs if lib not in ("numba", "floor")]
        header = (["batch"] + [f"{lib} s/epoch (% GEMM)" for lib in libs]
                  + [f"{lib} ÷ numba" for lib in others]
                  + (["numba ÷ floor"] if "floor" in libs else []))
        rows = []
        for bs in sorted({k[0] for k in cells}):
            times = {lib: _seconds(cells[(bs, lib)], stat) if (bs, lib) in cells else None
                     for lib in libs}
            row = [bs]
            for lib in libs:
                if times[lib] is None:
                    row.append("–")
                    continue
                e = cells[(bs, lib)]["extra_info"]
                # rate_info used the fastest round; rescale to the chosen statistic.
                fraction = e["gemm_fraction"] * e["seconds"] / times[lib]
                row.append(f"{times[lib]:.3f} ({_pct(fraction)})")
            row += [_ratio(times[lib], times.get("numba")) for lib in others]
            if "floor" in libs:
                row.append(_ratio(times.get("numba"), times["floor"]))
            rows.append(row)
        n = next(iter(cells.values()))["extra_info"]["n_samples"]
        out.append(f"### Epoch on MNIST, {layers}, {dtype} ({n} rows, {stat} of rounds)\n\n"
                   + _table(header, rows) + _skipped_note(cells, stat)
                   + _check_note([(f"{lib} at batch {bs}", b["extra_info"])
                                  for (bs, lib), b in sorted(cells.items())], gemm))
    return "\n\n".join(out)


#: A benchmark counts as disturbed when a large-GEMM reading just before or after its
#: fastest round is below this fraction of the session's reference rate.
DISTURBED = 0.9


def _fastest_round_checks(e):
    """The machine checks just before and after the fastest round of a benchmark.

    With one reading per round plus one after the last (``round_seconds``
    present), round i ran between readings i and i + 1; older documents have
    one reading before all rounds and one after them.
    """
    checks = e["gemm_check_gflops"]
    times = e.get("round_seconds")
    if times and len(checks) == len(times) + 1:
        i = min(range(len(times)), key=times.__getitem__)
        return checks[i], checks[i + 1]
    return checks[0], checks[-1]


def _check_dtype(e):
    """The element type of a benchmark's machine checks (older documents: its own dtype)."""
    return e.get("gemm_check_dtype", e.get("dtype"))


def _check_note(labelled, gemm):
    """The benchmarks whose fastest round ran while the machine was slower than its reference.

    ``labelled`` holds (label, extra_info) pairs of one table (one dtype).
    """
    checked = [(label, e) for label, e in labelled if "gemm_check_gflops" in e]
    if not checked or not gemm:
        return ""
    reference = gemm[_check_dtype(checked[0][1])]
    slow = []
    for label, e in checked:
        before, after = _fastest_round_checks(e)
        if min(before, after) < DISTURBED * reference:
            slow.append(f"{label} ({before:.0f} / {after:.0f} GFLOP/s)")
    waited = sum(e.get("quiet_wait_s", 0.0) for _, e in checked)
    return (f"\n\nMachine check (the large-GEMM rate read before every round and after the "
            f"last, after waiting {waited:.0f} s in all for it to reach {DISTURBED:.0%} of the "
            f"reference {reference:.1f} GFLOP/s): below that just before or after the fastest "
            "round for " + ("; ".join(slow) if slow else "none") + ".")


def _skipped_note(cells, stat):
    """numba's skipped first-layer work, and the GEMM fraction of the flops it executes."""
    parts = []
    for (bs, lib), b in sorted(cells.items()):
        e = b["extra_info"]
        if lib == "numba" and e.get("skipped_flops"):
            scale = e["seconds"] / _seconds(b, stat)
            parts.append(f"batch {bs}: {e['skipped_flops'] / 1e9:.1f} GFLOP skipped, "
                         f"executed {_pct(e['executed_gemm_fraction'] * scale)} of GEMM")
    if not parts:
        return ""
    return ("\n\nnumba skips the first-layer terms of input columns that are zero in every "
            "row of a batch (estimated over one random order; the % GEMM above counts "
            "them): " + "; ".join(parts) + ".")


def _by_lib_section(title, benches, stat, columns):
    """One row per benchmark: time, ratio to numba and extra columns."""
    numba = {b["extra_info"].get("dtype"): _seconds(b, stat) for b in benches
             if b["extra_info"].get("lib") == "numba"}
    header = ["library", "dtype", f"seconds ({stat})", "÷ numba"] + [c[0] for c in columns]
    rows = []
    order = {lib: i for i, lib in enumerate(EPOCH_LIBS)}
    for b in sorted(benches, key=lambda b: (b["extra_info"].get("dtype", ""),
                                            order.get(b["extra_info"].get("lib"), 9))):
        e = b["extra_info"]
        t = _seconds(b, stat)
        rows.append([e.get("lib"), e.get("dtype", "–"), f"{t:.4g}",
                     _ratio(t, numba.get(e.get("dtype")))]
                    + [fmt(e, t) for _, fmt in columns])
    return f"### {title}\n\n" + _table(header, rows)


def _gflops_cell(e, t):
    gflops = e["gflops"] * e["seconds"] / t
    return f"{gflops:.1f} ({_pct(gflops / e['gemm_gflops'])})"


def digits_section(benches, stat):
    """Whole ``fit`` on digits."""
    e0 = benches[0]["extra_info"]
    return _by_lib_section(
        f"digits fit: {e0['layers']}, batch {e0['batch_size']}, {e0['epochs']} epochs, "
        f"{e0['n_samples']} rows", benches, stat,
        [("ms/epoch", lambda e, t: f"{1e3 * t / e['epochs']:.2f}"),
         ("GFLOP/s (% GEMM)", _gflops_cell),
         ("test accuracy", lambda e, t: f"{e['test_accuracy']:.3f}")])


def grid_section(benches, stat):
    """GridSearchCV end to end."""
    e0 = benches[0]["extra_info"]
    return _by_lib_section(
        f"GridSearchCV on digits: {e0['n_candidates']} candidates × {e0['n_folds']} folds "
        f"+ refit, {e0['epochs']} epochs each", benches, stat,
        [("fits/s", lambda e, t: f"{(e['n_candidates'] * e['n_folds'] + 1) / t:.1f}"),
         ("GFLOP/s (% GEMM)", _gflops_cell),
         ("best CV score", lambda e, t: f"{e['best_score']:.4f}")])


def defaults_grid_section(benches, stat):
    """GridSearchCV on the defaults path: seconds per search and the ratio to fastmlp."""
    times = {b["extra_info"]["lib"]: _seconds(b, stat) for b in benches}
    rows = [[e["lib"], f"{times[e['lib']]:.2f}", _ratio(times[e["lib"]], times.get("fastmlp")),
             f"{e['best_score']:.4f}"]
            for e in sorted((b["extra_info"] for b in benches), key=lambda e: e["lib"])]
    e0 = benches[0]["extra_info"]
    return (f"### GridSearchCV on digits, defaults path (StandardScaler + MLP defaults, float64, "
            f"{e0['n_candidates']} candidates × {e0['n_folds']} folds, n_jobs=1)\n\n"
            + _table(["library", f"seconds ({stat})", "÷ fastmlp", "best CV score"], rows))


def inference_section(benches, stat):
    """``predict_proba`` throughput."""
    e0 = benches[0]["extra_info"]
    return _by_lib_section(
        f"predict_proba: {e0['layers']}, {e0['n_samples']} rows", benches, stat,
        [("rows/s", lambda e, t: f"{e['n_samples'] / t:,.0f}"),
         ("GFLOP/s (% GEMM)", _gflops_cell),
         ("max abs Δp vs NumPy float64", lambda e, t: f"{e['max_abs_diff_vs_reference']:.1e}")])


def lbfgs_section(benches, stat):
    """Whole L-BFGS ``fit`` on MNIST."""
    e0 = benches[0]["extra_info"]
    return _by_lib_section(
        f"L-BFGS fit on MNIST: {e0['layers']}, {e0['iterations']} iterations, "
        f"{e0['n_samples']} rows", benches, stat,
        [("s/iteration", lambda e, t: f"{t / e['iterations']:.3f}"),
         ("final loss", lambda e, t: f"{e['final_loss']:.5f}"),
         ("test accuracy", lambda e, t: f"{e['test_accuracy']:.4f}")])


def jit_section(benches, stat):
    """Import + first fit in a fresh process; targets of issue 7."""
    cases = {}
    for b in benches:
        e = b["extra_info"]
        case = e.get("case") or e["lib"] + (f"-{e['numba_cache']}" if e.get("numba_cache") else "")
        cases[case] = (b, e)
    header = ["case", "backend", f"process s ({stat})", "import s", "first fit s",
              "import + fit s"]
    rows = [[case, e.get("backend") or "-", f"{_seconds(b, stat):.2f}", f"{e['import_s']:.2f}",
             f"{e['first_fit_s']:.2f}", f"{e['import_plus_fit_s']:.2f}"]
            for case, (b, e) in sorted(cases.items())]
    text = "### JIT cost: import + first fit in a fresh process\n\n" + _table(header, rows)
    notes = []
    if "sklearn" in cases:
        sk = cases["sklearn"][1]["import_plus_fit_s"]
        for case, label in [("fastmlp-warm", "warm fastmlp, default backend"),
                            ("fastmlp-warm-kernels", "warm fastmlp on the kernels")]:
            if case in cases:
                ratio = cases[case][1]["import_plus_fit_s"] / sk
                notes.append(f"{label} ÷ scikit-learn (import + fit): {ratio:.2f}× "
                             "(target ≤ 1.3×)")
    if "fastmlp-cold" in cases and "fastmlp-warm-kernels" in cases:
        compile_s = (cases["fastmlp-cold"][1]["first_fit_s"]
                     - cases["fastmlp-warm-kernels"][1]["first_fit_s"])
        notes.append(f"cold compile ≈ cold − warm first fit on the kernels: {compile_s:.1f} s "
                     "(target < 20 s)")
    if notes:
        text += "\n\n" + "; ".join(notes) + "."
    return text


def other_section(group, benches, stat):
    """Any other group: name and times."""
    header = ["benchmark", f"seconds ({stat})", "median", "rounds"]
    rows = [[b["name"], f"{_seconds(b, stat):.4g}", f"{b['stats']['median']:.4g}",
             b["stats"]["rounds"]] for b in sorted(benches, key=lambda b: b["name"])]
    return f"### {group}\n\n" + _table(header, rows)


def one_fit_threads_section(benches, stat):
    """One fit in its own threads against one thread, alone or beside a CPU hog.

    The ratio is own threads / one thread per round (below 1: the threads
    pay; beside the hog it should stay at or below 1.1).
    """
    group = benches[0].get("group")
    header = ["batch", "one thread s (median)", "own threads s (median)",
              "own / one (median, min-max)", "calls fallen back"]
    rows = []
    for b in sorted(benches, key=lambda b: b["extra_info"].get("batch_size", 0)):
        e = b["extra_info"]
        one, two = e.get("seconds_one_thread", []), e.get("seconds_own_threads", [])
        if not one or not two:
            continue
        ratios = [t / o for o, t in zip(one, two)]
        fallen = (f"{e['calls_fallen_back']} of {e['threaded_calls']}"
                  if "threaded_calls" in e else "")
        rows.append([e.get("batch_size", ""), f"{median(one):.3f}", f"{median(two):.3f}",
                     f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})", fallen])
    return f"### {group}\n\n" + _table(header, rows)


def render(data, stat="min"):
    """The whole markdown report.

    Parameters
    ----------
    data : dict
        pytest-benchmark's document.
    stat : {"min", "median", "mean"}, default="min"
        Statistic of the round times.

    Returns
    -------
    markdown : str
    """
    gemm = session_reference(data)
    data = _rescaled(data, gemm)
    groups = defaultdict(list)
    for b in data.get("benchmarks", []):
        groups[b.get("group") or b["name"].split("[")[0]].append(b)
    epochs = [b for g, bs in groups.items() if g.startswith("mnist-epoch") for b in bs]
    sections = [header_section(data, gemm)]
    if epochs:
        sections.append(epoch_sections(epochs, stat, gemm))
    special = {"digits-fit": digits_section, "grid-search": grid_section,
               "inference": inference_section, "jit": jit_section, "lbfgs": lbfgs_section,
               "threads: one fit": one_fit_threads_section, "defaults-grid": defaults_grid_section}
    for group in sorted(groups):
        if group.startswith("mnist-epoch"):
            continue
        maker = next((fn for prefix, fn in special.items() if group.startswith(prefix)), None)
        text = maker(groups[group], stat) if maker else other_section(group, groups[group], stat)
        sections.append(text + _check_note(
            [(b["extra_info"].get("case") or b["extra_info"].get("lib", b["name"]),
              b["extra_info"]) for b in groups[group]], gemm))
    return "\n\n".join(sections) + "\n"


def readme_table(data, stat="min", source=None, layers="784-128-10", dtype="float32"):
    """The README's results table: seconds per MNIST epoch per library and batch size.

    Parameters
    ----------
    data : dict
        pytest-benchmark's document.
    stat : {"min", "median", "mean"}, default="min"
        Statistic of the round times.
    source : str, optional
        The results file the table comes from, named under it.
    layers, dtype : str
        The network and dtype of the table.

    Returns
    -------
    markdown : str
        A caption naming the CPU, then the table and its source.
    """
    cells = {}
    for b in data.get("benchmarks", []):
        e = b["extra_info"]
        if (b.get("group") or "").startswith("mnist-epoch") and e.get("layers") == layers \
                and e.get("dtype") == dtype:
            cells[(e["batch_size"], e["lib"])] = _seconds(b, stat)
    if not cells:
        raise ValueError(f"no mnist-epoch benchmarks of {layers} in {dtype} in this document")
    libs = [lib for lib in EPOCH_LIBS if any(lib == k[1] for k in cells)]
    names = {"numba": "fastmlp (numba)", "idiomatic": "NumPy, idiomatic (preallocated, in place)",
             "numpy": "fastmlp (numpy reference)",
             "sklearn": "scikit-learn MLPClassifier", "torch": "PyTorch CPU eager",
             "floor": "layer-1 GEMMs only (floor)"}
    rows = []
    for bs in sorted({k[0] for k in cells}):
        mine = cells.get((bs, "numba"))
        row = [bs]
        for lib in libs:
            t = cells.get((bs, lib))
            if t is None:
                row.append("–")
            elif lib == "numba":
                row.append(f"**{t:.3f} s**")
            elif lib == "floor":  # a floor, not a library: how far above it fastmlp is
                row.append(f"{t:.3f} s (fastmlp {_ratio(mine, t)})")
            else:
                row.append(f"{t:.3f} s ({_ratio(t, mine)})")
        rows.append(row)
    versions = (data.get("machine_info", {}).get("fastmlp_bench") or {}).get("versions") or {}
    caption = (f"Seconds per epoch on MNIST (60000 rows), {layers} sigmoid, SGD with Nesterov "
               f"momentum, {dtype}, {stat} of the rounds; measured on {describe_cpu(data)}"
               + (" with " + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
                  if versions else "") + ". (×: that library's time ÷ fastmlp's.)")
    text = caption + "\n\n" + _table(["batch"] + [names[lib] for lib in libs], rows)
    if source:
        text += f"\n\nGenerated by `benchmarks/report.py` from `{source}`."
    return text


def write_results(data, json_path, results_dir, stat="min"):
    """Store a run as ``<results_dir>/<cpu kind>.json`` and its report as ``<cpu kind>.md``.

    Parameters
    ----------
    data : dict
        pytest-benchmark's document, read from ``json_path``.
    json_path : str or os.PathLike
        The document's file, copied as it is.
    results_dir : str or os.PathLike
        Directory of the results, one pair of files per CPU kind.
    stat : {"min", "median", "mean"}, default="min"
        Statistic of the round times.

    Returns
    -------
    markdown_path, json_copy : pathlib.Path
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    kind = cpu_kind(data)
    json_copy, markdown_path = results_dir / f"{kind}.json", results_dir / f"{kind}.md"
    if Path(json_path).resolve() != json_copy.resolve():
        shutil.copyfile(json_path, json_copy)
    header = (f"# Benchmark results: {describe_cpu(data)}\n\n"
              f"Generated by `python benchmarks/report.py {json_copy.name} --results-dir "
              f"{results_dir.name}` from `{json_copy.name}` (pytest-benchmark's JSON); "
              "regenerate it rather than editing it. How the benchmarks run and what they "
              "time: [../README.md](../README.md).\n\n")
    markdown_path.write_text(header + render(data, stat))
    return markdown_path, json_copy


def main(argv=None):
    """Command line: ``report.py BENCH.json [-o OUT.md] [--results-dir DIR] [--readme FILE]``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    status : int
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", help="file written by pytest --benchmark-json")
    parser.add_argument("-o", "--output", help="write the markdown here instead of printing")
    parser.add_argument("--stat", default="min", choices=("min", "median", "mean"),
                        help="statistic of the round times (default: min)")
    parser.add_argument("--results-dir", metavar="DIR",
                        help="store the JSON and its report as DIR/<cpu kind>.json and .md")
    parser.add_argument("--readme", metavar="FILE",
                        help="replace the generated table between FILE's markers")
    args = parser.parse_args(argv)
    data = load(args.json)
    source = args.json
    if args.results_dir:
        markdown_path, json_copy = write_results(data, args.json, args.results_dir, args.stat)
        print(f"wrote {markdown_path} and {json_copy}")
        source = json_copy.as_posix()
    if args.readme:
        update_readme(args.readme, readme_table(data, args.stat, source=source))
        print(f"updated the table in {args.readme}")
    if args.results_dir or args.readme:
        return 0
    text = render(data, args.stat)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
