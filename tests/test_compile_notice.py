"""The notice a compiling first call gives: once per kind, only when the call compiles and is slow.

A compile is faked by raising numba's ``numba:compile`` event around a sleep; the real compile of a
fresh cache is checked in tests/test_determinism.py (processes filling one cache).
"""

import logging
import time

import pytest

from numba.core import event

from fastmlp import config
from fastmlp.engine import compile_notice as notice


def _compile(seconds):
    """What a compiling call looks like to the notice: numba's compile event, taking a while."""
    with event.trigger_event("numba:compile", data={}):
        time.sleep(seconds)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(notice, "_seen", set())
    monkeypatch.setattr(config, "COMPILE_NOTICE_SECONDS", 0.05)


def _notices(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "fastmlp"]


def test_a_slow_first_call_says_so_once(caplog):
    caplog.set_level(logging.WARNING, logger="fastmlp")
    for _ in range(2):
        with notice.compile_notice("float32 dense training"):
            _compile(0.3)
    messages = _notices(caplog)
    assert len(messages) == 1
    assert "compiling the float32 dense training kernels" in messages[0]
    assert "once per machine and fastmlp version" in messages[0]
    assert config.COMPILE_NOTICE_ESTIMATE in messages[0]


def test_a_fast_first_call_says_nothing(caplog):
    caplog.set_level(logging.WARNING, logger="fastmlp")
    with notice.compile_notice("float64 prediction"):
        pass
    time.sleep(0.2)  # past the threshold: the timer was cancelled, not merely late
    assert _notices(caplog) == []


def test_each_kind_has_its_own_notice(caplog):
    caplog.set_level(logging.WARNING, logger="fastmlp")
    for what in ("float32 training", "float64 training"):
        with notice.compile_notice(what):
            _compile(0.3)
    assert len(_notices(caplog)) == 2


def test_a_slow_call_that_compiles_nothing_says_nothing(caplog):
    # A cache load or a long first chunk on a busy host: slow, but no compile.
    caplog.set_level(logging.WARNING, logger="fastmlp")
    with notice.compile_notice("float32 dense training"):
        time.sleep(0.3)
    assert _notices(caplog) == []


def test_the_body_s_error_propagates_and_cancels_the_timer(caplog):
    caplog.set_level(logging.WARNING, logger="fastmlp")
    with pytest.raises(KeyboardInterrupt):
        with notice.compile_notice("float32 training"):
            raise KeyboardInterrupt
    time.sleep(0.2)
    assert _notices(caplog) == []
