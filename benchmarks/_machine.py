"""The machine check of the timed suites: is the host as fast as when the session began?

On a shared host another tenant can take a core for tens of seconds at a
time; a large GEMM then runs at half to three quarters of its rate, long
enough to cover all of one library's rounds and none of the next's. Each
timed benchmark therefore measures the GEMM rate just before and just after
its rounds (``report.py`` flags those where either reading is low), and
before its rounds waits, for a bounded time, until the rate has come back.
The wait treats every library alike; its length is recorded.
"""

import time

from _benchkit import gemm_rate
from report import DISTURBED

#: Side of the square products of one check (best of :data:`CHECK_REPEATS`).
CHECK_GEMM_SIZE = 2048
CHECK_REPEATS = 3
#: Seconds between two checks while waiting for the machine to be quiet.
QUIET_PAUSE_S = 5.0


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


class MachineCheck:
    """Large-GEMM readings around a benchmark's rounds, with a bounded wait for quiet.

    Parameters
    ----------
    reference : dict
        The session's large-GEMM rates in GFLOP/s keyed by dtype name (the
        ``gemm`` fixture); copied, and raised by any better reading.
    max_wait : float
        Longest wait, in seconds, for the rate to reach ``DISTURBED`` times the
        reference before the rounds start anyway (0: never wait).
    rate : callable, default=check_rate
        ``rate(dtype) -> GFLOP/s``.
    pause : float, default=QUIET_PAUSE_S
        Seconds between readings while waiting.
    clock, sleep : callable
        Time source and sleep (replaceable in tests).
    """

    def __init__(self, reference, max_wait, rate=check_rate, pause=QUIET_PAUSE_S,
                 clock=time.monotonic, sleep=time.sleep):
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait!r}.")
        # A copy raised to every better reading: the session's first measurement
        # may itself have been taken on a busy host (report.session_reference).
        self.reference = dict(reference)
        self.max_wait = max_wait
        self.rate = rate
        self.pause = pause
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

    def quiet(self, dtype):
        """Read the rate until it is at least ``DISTURBED`` × reference, or time is up.

        Parameters
        ----------
        dtype : str
            Element type of the products (a key of ``reference``).

        Returns
        -------
        gflops : float
            The last reading (the "before" of the rounds).
        waited_s : float
            Seconds spent waiting beyond the first reading.
        """
        start = self.clock()
        gflops = self.read(dtype)
        while (gflops < DISTURBED * self.reference[dtype]
               and self.clock() - start + self.pause <= self.max_wait):
            self.sleep(self.pause)
            gflops = self.read(dtype)
        return gflops, self.clock() - start

    def around(self, benchmark, dtype, run):
        """Wait for quiet, call ``run()``, and record both readings in ``extra_info``.

        Parameters
        ----------
        benchmark : pytest_benchmark.fixture.BenchmarkFixture
            Gets ``extra_info["gemm_check_gflops"] = [before, after]`` and
            ``extra_info["quiet_wait_s"]``.
        dtype : str
            Element type of the check's products.
        run : callable
            Runs the timed rounds.

        Returns
        -------
        result : object
            What ``run()`` returned.
        """
        before, waited = self.quiet(dtype)
        result = run()
        benchmark.extra_info["gemm_check_gflops"] = [before, self.read(dtype)]
        benchmark.extra_info["quiet_wait_s"] = waited
        return result
