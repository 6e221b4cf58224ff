"""pytest configuration of the benchmark suites: smoke vs full mode, shared data, GEMM rate.

Two modes, chosen by pytest-benchmark's own ``--benchmark-only`` flag:

* **smoke** (plain ``pytest``, the default): pytest-benchmark is disabled, so
  each benchmark's function runs exactly once, untimed, on small slices with
  few epochs; the suites then assert that what they computed is right (beats
  chance, libraries agree). This is what CI runs.
* **full** (``pytest benchmarks --benchmark-only``): full MNIST and real sizes,
  timed by pytest-benchmark over several rounds.

Nothing here changes how ``tests/`` runs: the switch only affects tests that
use the ``benchmark`` fixture.
"""

import os
from collections import defaultdict

import numpy as np
import pytest

from _benchkit import SMOKE_TEST_ROWS, SMOKE_TRAIN_ROWS, gemm_rate
from _machine import MachineCheck

_SMOKE = pytest.StashKey[bool]()
_GEMM = pytest.StashKey[dict]()

#: Default of ``--bench-quiet-wait``: longest wait for a quiet machine per benchmark.
QUIET_WAIT_S = 60.0


def pytest_addoption(parser):
    """``--bench-quiet-wait SECONDS``: bound of each checked benchmark's waits for quiet.

    Parameters
    ----------
    parser : pytest.Parser
        pytest's option parser.
    """
    parser.addoption(
        "--bench-quiet-wait", type=float, default=QUIET_WAIT_S, metavar="SECONDS",
        help="full mode: before each round, an epoch / digits / grid-search / JIT benchmark waits "
             "for the large-GEMM rate to be back at 90%% of the best reading so far, up to "
             f"SECONDS over all its rounds (default {QUIET_WAIT_S:g}; 0 never waits). See "
             "benchmarks/README.md.")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Choose the mode; in smoke mode disable pytest-benchmark's timing.

    Runs before pytest-benchmark's own ``pytest_configure`` (which is
    ``trylast`` and reads ``benchmark_disable`` to build its session), so
    setting the option is enough; the session attribute is set too in case
    this conftest was loaded after the session was built.

    Parameters
    ----------
    config : pytest.Config
        The pytest configuration.
    """
    smoke = not config.getoption("benchmark_only", default=False)
    config.stash[_SMOKE] = smoke
    if smoke:
        config.option.benchmark_disable = True
        session = getattr(config, "_benchmarksession", None)
        if session is not None:
            session.disabled = True


@pytest.fixture(scope="session")
def smoke(request):
    """True in smoke mode (no ``--benchmark-only``): small data, one untimed run each."""
    return request.config.stash[_SMOKE]


@pytest.fixture
def smoke_single_thread(smoke):
    """In smoke mode, limit BLAS to one thread for the test (full mode: no change).

    Smoke timings mean nothing, and multithreaded BLAS on a machine whose
    other core is busy (a shared CI or dev box) waits for descheduled threads
    at every small product: the smoke suites then ran up to 30 times slower.
    The thread count does not change any result (OpenBLAS never splits the
    summed dimension), so the smoke checks are unaffected. The suites opt in
    with ``pytestmark = pytest.mark.usefixtures("smoke_single_thread")``.
    """
    if not smoke:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class MNISTData:
    """MNIST train and test arrays in float32 and float64, sliced in smoke mode.

    Parameters
    ----------
    X_train, X_test : ndarray of float32
        Pixel rows in [0, 1].
    y_train, y_test : ndarray of int64
        Labels.
    """

    def __init__(self, X_train, y_train, X_test, y_test):
        self.y_train, self.y_test = y_train, y_test
        self._X = {
            "float32": (X_train, X_test),
            "float64": (X_train.astype(np.float64), X_test.astype(np.float64)),
        }

    def arrays(self, dtype):
        """Training and test data in one dtype.

        Parameters
        ----------
        dtype : {"float32", "float64"}
            Element type of X.

        Returns
        -------
        X_train, y_train, X_test, y_test : ndarray
        """
        X_train, X_test = self._X[np.dtype(dtype).name]
        return X_train, self.y_train, X_test, self.y_test


@pytest.fixture(scope="session")
def mnist(smoke):
    """MNIST from ``$FASTMLP_DATA``, loaded once per session (skips only when unavailable).

    Full mode: all 60000 training and 10000 test rows. Smoke mode: the first
    4096 training and 2000 test rows.
    """
    from fastmlp.datasets import load_mnist, mnist_available

    data_home = os.environ.get("FASTMLP_DATA")
    if not data_home:
        pytest.skip("FASTMLP_DATA is not set: point it at a directory with the four MNIST "
                    "IDX .gz files to run the MNIST benchmarks.")
    if not mnist_available(data_home):
        pytest.skip(f"MNIST files not found in FASTMLP_DATA={data_home!r}.")
    X, y = load_mnist("train", data_home=data_home, dtype=np.float32, download=False)
    X_test, y_test = load_mnist("test", data_home=data_home, dtype=np.float32, download=False)
    if smoke:
        X, y = X[:SMOKE_TRAIN_ROWS], y[:SMOKE_TRAIN_ROWS]
        X_test, y_test = X_test[:SMOKE_TEST_ROWS], y_test[:SMOKE_TEST_ROWS]
    return MNISTData(np.ascontiguousarray(X), y, np.ascontiguousarray(X_test), y_test)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's digits (1797 x 64), scaled to [0, 1], as float64 ``(X, y)``."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="session")
def gemm(request, smoke):
    """The machine's large-GEMM rate in GFLOP/s, measured once per session.

    For each dtype, NumPy's BLAS is timed with its default threads (all cores,
    key ``"<dtype>_all_threads"``) and limited to one thread (key
    ``"<dtype>_1thread"``, the reference for a single-threaded fit, as
    fastmlp's default ``config.BLAS_THREADS_PER_FIT = 1`` makes every fit).
    The machine's rate, key ``"<dtype>"``, is the better of the two: on a
    shared machine a busy second core can make two threads slower than one.
    Full mode: best of 5 products of 2048 x 2048 matrices (after one untimed
    product). Smoke mode: 512 x 512, best of 3 (placeholders; nothing is
    asserted on them).
    """
    from threadpoolctl import threadpool_limits

    n, repeats = (512, 3) if smoke else (2048, 5)
    rates = {}
    for dtype in ("float32", "float64"):
        rates[f"{dtype}_all_threads"] = gemm_rate(n, dtype, repeats)
        with threadpool_limits(limits=1, user_api="blas"):
            rates[f"{dtype}_1thread"] = gemm_rate(n, dtype, repeats)
        rates[dtype] = max(rates[f"{dtype}_all_threads"], rates[f"{dtype}_1thread"])
    request.config.stash[_GEMM] = {"n": n, **rates}
    return rates


@pytest.fixture(scope="session")
def machine_check(request, smoke, gemm):
    """The :class:`_machine.MachineCheck` of the timed suites; None in smoke mode."""
    if smoke:
        return None
    try:
        return MachineCheck(gemm, request.config.getoption("bench_quiet_wait"))
    except ValueError as exc:
        raise pytest.UsageError(f"--bench-quiet-wait: {exc}") from None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Add the GEMM rates, thread pools, library versions and the mode to the JSON.

    Parameters
    ----------
    config : pytest.Config
        The pytest configuration.
    machine_info : dict
        pytest-benchmark's machine information, updated in place.
    """
    import numba
    import sklearn
    from threadpoolctl import threadpool_info

    import fastmlp

    machine_info["fastmlp_bench"] = {
        "smoke": config.stash.get(_SMOKE, None),
        "gemm_gflops": config.stash.get(_GEMM, None),
        "quiet_wait_s": config.getoption("bench_quiet_wait", default=None),
        "cpu_count": os.cpu_count(),
        "threadpools": [{k: pool.get(k) for k in ("internal_api", "num_threads", "version")}
                        for pool in threadpool_info()],
        "versions": {"fastmlp": fastmlp.__version__, "numpy": np.__version__,
                     "numba": numba.__version__, "sklearn": sklearn.__version__,
                     "torch": _torch_version()},
    }


def _torch_version():
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


_SIMPLE_GROUPINGS = {
    "group": lambda b: b["group"],
    "name": lambda b: b["name"],
    "func": lambda b: b["name"].split("[")[0],
    "fullname": lambda b: b["fullname"],
    "fullfunc": lambda b: b["fullname"].split("[")[0],
    "param": lambda b: b["param"],
}


def pytest_benchmark_group_stats(config, benchmarks, group_by):
    """Group like pytest-benchmark, but ``param:NAME`` keeps the suites apart.

    The built-in ``param:NAME`` grouping fails (KeyError) on benchmarks without
    that parameter, and would put the 784-128-10 and the deeper network's
    epochs of one batch size in the same group. Here ``param:NAME`` groups by
    the benchmark's ``group`` (the suite) and then by the parameter when the
    benchmark has it, so ``--benchmark-group-by=param:batch_size`` shows one
    table per suite and batch size, and suites without a batch size keep one
    table each. Other groupings behave as the built-in ones.

    Parameters
    ----------
    config : pytest.Config
        The pytest configuration.
    benchmarks : list of dict
        Benchmark results.
    group_by : str
        The ``--benchmark-group-by`` value.

    Returns
    -------
    groups : list of (str or None, list of dict)
    """
    parts = group_by.split(",")
    groups = defaultdict(list)
    for bench in benchmarks:
        key = []
        for part in parts:
            if part in _SIMPLE_GROUPINGS:
                key.append(_SIMPLE_GROUPINGS[part](bench))
            elif part.startswith("param:"):
                name = part[len("param:"):]
                params = bench.get("params") or {}
                if "group" not in parts:
                    key.append(bench["group"])
                if name in params:
                    key.append(f"{name}={params[name]}")
            else:
                raise NotImplementedError(f"Unsupported grouping {group_by!r}.")
        groups[" ".join(str(k) for k in key if k) or None].append(bench)
    for members in groups.values():
        members.sort(key=lambda b: b["fullname" if "full" in group_by else "name"])
    return sorted(groups.items(), key=lambda pair: pair[0] or "")
