"""JIT cost: ``import`` + first ``fit`` in a fresh Python process.

Four cases, each a new interpreter per round:

* ``fastmlp-cold``: ``backend='numba'`` and ``NUMBA_CACHE_DIR`` a new, empty
  directory, so every kernel a fit on the kernels needs is compiled (what a
  first-time user waits once a fit is large enough for them);
* ``fastmlp-warm-kernels``: ``backend='numba'`` with that directory again,
  already filled by a cold run, so the kernels are loaded from the cache
  (every later session);
* ``fastmlp-warm``: the default ``backend='auto'``, which runs a fit this
  small on NumPy without importing numba (``extra_info['backend']``);
* ``sklearn``: scikit-learn's own MLPClassifier, for comparison.

The timed value is the whole process; ``extra_info`` splits it into the
import and the first fit as measured inside the process. Targets (issue 7,
reported, never asserted): warm fastmlp within 1.3x of scikit-learn, cold
compile under 20 s.

:func:`test_cold_compile_per_path` reports the cold compile of each entry
path (:data:`PATHS`: the kernels one kind of fit compiles, fit and predict):
the median over fresh caches of the process's fit + predict, minus the
median with the filled cache (issue 28's measure; reported, never asserted).
"""

import json
import os
import statistics
import subprocess
import sys

import pytest

from _machine import pedantic

#: Import + tiny float64 fit (the dtype of a plain NumPy user), timed inside the process.
SCRIPT = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
if sys.argv[1] == "fastmlp":
    from fastmlp import FastMLPClassifier as Estimator
    backend = {"backend": sys.argv[2]}
else:
    from sklearn.neural_network import MLPClassifier as Estimator
    backend = {}
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.random((200, 64))
y = rng.integers(0, 3, 200)
warnings.simplefilter("ignore")
model = Estimator(hidden_layer_sizes=(16,), activation="logistic", solver="sgd",
                  batch_size=32, max_iter=5, random_state=0, **backend).fit(X, y)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_fit_s": t2 - t1, "loss": model.loss_,
                  "backend": getattr(model, "backend_", None)}))
"""


#: The entry paths of :func:`test_cold_compile_per_path`: the estimator's
#: parameters and the data's (rows, columns, dtype) of a fit + predict on the kernels.
PATHS = {
    "float64-adam-relu": ({}, (400, 64, "float64")),
    "float32-sgd-logistic": ({"hidden_layer_sizes": (128,), "activation": "logistic",
                              "solver": "sgd", "batch_size": 32, "dtype": "float32"},
                             (400, 784, "float32")),
}
#: Fresh caches per path in full mode (their median is reported).
PATH_ROUNDS = 3

#: A fit + predict of one :data:`PATHS` entry (argv: it as JSON), timed inside the process.
PATH_SCRIPT = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
from fastmlp import FastMLPClassifier
params, (n_rows, n_columns, dtype) = json.loads(sys.argv[1])
if "hidden_layer_sizes" in params:
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
rng = np.random.default_rng(0)
X = rng.random((n_rows, n_columns)).astype(dtype)
y = rng.integers(0, 10, n_rows)
warnings.simplefilter("ignore")
t1 = time.perf_counter()
model = FastMLPClassifier(backend="numba", max_iter=3, random_state=0, **params).fit(X, y)
model.predict(X)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "fit_predict_s": t2 - t1, "loss": model.loss_}))
"""


def auto_choice():
    """The backend fastmlp's default ``backend='auto'`` picks for :data:`SCRIPT`'s fit."""
    import numpy as np

    from fastmlp import FastMLPClassifier

    X = np.random.default_rng(0).random((200, 64))
    return FastMLPClassifier(hidden_layer_sizes=(16,), activation="logistic", solver="sgd",
                             batch_size=32, max_iter=5)._fit_backend(X, incremental=False)


def reference_loss():
    """Final loss of :data:`SCRIPT`'s fit done in this process by scikit-learn."""
    import warnings

    import numpy as np
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.random((200, 64))
    y = rng.integers(0, 3, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=(16,), activation="logistic", solver="sgd",
                             batch_size=32, max_iter=5, random_state=0).fit(X, y).loss_


#: case: (library, Numba cache, fastmlp backend)
CASES = {"fastmlp-cold": ("fastmlp", "cold", "numba"),
         "fastmlp-warm-kernels": ("fastmlp", "warm", "numba"),
         "fastmlp-warm": ("fastmlp", "warm", "auto"), "sklearn": ("sklearn", None, None)}
#: Rounds in full mode (a cold round compiles everything: ~10-30 s).
ROUNDS = {"fastmlp-cold": 2, "fastmlp-warm-kernels": 5, "fastmlp-warm": 5, "sklearn": 5}


