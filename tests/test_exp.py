"""The kernels' vectorisable ``exp`` against the C library's.

The reference is the C library's ``exp`` (through ``math.exp``), not
``np.exp``: NumPy 1.x's AVX-512 ``exp`` is itself up to 2 ulp from it.

Bounds: at most 1 ulp from the C library's in float64 (a Taylor polynomial of
degree 13 after Cody-Waite reduction: truncation < 4e-18, the rest is the
rounding of Horner's steps), and exactly the correctly rounded value for
float32 inputs computed through float64 (the float64 error is far below a
float32 ulp). Specials follow IEEE and the C library. ``exp_float32`` (float32
steps, for the float32 logistic): within 2 ulp of the exact value.

Every test runs twice: compiled as written, and with multiplies and adds
fused into FMAs (``fastmath={"contract"}``), as the kernels' activations
compile it.
"""

import math

import numpy as np
import pytest
from numba import njit

from fastmlp.kernels.exp import exp, exp_float32


_C_EXP = np.frompyfunc(math.exp, 1, 1)


def c_exp(x):
    """The C library's exp of each element, in float64."""
    return _C_EXP(np.asarray(x, dtype=np.float64)).astype(np.float64)


def _loop(fn, x, out):
    for i in range(x.size):
        out[i] = fn(x[i])


_APPLY = {"separate": njit(_loop), "fma": njit(fastmath={"contract"})(_loop)}


@pytest.fixture(params=list(_APPLY))
def ours(request):
    """``ours(x, fn=exp)``: ``fn`` (compiled as the kernels call it) on every element of x."""

    def apply(x, fn=exp):
        out = np.empty_like(x)
        _APPLY[request.param](fn, x, out)
        return out

    return apply


def test_float64_within_one_ulp_of_the_c_library(ours):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-708.3, 709.7, 200_000), rng.uniform(-30, 30, 200_000),
                        rng.normal(0, 1e-4, 20_000), np.arange(-700, 700, 0.5)])
    got, ref = ours(x), c_exp(x)
    ulps = np.abs(got - ref) / np.spacing(ref)
    assert ulps.max() <= 1.0
    assert (got == ref).mean() > 0.8  # mostly the very same bits


def test_float32_through_float64_is_correctly_rounded(ours):
    x = np.random.default_rng(1).uniform(-87, 88, 200_000).astype(np.float32)
    got = ours(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, c_exp(x).astype(np.float32))


@pytest.mark.parametrize("x, expected", [
    (0.0, 1.0), (-0.0, 1.0), (1.0, math.e), (709.78, math.exp(709.78)), (709.79, np.inf),
    (-745.14, 0.0), (-1e6, 0.0), (1e6, np.inf), (np.inf, np.inf), (-np.inf, 0.0),
    (-708.0, math.exp(-708.0)),
])
def test_specials_and_range_ends(x, expected, ours):
    got = ours(np.array([x]))[0]
    assert got == expected or abs(got - expected) <= np.spacing(expected)


def test_nan_stays_nan(ours):
    assert np.isnan(ours(np.array([np.nan, -np.nan]))).all()


# ---- exp_float32: the float32 logistic's exponential ------------------------------------------


def test_float32_within_two_ulp_of_exact(ours):
    # Bound: truncation < 0.1 ulp, the last Horner steps' roundings < 0.8 ulp of
    # p in [0.7, 1.42], up to twice that in ulps of a result just above a power
    # of two: < 2 ulp. Measured: 1.19 at most, 0.27 on average.
    rng = np.random.default_rng(2)
    x = np.concatenate([np.linspace(-87.3, 88.7, 2_000_001), rng.uniform(-20, 20, 200_000),
                        rng.normal(0, 1e-3, 20_000)]).astype(np.float32)
    got = ours(x, exp_float32).astype(np.float64)
    exact = c_exp(x)
    ulps = np.abs(got - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert ulps.max() < 2.0
    assert ulps.mean() < 0.5
    assert (got == exact.astype(np.float32)).mean() > 0.6  # mostly correctly rounded


@pytest.mark.parametrize("x, expected", [
    (0.0, 1.0), (-0.0, 1.0), (88.72283, math.exp(np.float32(88.72283))),
    (88.7229, np.inf), (1e30, np.inf), (np.inf, np.inf), (-103.98, 0.0), (-1e30, 0.0),
    (-np.inf, 0.0), (-87.0, math.exp(-87.0)),
])
def test_float32_specials_and_range_ends(x, expected, ours):
    got = float(ours(np.array([x], dtype=np.float32), exp_float32)[0])
    expected = float(np.float32(expected))
    assert got == expected or abs(got - expected) <= 2 * np.spacing(np.float32(expected))


def test_float32_nan_stays_nan(ours):
    assert np.isnan(ours(np.array([np.nan, -np.nan], dtype=np.float32), exp_float32)).all()
