"""The machine check: bounded wait for a quiet host, readings recorded, report notes."""

import pytest

import report
from _machine import MachineCheck

REFERENCE = {"float32": 180.0}


class FakeHost:
    """GEMM readings from a list; each reading takes 0.5 s of a fake clock, sleeps advance it."""

    def __init__(self, readings):
        self.readings = list(readings)
        self.now = 0.0
        self.sleeps = []

    def rate(self, dtype):
        assert dtype == "float32"
        self.now += 0.5
        return self.readings.pop(0)

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def check(host, max_wait):
    return MachineCheck(REFERENCE, max_wait, rate=host.rate, pause=5.0, clock=host.clock,
                        sleep=host.sleep)


def test_quiet_host_is_read_once():
    host = FakeHost([175.0])
    assert check(host, 60).quiet("float32") == (175.0, 0.5)
    assert host.sleeps == []


def test_waits_until_the_rate_is_back():
    # 0.9 x 180 = 162: the first two readings are a busy host, the third is quiet.
    host = FakeHost([120.0, 161.9, 170.0, 100.0])
    gflops, waited = check(host, 60).quiet("float32")
    assert gflops == 170.0
    assert host.sleeps == [5.0, 5.0]
    assert waited == pytest.approx(3 * 0.5 + 2 * 5.0)
    assert host.readings == [100.0]


def test_gives_up_after_max_wait():
    host = FakeHost([100.0] * 100)
    gflops, waited = check(host, 20).quiet("float32")
    assert gflops == 100.0
    assert waited <= 20
    assert len(host.sleeps) == 3  # a 4th pause would end past 20 s (3 x 5.5 + 0.5 + 5)


def test_zero_wait_never_sleeps():
    host = FakeHost([100.0, 100.0])
    assert check(host, 0).quiet("float32") == (100.0, 0.5)
    assert host.sleeps == []


def test_negative_wait_is_refused():
    with pytest.raises(ValueError, match="max_wait must be >= 0"):
        MachineCheck(REFERENCE, -1)


class FakeBenchmark:
    def __init__(self):
        self.extra_info = {}


def test_around_records_both_readings():
    host = FakeHost([150.0, 178.0, 140.0])
    bench = FakeBenchmark()
    calls = []
    result = check(host, 60).around(bench, "float32", lambda: calls.append(host.now) or "done")
    assert result == "done"
    assert calls == [6.0]  # after the wait: two readings and one pause
    assert bench.extra_info == {"gemm_check_gflops": [178.0, 140.0], "quiet_wait_s": 6.0}


def _bench(group, lib, before, after, waited):
    return {"group": group, "name": f"test_digits_fit[{lib}]",
            "stats": {"min": 1.0, "median": 1.0, "mean": 1.0, "rounds": 5},
            "extra_info": {"lib": lib, "dtype": "float64", "gemm_check_gflops": [before, after],
                           "quiet_wait_s": waited, "batch_size": 32, "epochs": 100,
                           "layers": "64-64-10", "n_samples": 1347, "test_accuracy": 0.97,
                           "gflops": 1.0, "seconds": 1.0, "gemm_gflops": 90.0}}


def test_report_names_the_disturbed_benchmarks():
    doc = {"machine_info": {"fastmlp_bench": {"gemm_gflops": {"float64": 90.0}}},
           "benchmarks": [_bench("digits-fit 64-64-10", "numba", 88.0, 85.0, 12.0),
                          _bench("digits-fit 64-64-10", "sklearn", 88.0, 70.0, 3.0)]}
    text = report.render(doc)
    assert "after waiting 15 s in all" in text
    assert "below that for sklearn (88 / 70 GFLOP/s)." in text
    assert "numba (" not in text


def test_a_better_reading_raises_the_reference():
    # Session start measured on a busy host (100); a later reading of 200 is the
    # machine's rate, so 170 (< 0.9 x 200) counts as busy afterwards.
    host = FakeHost([200.0, 170.0, 185.0])
    machine = MachineCheck({"float32": 100.0}, 60, rate=host.rate, clock=host.clock,
                           sleep=host.sleep)
    assert machine.quiet("float32")[0] == 200.0
    assert machine.quiet("float32")[0] == 185.0
    assert host.sleeps == [5.0]
    assert machine.reference == {"float32": 200.0}


def test_report_takes_the_best_reading_of_the_session_as_reference():
    bench = _bench("digits-fit 64-64-10", "numba", 88.0, 120.0, 0.0)
    bench["extra_info"].update(gemm_fraction=1.0 / 90.0, gemm_gflops=90.0)
    doc = {"machine_info": {"fastmlp_bench": {"gemm_gflops": {"float64": 90.0}}},
           "benchmarks": [bench]}
    assert report.session_reference(doc) == {"float64": 120.0}
    text = report.render(doc)
    assert "float64 120.0 GFLOP/s." in text
    assert "| 1.0 (0.8 %) |" in text  # 1 GFLOP/s of 120, not of the start's 90
    assert "numba (88 / 120 GFLOP/s)" in text
    assert bench["extra_info"]["gemm_gflops"] == 90.0  # the document is not modified