def run_fresh_process(lib, cache_dir, backend="numba"):
    """Run :data:`SCRIPT` in a new interpreter and return its measurements.

    Parameters
    ----------
    lib : {"fastmlp", "sklearn"}
        What to import and fit.
    cache_dir : pathlib.Path or None
        ``NUMBA_CACHE_DIR`` of the child (None: inherited).
    backend : str, default="numba"
        fastmlp's ``backend`` parameter (ignored for scikit-learn).

    Returns
    -------
    info : dict
        ``import_s``, ``first_fit_s``, the fitted model's ``loss`` and the
        backend it ran on (``backend_``; None for scikit-learn).
    """
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    done = subprocess.run([sys.executable, "-c", SCRIPT, lib, str(backend)], env=env, capture_output=True,
                          text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


#: The cache directory of the last cold run, reused as the warm cache (saves a compile).
_FILLED_CACHE = {}


@pytest.fixture(scope="module")
def warm_cache_dir(tmp_path_factory):
    """A filled Numba cache directory: the cold case's, or one filled by an untimed cold run."""
    if "dir" in _FILLED_CACHE:
        return _FILLED_CACHE["dir"]
    path = tmp_path_factory.mktemp("numba_cache_warm")
    run_fresh_process("fastmlp", path)
    return path


@pytest.mark.slow
@pytest.mark.benchmark(group="jit import+first-fit")
@pytest.mark.parametrize("case", list(CASES))
def test_import_and_first_fit(benchmark, case, request, smoke, tmp_path_factory,
                              machine_check):
    """Wall time of a fresh process that imports the library and fits a tiny model once."""
    lib, cache, backend = CASES[case]
    if cache == "cold":
        def setup():
            return (lib, tmp_path_factory.mktemp("numba_cache_cold")), {}
    else:
        cache_dir = request.getfixturevalue("warm_cache_dir") if cache == "warm" else None

        def setup():
            return (lib, cache_dir), {}
    runs = []

    def run(lib, cache_dir):
        runs.append(run_fresh_process(lib, cache_dir, backend))
        if cache == "cold":
            _FILLED_CACHE["dir"] = cache_dir
        return runs[-1]

    pedantic(benchmark, machine_check, "float32", run, setup, 1 if smoke else ROUNDS[case])
    best = {key: min(r[key] for r in runs) for key in ("import_s", "first_fit_s")}
    benchmark.extra_info.update(case=case, lib=lib, numba_cache=cache, backend=runs[-1]["backend"],
                                rounds=len(runs), smoke=bool(smoke),
                                import_plus_fit_s=best["import_s"] + best["first_fit_s"],
                                **best)
    # The cold (and warm) path must not only run but compute the right thing:
    # fastmlp's trajectory equals scikit-learn's to rounding in float64.
    expected = reference_loss()
    for r in runs:
        assert r["loss"] == pytest.approx(expected, rel=1e-9)
        # The cases measure what they say: the kernels where asked for, and
        # for 'auto' the backend it picks for this fit in this process too.
        assert r["backend"] == (None if lib == "sklearn" else
                                backend if backend == "numba" else auto_choice())



def run_path(path, cache_dir):
    """Run :data:`PATH_SCRIPT` for ``path`` in a new interpreter with ``NUMBA_CACHE_DIR=cache_dir``.

    Parameters
    ----------
    path : str
        A key of :data:`PATHS`.
    cache_dir : pathlib.Path
        The child's Numba cache directory.

    Returns
    -------
    info : dict
        ``import_s``, ``fit_predict_s`` and the fitted model's ``loss``.
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", PATH_SCRIPT, json.dumps(PATHS[path])], env=env,
                          capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.benchmark(group="jit cold compile per path")
@pytest.mark.parametrize("path", list(PATHS))
def test_cold_compile_per_path(benchmark, path, smoke, tmp_path_factory, machine_check):
    """Cold compile of one entry path: median fit + predict over fresh caches, minus warm.

    The timed rounds are the cold processes, each with a new, empty cache;
    the warm processes reuse the last one. ``extra_info['cold_minus_warm_s']``
    is what a first fit of this kind waits for its compile.
    """
    rounds = 1 if smoke else PATH_ROUNDS
    colds = []

    def setup():
        return (tmp_path_factory.mktemp("numba_cache_path"),), {}

    def run(cache_dir):
        colds.append((run_path(path, cache_dir), cache_dir))
        return colds[-1][0]

    pedantic(benchmark, machine_check, PATHS[path][1][2], run, setup, rounds)
    warms = [run_path(path, colds[-1][1]) for _ in range(rounds)]
    cold_s = statistics.median(r["fit_predict_s"] for r, _ in colds)
    warm_s = statistics.median(r["fit_predict_s"] for r in warms)
    benchmark.extra_info.update(path=path, rounds=rounds, smoke=bool(smoke),
                                cold_fit_predict_s=[r["fit_predict_s"] for r, _ in colds],
                                warm_fit_predict_s=[r["fit_predict_s"] for r in warms],
                                cold_median_s=cold_s, warm_median_s=warm_s,
                                cold_minus_warm_s=cold_s - warm_s)
    # Cold and warm processes ran the same fit: the cache changes no bit of it.
    losses = {r["loss"] for r, _ in colds} | {r["loss"] for r in warms}
    assert len(losses) == 1, losses
