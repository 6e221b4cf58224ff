"""Microbenchmarks behind two entries of docs/design.md (ablation.py --exp-cost, --shuffle-cost).

Costs too small, or not about the kernels at all, for the whole-epoch A/B of
:mod:`ablation` to resolve on a shared host: the activation loop with and
without the kernels' ``exp``, and shuffling indices against copying rows.
"""

import statistics
import time

import numpy as np

from ablation import cpu_model


def shuffle_costs(repeats=7):
    """CPU seconds per MNIST epoch of shuffling row indices against copying X in that order.

    What shuffling indices (all fastmlp does, in the kernel or in Python)
    saves over materialising the shuffled X that a gathering trainer reads.

    Parameters
    ----------
    repeats : int
        Timings of each; the fastest and the median are printed.
    """
    from fastmlp.datasets import load_mnist

    X, _ = load_mnist("train", dtype=np.float32, download=False)
    order = np.arange(X.shape[0])
    state = np.random.RandomState(0)

    def cpu(fn):
        times = []
        for _ in range(repeats):
            tic = time.process_time()
            fn()
            times.append(time.process_time() - tic)
        return f"fastest {min(times) * 1e3:.2f} ms, median {statistics.median(times) * 1e3:.2f} ms"

    print(f"CPU: {cpu_model()}")
    print(f"RandomState.shuffle of {X.shape[0]} indices: {cpu(lambda: state.shuffle(order))}")
    for dtype in ("float32", "float64"):
        Xd = X.astype(dtype)
        out = np.empty_like(Xd)
        print(f"X rows copied in that order ({dtype}, np.take into a buffer): "
              f"{cpu(lambda: np.take(Xd, order, axis=0, out=out))}")


def exp_costs(rounds=7, reps=200):
    """ns per value of the kernels' logistic loop with their ``exp`` and with ``np.exp``.

    The loop is the kernels' float32 and float64 logistic, ``1 / (1 + exp(-v))``
    in place over 128 x 64 values (a part's first-layer activations at batch
    128), compiled here; the four loops alternate over ``rounds`` rounds and
    the fastest and median CPU times are printed.

    Parameters
    ----------
    rounds : int
        Alternating rounds.
    reps : int
        Passes over the values per timing.
    """
    from numba import njit

    from fastmlp.kernels.exp import exp, exp_float32

    def logistic(fn, dtype):
        one = dtype(1.0)

        @njit(nogil=True, error_model="numpy")
        def loop(v, reps):
            for _ in range(reps):
                for j in range(v.size):
                    v[j] = one / (one + fn(-v[j]))
        return loop

    loops = {"float32, kernels' exp_float32": (logistic(exp_float32, np.float32), np.float32),
             "float32, np.exp": (logistic(np.exp, np.float32), np.float32),
             "float64, kernels' exp": (logistic(exp, np.float64), np.float64),
             "float64, np.exp": (logistic(np.exp, np.float64), np.float64)}
    values = np.random.default_rng(0).normal(size=128 * 64)
    times = {name: [] for name in loops}
    for loop, dtype in loops.values():
        loop(values.astype(dtype), 1)  # compile
    for _ in range(rounds):
        for name, (loop, dtype) in loops.items():
            v = values.astype(dtype)
            tic = time.process_time()
            loop(v, reps)
            times[name].append((time.process_time() - tic) / (reps * v.size) * 1e9)
    print(f"CPU: {cpu_model()}")
    for name, ns in times.items():
        print(f"logistic, {name}: fastest {min(ns):.2f} ns per value, "
              f"median {statistics.median(ns):.2f}")
