"""Shared test set-up.

Most tests fit tiny data sets. Under the default ``backend='auto'`` such fits
run on the NumPy reference (:func:`fastmlp.engine.backends.auto_backend`), so the
compiled kernels, which those tests were written to check, would not run at
all. Every test therefore runs with ``auto`` pinned to the kernels
(:data:`fastmlp.config.AUTO_NUMPY_SECONDS` = 0); the tests of ``auto`` itself
ask for :func:`auto_as_shipped`, and the NumPy path of the estimators has its
own explicitly parametrised tests (``backend='numpy'``). Child processes
(fresh-process, loky and Dask tests) do not see this setting: those tests
name their backend.
"""

import pytest

from fastmlp import config

SHIPPED_AUTO_NUMPY_SECONDS = config.AUTO_NUMPY_SECONDS


@pytest.fixture(autouse=True)
def _auto_runs_the_kernels(monkeypatch):
    monkeypatch.setattr(config, "AUTO_NUMPY_SECONDS", 0.0)


@pytest.fixture
def auto_as_shipped(monkeypatch):
    """``backend='auto'`` with its shipped threshold (small fits on NumPy)."""
    monkeypatch.setattr(config, "AUTO_NUMPY_SECONDS", SHIPPED_AUTO_NUMPY_SECONDS)
