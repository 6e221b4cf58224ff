"""Timing of the suites' rounds, and the machine check: is the host at its full speed?

On a shared host another tenant can take a core for tens of seconds at a
time; a large GEMM then runs at half to three quarters of its rate, long
enough to cover all of one library's rounds and none of the next's. Each
timed benchmark therefore reads the GEMM rate before every round and after
the last (so every round lies between two readings), and before a round
waits, for a bounded time per benchmark, until the rate has come back.
``report.py`` flags a benchmark whose fastest round has a low reading on
either side. Every library is checked and waits alike; the waits are
recorded.
"""

import time

import numpy as np
from report import DISTURBED

from fastmlp.bench.run import SETTLE_SECONDS
from fastmlp.bench.run import gemm_rate as bench_gemm_rate

#: Side of the square products of one check (best of :data:`CHECK_REPEATS`).
CHECK_GEMM_SIZE = 2048
CHECK_REPEATS = 3
#: Seconds between two checks while waiting for the machine to be quiet.
QUIET_PAUSE_S = 5.0


def gemm_rate(n, dtype, repeats):
    """Best-of-``repeats`` GFLOP/s of an ``n``-cubed NumPy matrix product.

    Parameters
    ----------
    n : int
        Side of the square matrices.
    dtype : str or numpy dtype
        Element type.
    repeats : int
        Timed products after one untimed one (which starts the BLAS threads).

    Returns
    -------
    gflops : float
    """
    return bench_gemm_rate(n, np.dtype(dtype).type, repeats)[0] / 1e9


def check_rate(dtype):
    """Best-of-3 GFLOP/s of a ``2048``-cubed NumPy product (all BLAS threads).

    Parameters
    ----------
    dtype : str or numpy dtype
        Element type.

    Returns
    -------
    gflops : float
    """
    return gemm_rate(CHECK_GEMM_SIZE, dtype, CHECK_REPEATS)


class RoundTimer:
    """Wraps the timed function and keeps its own wall time of every call.

    pytest-benchmark has no statistics when it is disabled (smoke mode), so the
    derived rates in ``extra_info`` use these times in both modes; with timing
    on they agree with pytest-benchmark's to within microseconds.
    """

    def __init__(self):
        self.times = []

    def wrap(self, fn):
        """Return ``fn`` with its wall time appended to :attr:`times` on every call.

        Parameters
        ----------
        fn : callable
            The timed function.

        Returns
        -------
        wrapped : callable
        """
        def timed(*args, **kwargs):
            tic = time.perf_counter()
            result = fn(*args, **kwargs)
            self.times.append(time.perf_counter() - tic)
            return result
        return timed

    @property
    def best(self):
        """Fastest call, in seconds (pytest-benchmark's ``min``)."""
        return min(self.times)


class MachineCheck:
    """Large-GEMM readings around every round of a benchmark, with a bounded wait for quiet.

    Parameters
    ----------
    reference : dict
        The session's large-GEMM rates in GFLOP/s keyed by dtype name (the
        ``gemm`` fixture); copied, and raised by any better reading.
    max_wait : float
        Longest wait, in seconds over all rounds of one benchmark, for the
        rate to reach ``DISTURBED`` times the reference before a round starts
        anyway (0: never wait).
    rate : callable, default=check_rate
        ``rate(dtype) -> GFLOP/s``.
    pause : float, default=QUIET_PAUSE_S
        Seconds between readings while waiting.
    settle : float, default=fastmlp.bench.run.SETTLE_SECONDS
        Pause after a reading before the round starts: OpenBLAS's threads spin
        for about 0.1 s after a threaded product and would slow the round.
    clock, sleep : callable
        Time source and sleep (replaceable in tests).
    """

    def __init__(self, reference, max_wait, rate=check_rate, pause=QUIET_PAUSE_S,
                 settle=SETTLE_SECONDS, clock=time.monotonic, sleep=time.sleep):
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait!r}.")
        # A copy raised to every better reading: the session's first measurement
        # may itself have been taken on a busy host (report.session_reference).
        self.reference = dict(reference)
        self.max_wait = max_wait
        self.rate = rate
        self.pause = pause
        self.settle = settle
        self.clock = clock
        self.sleep = sleep

    def read(self, dtype):
        """One reading of the rate; raises the reference when it is better.

        Parameters
        ----------
        dtype : str
            Element type of the products (a key of ``reference``).

        Returns
        -------
        gflops : float
        """
        gflops = self.rate(dtype)
        self.reference[dtype] = max(self.reference[dtype], gflops)
        return gflops

    def quiet(self, dtype, budget=None):
        """Read the rate until it is at least ``DISTURBED`` x reference, or time is up.

        Parameters
        ----------
        dtype : str
            Element type of the products (a key of ``reference``).
        budget : float, optional
            Longest wait in seconds (default ``max_wait``).

        Returns
        -------
        gflops : float
            The last reading.
        waited_s : float
            Seconds from the end of the first reading to the end of the last
            (0 when the first is quiet).
        """
        budget = self.max_wait if budget is None else budget
        start = self.clock()
        gflops = self.read(dtype)
        first = self.clock()
        while (gflops < DISTURBED * self.reference[dtype]
               and self.clock() - start + self.pause <= budget):
            self.sleep(self.pause)
            gflops = self.read(dtype)
        return gflops, self.clock() - first

    def pedantic(self, benchmark, dtype, fn, setup, rounds):
        """``benchmark.pedantic`` with a reading before every round and after the last.

        Before each round (in pytest-benchmark's untimed ``setup``) the check
        waits for quiet within what is left of ``max_wait``, then pauses
        ``settle`` seconds.

        Parameters
        ----------
        benchmark : pytest_benchmark.fixture.BenchmarkFixture
            Gets ``extra_info["gemm_check_gflops"]`` (rounds + 1 readings:
            round i ran between readings i and i + 1), ``["gemm_check_dtype"]``,
            ``["round_seconds"]`` and ``["quiet_wait_s"]``.
        dtype : str
            Element type of the check's products.
        fn : callable
            The timed function.
        setup : callable
            pytest-benchmark's setup, returning ``(args, kwargs)`` of ``fn``.
        rounds : int
            Timed rounds (one call each).

        Returns
        -------
        result : object
            What the last call of ``fn`` returned.
        """
        readings, waited = [], [0.0]
        deadline = self.clock() + self.max_wait

        def checked_setup():
            gflops, w = self.quiet(dtype, max(0.0, deadline - self.clock()))
            readings.append(gflops)
            waited[0] += w
            self.sleep(self.settle)
            return setup()

        timer = RoundTimer()
        result = benchmark.pedantic(timer.wrap(fn), setup=checked_setup, rounds=rounds,
                                    iterations=1)
        readings.append(self.read(dtype))
        benchmark.extra_info.update(gemm_check_gflops=readings, gemm_check_dtype=dtype,
                                    round_seconds=timer.times, quiet_wait_s=waited[0])
        return result


def pedantic(benchmark, machine_check, dtype, fn, setup, rounds):
    """The timed rounds of a suite: checked (full mode) or plain (smoke mode).

    Parameters
    ----------
    benchmark : pytest_benchmark.fixture.BenchmarkFixture
        The fixture.
    machine_check : MachineCheck or None
        None: ``benchmark.pedantic`` alone.
    dtype : str
        Element type of the check's products.
    fn, setup, rounds
        As in :meth:`MachineCheck.pedantic` (one iteration per round).

    Returns
    -------
    result : object
        What the last call of ``fn`` returned.
    """
    if machine_check is None:
        return benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1)
    return machine_check.pedantic(benchmark, dtype, fn, setup, rounds)
