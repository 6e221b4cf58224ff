"""What each of the kernels' optimizations gains: the code with it against the code without it.

Run ``python benchmarks/ablation.py <name>`` (``--list`` for the names, ``all``
for every one). Each timed run is a fresh child process; the baseline (A) and
the variant without the optimization (B) alternate A B A B ..., so that a
change in the machine's load hits both. The variant is made without editing
fastmlp: before the kernel modules are imported, the child replaces a module
attribute (a no-op ``prefetch``, ``np.exp`` for the kernels' ``exp``, a null
context for ``subnormals_flushed``) or sets a knob of :mod:`fastmlp.config`.
Variants that change compiled code get a numba cache directory of their own
(``NUMBA_CACHE_DIR``), so no child loads the other variant's machine code. A
child's first epoch (or fit) is untimed: it compiles the kernels or loads them
from the cache.

Every child reports a *probe* that shows its patch took effect (which
functions the kernel modules hold, the parts and zero-column buffers of the
fit's workspace), and a fingerprint of the fitted weights.

The times are seconds per epoch or per fit: a child's median, and its
fastest (the least disturbed by other processes on a shared machine). Most
ablations hold the fit to one thread and count CPU seconds (``process_time``):
on a host whose cores other processes share, CPU time of a one-thread job
moves far less than its wall time. Those about threads (``parts``,
``reach-guard``) run the fit's default threads and count wall seconds. The
table gives, per workload, the medians over rounds of A and B, the ratio
B / A of the medians (above 1: the optimization gains), the range of the
per-round ratios, and the same ratio from each child's fastest time. The
machine model is printed with it; name it with every number quoted.

Data: MNIST from ``$FASTMLP_DATA`` (``fastmlp.datasets.load_mnist``), digits
from scikit-learn.
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: The network and optimizer of the MNIST workloads (those of benchmarks/bench_mnist_epoch.py).
SGD = dict(activation="logistic", solver="sgd", momentum=0.9, nesterovs_momentum=True,
           learning_rate="constant", learning_rate_init=0.1, alpha=1e-4, shuffle=True)


@dataclass(frozen=True)
class Workload:
    """A training job timed by a child.

    Parameters
    ----------
    data : {"mnist", "mnist-scaled", "digits"}
        MNIST training set (pixels in [0, 1]), the same after
        ``StandardScaler``, or scikit-learn's digits after ``StandardScaler``.
    dtype : str
        Compute dtype.
    batch_size : int
        Rows per mini-batch.
    hidden : int
        Hidden units (one hidden layer).
    solver : {"sgd", "adam"}
        SGD with Nesterov momentum (:data:`SGD`) or Adam (its defaults).
    fit_epochs : int
        0: time ``partial_fit`` epochs after a warm-up one. Otherwise: time
        whole ``fit`` calls of this many epochs (no early stop), after a warm-up
        fit.
    rows : int
        Training rows used (the first ones); 0 for all.
    warm_epochs : int
        Untimed ``partial_fit`` epochs before the timed ones (the first also
        compiles or loads the kernels).
    """

    data: str
    dtype: str
    batch_size: int
    hidden: int = 128
    solver: str = "sgd"
    fit_epochs: int = 0
    rows: int = 0
    warm_epochs: int = 1


WORKLOADS = {
    "mnist-f32-b32": Workload("mnist", "float32", 32),
    "mnist-f32-b128": Workload("mnist", "float32", 128),
    "mnist-f64-b128": Workload("mnist", "float64", 128),
    "scaled-f32-b32": Workload("mnist-scaled", "float32", 32),
    "scaled-f32-b128": Workload("mnist-scaled", "float32", 128),
    # Adam with an L2 penalty: weights of always-zero pixels become subnormal.
    "adam-f32-b32": Workload("mnist", "float32", 32, solver="adam", rows=10000,
                             warm_epochs=15),
    # Small data, many epochs: where a Python call per epoch shows.
    "digits-f64-fit": Workload("digits", "float64", 32, hidden=64, fit_epochs=100),
    "mnist-f32-fit": Workload("mnist", "float32", 128, fit_epochs=3),
}


@dataclass(frozen=True)
class Ablation:
    """One optimization switched off.

    Parameters
    ----------
    what : str
        The optimization, in a line.
    workloads : tuple of str
        Keys of :data:`WORKLOADS` it is measured on (the first ones its target).
    patch : str
        Name of the ``_patch_*`` function of this module applied in the
        variant's child before fastmlp's kernels are imported.
    recompiles : bool
        Whether the patch changes compiled code (own numba cache directory).
    random_state_object : bool
        The variant passes ``np.random.RandomState(0)`` instead of ``0``.
    threads : int
        1: the fit is held to one thread (``threadpool_limits(1)``; its parts
        run one after another) and timed in CPU seconds of the process, which
        other processes sharing the cores barely change. 0: the fit uses the
        threads it is allowed by default, timed in wall seconds.
    """

    what: str
    workloads: tuple
    patch: str = ""
    recompiles: bool = False
    random_state_object: bool = False
    threads: int = 1


ABLATIONS = {
    "tiles": Ablation("register tiles (and what needs them: rows read in place, zero-column "
                      "skipping, strip-major weights) vs BLAS gemm on a gathered batch",
                      ("mnist-f32-b32", "mnist-f32-b128", "mnist-f64-b128"), "_patch_tiles"),
    "zero-columns": Ablation("first-layer products skip the columns of X zero in a whole batch",
                             ("mnist-f32-b32", "mnist-f32-b128", "scaled-f32-b32",
                              "scaled-f32-b128"), "_patch_zero_columns"),
    "shuffle": Ablation("epochs shuffled inside the compiled call (many epochs per call) vs "
                        "RandomState.shuffle in Python and a call per epoch",
                        ("digits-f64-fit", "mnist-f32-fit"), random_state_object=True),
    "prefetch": Ablation("software prefetch (targets of the batch's rows, next batch's rows)",
                         ("mnist-f32-b32", "mnist-f32-b128"), "_patch_prefetch", recompiles=True),
    "reach-guard": Ablation("PREFETCH_REACH_STRIPS unwritten strips after each part's "
                            "strip-major gradient block", ("mnist-f32-b128", "mnist-f32-b32"),
                            "_patch_reach_guard", threads=0),
    "ftz": Ablation("flush-to-zero/denormals-are-zero around kernel calls",
                    ("adam-f32-b32", "mnist-f32-b128", "mnist-f64-b128"), "_patch_ftz"),
    "exp": Ablation("the kernels' branch-free exp/exp_float32 vs np.exp (libm, scalar)",
                    ("mnist-f32-b32", "mnist-f32-b128", "mnist-f64-b128", "digits-f64-fit"),
                    "_patch_exp", recompiles=True),
    "parts": Ablation("each batch split into KERNEL_PARTS parts run in threads vs one part",
                      ("mnist-f32-b32", "mnist-f32-b128"), "_patch_parts", threads=0),
    # Not optimizations: what more parts than threads cost (B / A below 1: they gain).
    "parts-4": Ablation("KERNEL_PARTS = 2 vs 4 parts on the same threads (the split a "
                        "machine with more cores would use)",
                        ("mnist-f32-b128", "mnist-f32-b32"), "_patch_parts_4", threads=0),
    "parts-8": Ablation("KERNEL_PARTS = 2 vs 8 parts on the same threads",
                        ("mnist-f32-b128", "mnist-f32-b32"), "_patch_parts_8", threads=0),
}


# ---- variants (applied in the child, before the kernels are imported) ------------------------
def _patch_tiles():
    from fastmlp import config
    config.TILED_PRODUCTS = False


def _patch_zero_columns():
    from fastmlp import config
    config.MIN_ZERO_COLUMN_INPUTS = 1 << 62


def _patch_reach_guard():
    from fastmlp.kernels import aligned
    aligned.PREFETCH_REACH_STRIPS = 0


def _patch_parts():
    from fastmlp import config
    config.KERNEL_PARTS = 1


def _patch_parts_4():
    from fastmlp import config
    config.KERNEL_PARTS = 4


def _patch_parts_8():
    from fastmlp import config
    config.KERNEL_PARTS = 8


def _patch_prefetch():
    from numba import types
    from numba.extending import intrinsic

    import fastmlp.kernels.prefetch as module

    @intrinsic
    def prefetch(typingctx, address):
        """No-op with the signature of ``fastmlp.kernels.prefetch.prefetch``."""
        if address != types.int64:
            return None
        return types.void(address), lambda context, builder, sig, args: (
            context.get_dummy_value())

    module.prefetch = prefetch
    return {"prefetch": prefetch}


def _patch_exp():
    from numba import njit

    import fastmlp.kernels.exp as module

    @njit(cache=True, nogil=True)
    def exp(x):
        """``np.exp`` of a float64 (numba: the C library's ``exp``)."""
        return np.exp(np.float64(x))

    @njit(cache=True, nogil=True)
    def exp_float32(x):
        """``np.exp`` of a float32 (numba: the C library's ``expf``)."""
        return np.exp(np.float32(x))

    module.exp = exp
    module.exp_float32 = exp_float32
    return {"exp": exp, "exp_float32": exp_float32}


_ENTERED = [0]


@contextlib.contextmanager
def _null_flush():
    _ENTERED[0] += 1
    yield


def _patch_ftz():
    import fastmlp.kernels.fpenv as module
    module.subnormals_flushed = _null_flush


# ---- child ----------------------------------------------------------------------------------
def _load(workload):
    """X, y of a workload, in its dtype."""
    from sklearn.preprocessing import StandardScaler

    if workload.data == "digits":
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        X = StandardScaler().fit_transform(X)
    else:
        from fastmlp.datasets import load_mnist
        X, y = load_mnist("train", dtype=np.float32, download=False)
        if workload.data == "mnist-scaled":
            X = StandardScaler().fit_transform(X)
    if workload.rows:
        X, y = X[:workload.rows], y[:workload.rows]
    return np.ascontiguousarray(X, dtype=workload.dtype), y


def _model(workload, random_state, max_iter):
    from fastmlp import FastMLPClassifier

    params = dict(SGD) if workload.solver == "sgd" else dict(solver="adam", alpha=1e-4,
                                                              activation="logistic")
    return FastMLPClassifier(hidden_layer_sizes=(workload.hidden,),
                             batch_size=workload.batch_size, dtype=workload.dtype,
                             backend="numba", random_state=random_state, max_iter=max_iter,
                             tol=0.0, n_iter_no_change=10 ** 6, **params)


def _probe(patched):
    """What the kernel modules hold, to show a patch took effect (or that none did)."""
    import fastmlp.kernels.exp
    import fastmlp.kernels.prefetch
    from fastmlp import config
    from fastmlp.kernels import aligned

    kernels = {name: mod for name, mod in sys.modules.items()
               if name.startswith("fastmlp.kernels.") and mod is not None}
    originals = {"prefetch": fastmlp.kernels.prefetch.prefetch,
                 "exp": fastmlp.kernels.exp.exp,
                 "exp_float32": fastmlp.kernels.exp.exp_float32}
    holders = {}
    for attr in ("prefetch", "exp", "exp_float32"):
        want = patched.get(attr, originals[attr])
        users = sorted(name for name, mod in kernels.items()
                       if name != f"fastmlp.kernels.{'exp' if 'exp' in attr else attr}"
                       and getattr(mod, attr, None) is not None)
        stale = [name for name in users if getattr(kernels[name], attr) is not want]
        holders[attr] = {"users": users, "stale": stale}
    return {"holders": holders, "TILED_PRODUCTS": config.TILED_PRODUCTS,
            "MIN_ZERO_COLUMN_INPUTS": config.MIN_ZERO_COLUMN_INPUTS,
            "KERNEL_PARTS": config.KERNEL_PARTS,
            "PREFETCH_REACH_STRIPS": aligned.PREFETCH_REACH_STRIPS,
            "null_flush_entered": _ENTERED[0]}


def _workspace_probe(trainers):
    """Parts, threads and zero-column buffer of the fit's trainer, where it exposes them."""
    if not trainers:
        return {}
    trainer = trainers[-1]
    ws = getattr(trainer, "work", None)
    info = {"n_parts": getattr(trainer, "n_parts", None)}
    for name in ("col_seen", "gbufs"):
        buf = getattr(ws, name, None)
        info[name] = None if buf is None else list(buf.shape)
    info["threads"] = max(getattr(trainer, "threads_seen", [None]), key=lambda t: t or 0)
    return info


def _fingerprint(model):
    digest = hashlib.sha256()
    for a in model.coefs_ + model.intercepts_:
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def _time_epochs(workload, X, y, epochs):
    model = _model(workload, 0, 1)
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.partial_fit(X, y, classes=np.unique(y))  # compiles or loads, first epoch
        for _ in range(workload.warm_epochs - 1):
            model.partial_fit(X, y)
        seconds = []
        for _ in range(epochs):
            tic = time.perf_counter(), time.process_time()
            model.partial_fit(X, y)
            seconds.append((time.perf_counter() - tic[0], time.process_time() - tic[1]))
    return seconds, model


def _time_fits(workload, X, y, fits, random_state_object):
    import warnings
    from sklearn.exceptions import ConvergenceWarning

    def fit():
        state = np.random.RandomState(0) if random_state_object else 0
        return _model(workload, state, workload.fit_epochs).fit(X, y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit()
        seconds = []
        for _ in range(fits):
            tic = time.perf_counter(), time.process_time()
            model = fit()
            seconds.append((time.perf_counter() - tic[0], time.process_time() - tic[1]))
    return seconds, model


def child(ablation_name, variant, workload_name, repeats):
    """Run one timed job in this process and print its result as one JSON line.

    Parameters
    ----------
    ablation_name : str
        Key of :data:`ABLATIONS`.
    variant : {"A", "B"}
        A: fastmlp as it is. B: the optimization switched off.
    workload_name : str
        Key of :data:`WORKLOADS`.
    repeats : int
        Timed epochs (or fits).
    """
    ablation = ABLATIONS[ablation_name]
    workload = WORKLOADS[workload_name]
    patched = {}
    if variant == "B" and ablation.patch:
        if "fastmlp.kernels.train" in sys.modules:
            raise RuntimeError("the kernels were imported before the patch")
        patched = globals()[ablation.patch]() or {}
    from fastmlp.engine import backends

    trainers = []
    make_trainer = backends.make_trainer

    def recording_make_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        threads_for_run = getattr(trainer, "threads_for_run", None)
        if threads_for_run is not None:
            trainer.threads_seen = []

            def recording_threads_for_run():
                trainer.threads_seen.append(threads_for_run())
                return trainer.threads_seen[-1]

            trainer.threads_for_run = recording_threads_for_run
        trainers.append(trainer)
        return trainer

    backends.make_trainer = recording_make_trainer
    X, y = _load(workload)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1) if ablation.threads == 1 else contextlib.nullcontext():
        if workload.fit_epochs:
            seconds, model = _time_fits(workload, X, y, repeats,
                                        variant == "B" and ablation.random_state_object)
        else:
            seconds, model = _time_epochs(workload, X, y, repeats)
    probe = _probe(patched)
    # Subnormal weights at the end: what flush-to-zero is about (0 with it on).
    probe["subnormal_coefs"] = int(sum(
        np.count_nonzero((c != 0) & (np.abs(c) < np.finfo(c.dtype).tiny)) for c in model.coefs_))
    print(json.dumps({"wall": [w for w, _ in seconds], "cpu": [c for _, c in seconds],
                      "fingerprint": _fingerprint(model),
                      "probe": probe, "workspace": _workspace_probe(trainers)}))


# ---- parent ---------------------------------------------------------------------------------
def cpu_model():
    """The CPU's model name (``lscpu``), with its vector extensions.

    Returns
    -------
    str
    """
    name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                    if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
        vec = "AVX-512" if "avx512f" in flags else ("AVX2+FMA" if "avx2" in flags else "SSE")
        return f"{name}, {vec}, {os.cpu_count()} CPUs"
    except (OSError, StopIteration):
        return name


def _spawn(ablation, variant, workload, repeats, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache,
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")]
                                                    if p]))
    if ABLATIONS[ablation].threads == 1:
        env["OMP_NUM_THREADS"] = "1"  # the BLAS limit fastmlp reads as the fit's cores
    out = subprocess.run([sys.executable, __file__, "--child", ablation, variant, workload,
                          str(repeats)], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"child {ablation} {variant} {workload} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cache_dir(root, name, variant):
    ablation = ABLATIONS[name]
    sub = f"{name}-B" if variant == "B" and ablation.recompiles else "plain"
    return os.path.join(root, sub)


def measure(name, workloads, rounds, repeats, cache_root, log=print):
    """Alternate A and B children ``rounds`` times on each workload.

    Parameters
    ----------
    name : str
        Key of :data:`ABLATIONS`.
    workloads : sequence of str
        Keys of :data:`WORKLOADS`.
    rounds : int
        Children per variant and workload.
    repeats : int
        Timed epochs (or fits) per child.
    cache_root : str
        Directory of the numba cache directories.
    log : callable
        Receives progress lines.

    Returns
    -------
    list of dict
        One per workload: times per round of A and B, probes, fingerprints.
    """
    metric = "cpu" if ABLATIONS[name].threads == 1 else "wall"
    results = []
    for workload in workloads:
        times = {"A": [], "B": []}
        fastest = {"A": [], "B": []}
        seen = {}
        for r in range(rounds):
            for variant in ("AB" if r % 2 == 0 else "BA"):
                res = _spawn(name, variant, workload, repeats,
                             _cache_dir(cache_root, name, variant))
                seconds = res[metric]
                times[variant].append(statistics.median(seconds))
                fastest[variant].append(min(seconds))
                seen[variant] = res
            log(f"  {name} {workload} round {r + 1}: A {times['A'][-1]:.4f} "
                f"B {times['B'][-1]:.4f}")
        results.append({"ablation": name, "workload": workload, "metric": metric,
                        "threads": ABLATIONS[name].threads or "default", "A": times["A"],
                        "B": times["B"], "A_fastest": fastest["A"], "B_fastest": fastest["B"],
                        "probe_A": seen["A"]["probe"],
                        "probe_B": seen["B"]["probe"], "workspace_A": seen["A"]["workspace"],
                        "workspace_B": seen["B"]["workspace"],
                        "same_bits": seen["A"]["fingerprint"] == seen["B"]["fingerprint"]})
    return results


def summary_line(result):
    """One Markdown table row: medians, ratio of medians and range of per-round ratios.

    Parameters
    ----------
    result : dict
        An element of :func:`measure`'s list.

    Returns
    -------
    str
    """
    a, b = result["A"], result["B"]
    ratios = [y / x for x, y in zip(a, b)]
    ma, mb = statistics.median(a), statistics.median(b)
    fa, fb = statistics.median(result["A_fastest"]), statistics.median(result["B_fastest"])
    return (f"| {result['ablation']} | {result['workload']} | {result['metric']} "
            f"| {result['threads']} | {ma:.4f} ({min(a):.4f}-{max(a):.4f})"
            f" | {mb:.4f} ({min(b):.4f}-{max(b):.4f}) | {mb / ma:.3f} | "
            f"{min(ratios):.3f}-{max(ratios):.3f} | {fb / fa:.3f} | "
            f"{'yes' if result['same_bits'] else 'no'} |")


HEADER = ("| ablation | workload | seconds | threads | A: with (s, median (range)) | B: without"
          " | B/A of medians | B/A per round | B/A of fastest | same bits |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
    """Command line: ``ablation.py NAME [NAME ...] [--rounds N] [--repeats N] [--json FILE]``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3], int(argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="ablations, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the ablations and exit")
    parser.add_argument("--exp-cost", action="store_true",
                        help="time the logistic loop with the kernels' exp and np.exp, and exit")
    parser.add_argument("--shuffle-cost", action="store_true",
                        help="time shuffling MNIST's indices against copying its rows, and exit")
    parser.add_argument("--workloads", help="comma-separated workloads (default: each one's own)")
    parser.add_argument("--rounds", type=int, default=5, help="children per variant and workload")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs or fits per child")
    parser.add_argument("--cache-dir", help="numba cache root, reused between runs "
                        "(default: a fresh temporary directory)")
    parser.add_argument("--json", help="append the results to this JSON-lines file")
    args = parser.parse_args(argv)
    if args.shuffle_cost or args.exp_cost:
        from _ablation_micro import exp_costs, shuffle_costs

        (shuffle_costs if args.shuffle_cost else exp_costs)()
        return
    if args.list or not args.names:
        for name, ablation in ABLATIONS.items():
            print(f"{name:14s} {ablation.what}\n{'':14s} "
                  f"workloads: {', '.join(ablation.workloads)}")
        return
    names = list(ABLATIONS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        parser.error(f"unknown ablation(s) {unknown}; choose from {sorted(ABLATIONS)} or 'all'")
    cache_root = args.cache_dir or tempfile.mkdtemp(prefix="fastmlp-ablation-")
    cpu = cpu_model()
    print(f"CPU: {cpu}\nrounds {args.rounds} x {args.repeats} timed per child; "
          f"numba cache root {cache_root}", flush=True)
    rows = []
    try:
        for name in names:
            workloads = (args.workloads.split(",") if args.workloads
                         else ABLATIONS[name].workloads)
            for result in measure(name, workloads, args.rounds, args.repeats, cache_root,
                                  log=lambda s: print(s, flush=True)):
                result["cpu"] = cpu
                rows.append(result)
                print(json.dumps({k: result[k] for k in ("probe_B", "workspace_A",
                                                          "workspace_B")}), flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(result) + "\n")
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache_root, ignore_errors=True)
    print(f"\nCPU: {cpu}\n{HEADER}")
    for result in rows:
        print(summary_line(result))


if __name__ == "__main__":
    main()
