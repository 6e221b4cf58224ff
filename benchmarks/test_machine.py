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
    assert check(host, 60).quiet("float32") == (175.0, 0.0)
    assert host.sleeps == []


def test_waits_until_the_rate_is_back():
    # 0.9 x 180 = 162: the first two readings are a busy host, the third is quiet.
    host = FakeHost([120.0, 161.9, 170.0, 100.0])
    gflops, waited = check(host, 60).quiet("float32")
    assert gflops == 170.0
    assert host.sleeps == [5.0, 5.0]
    assert waited == pytest.approx(2 * 5.0 + 2 * 0.5)  # after the first reading
    assert host.readings == [100.0]


def test_gives_up_after_max_wait():
    host = FakeHost([100.0] * 100)
    gflops, waited = check(host, 20).quiet("float32")
    assert gflops == 100.0
    assert waited <= 20
    assert len(host.sleeps) == 3  # a 4th pause would end past 20 s (3 x 5.5 + 0.5 + 5)


def test_zero_wait_never_sleeps():
    host = FakeHost([100.0, 100.0])
    assert check(host, 0).quiet("float32") == (100.0, 0.0)
    assert host.sleeps == []


def test_negative_wait_is_refused():
    with pytest.raises(ValueError, match="max_wait must be >= 0"):
        MachineCheck(REFERENCE, -1)


class FakeBenchmark:
    """pytest-benchmark's pedantic mode: setup then one call per round."""

    def __init__(self):
        self.extra_info = {}

    def pedantic(self, fn, setup, rounds, iterations):
        assert iterations == 1
        for _ in range(rounds):
            args, kwargs = setup()
            result = fn(*args, **kwargs)
        return result


def test_every_round_lies_between_two_readings():
    # Round 2 waits (a busy reading, a pause, a quiet one); every reading is
    # followed by the settle pause before its round.
    host = FakeHost([170.0, 150.0, 175.0, 180.0, 140.0])
    bench = FakeBenchmark()
    starts = []
    machine = MachineCheck(REFERENCE, 60, rate=host.rate, pause=5.0, settle=0.3,
                           clock=host.clock, sleep=host.sleep)
    result = machine.pedantic(bench, "float32", lambda x: starts.append(host.now) or x,
                              lambda: (("done",), {}), rounds=3)
    assert result == "done"
    assert starts == pytest.approx([0.8, 7.1, 7.9])
    assert host.sleeps == [0.3, 5.0, 0.3, 0.3]
    assert bench.extra_info["gemm_check_gflops"] == [170.0, 175.0, 180.0, 140.0]
    assert len(bench.extra_info["round_seconds"]) == 3
    # Readings take 0.5 s each: round 2 waited a pause and a reading.
    assert bench.extra_info["quiet_wait_s"] == pytest.approx(5.0 + 0.5)


def test_the_wait_budget_is_shared_by_the_rounds():
    host = FakeHost([100.0] * 100)
    machine = MachineCheck(REFERENCE, 12, rate=host.rate, pause=5.0, settle=0.0,
                           clock=host.clock, sleep=host.sleep)
    bench = FakeBenchmark()
    machine.pedantic(bench, "float32", lambda: None, lambda: ((), {}), rounds=4)
    # Round 1 waits twice (to 11.5 s of 12); the others get what is left: no wait.
    assert [s for s in host.sleeps if s] == [5.0, 5.0]
    assert len(bench.extra_info["gemm_check_gflops"]) == 5
    assert host.readings == [100.0] * (100 - 3 - 3 - 1)


def _bench(group, lib, checks, waited, rounds=None):
    e = {"lib": lib, "dtype": "float64", "gemm_check_gflops": checks, "quiet_wait_s": waited,
         "batch_size": 32, "epochs": 100, "layers": "64-64-10", "n_samples": 1347,
         "test_accuracy": 0.97, "gflops": 1.0, "seconds": 1.0, "gemm_gflops": 90.0}
    if rounds is not None:
        e["round_seconds"] = rounds
    return {"group": group, "name": f"test_digits_fit[{lib}]",
            "stats": {"min": 1.0, "median": 1.0, "mean": 1.0, "rounds": 5}, "extra_info": e}


def test_report_names_the_disturbed_benchmarks():
    group = "digits-fit 64-64-10"
    doc = {"machine_info": {"fastmlp_bench": {"gemm_gflops": {"float64": 90.0}}},
           "benchmarks": [
               # Fastest round (the 2nd) between 88 and 85: quiet, though round 1 was not.
               _bench(group, "numba", [60.0, 88.0, 85.0], 12.0, rounds=[1.5, 1.0]),
               # Fastest round (the 1st) ended at 70: disturbed.
               _bench(group, "numpy", [88.0, 70.0, 89.0], 2.0, rounds=[1.0, 1.5]),
               # An older document: one reading before all rounds and one after.
               _bench(group, "sklearn", [88.0, 75.0], 1.0)]}
    text = report.render(doc)
    assert "after waiting 15 s in all" in text
    assert "fastest round for numpy (88 / 70 GFLOP/s); sklearn (88 / 75 GFLOP/s)." in text
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
    bench = _bench("digits-fit 64-64-10", "numba", [88.0, 120.0], 0.0)
    bench["extra_info"].update(gemm_fraction=1.0 / 90.0, gemm_gflops=90.0)
    doc = {"machine_info": {"fastmlp_bench": {"gemm_gflops": {"float64": 90.0}}},
           "benchmarks": [bench]}
    assert report.session_reference(doc) == {"float64": 120.0}
    text = report.render(doc)
    assert "float64 120.0 GFLOP/s." in text
    assert "| 1.0 (0.8 %) |" in text  # 1 GFLOP/s of 120, not of the start's 90
    assert "numba (88 / 120 GFLOP/s)" in text
    assert bench["extra_info"]["gemm_gflops"] == 90.0  # the document is not modified


def test_report_checks_benchmarks_without_a_dtype_against_the_checks_dtype():
    # The JIT suite's fits are float64, its checks float32 products, and its
    # rows are labelled by case.
    e = {"case": "fastmlp-cold", "lib": "fastmlp", "gemm_check_gflops": [150.0, 180.0],
         "gemm_check_dtype": "float32", "round_seconds": [20.0], "quiet_wait_s": 0.0}
    doc = {"machine_info": {"fastmlp_bench": {"gemm_gflops": {"float32": 170.0}}},
           "benchmarks": [{"group": "other", "name": "test_x[fastmlp-cold]",
                           "stats": {"min": 20.0, "median": 20.0, "mean": 20.0, "rounds": 1},
                           "extra_info": e}]}
    assert report.session_reference(doc) == {"float32": 180.0}
    assert "round for fastmlp-cold (150 / 180 GFLOP/s)." in report.render(doc)
