"""Optimizer steps and schedules against formulas written out by hand.

First the NumPy form (``optimizer.step``), then the fused update inside the numba
kernel: one mini-batch through ``NumbaTrainer.run`` must equal the hand formula
applied to the gradient of :func:`fastmlp.engine.reference.backprop`.
"""

import numpy as np
import pytest
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from fastmlp.engine import backends
from fastmlp.engine import reference
from fastmlp.engine.network import Network
from fastmlp.engine.optimizers import SGD, Adam, make_optimizer

N = 7
LR = 0.1


def vectors(seed, count):
    """``count`` random float64 vectors of length N."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=N) for _ in range(count)]


# ---- SGD --------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("nesterov", [False, True], ids=["classic", "nesterov"])
def test_sgd_two_steps_by_hand(nesterov, momentum):
    p0, g1, g2 = vectors(0, 3)
    params = p0.copy()
    opt = SGD(N, np.float64, learning_rate_init=LR, momentum=momentum, nesterov=nesterov)
    opt.step(params, g1)
    opt.step(params, g2)

    # Velocity: v1 = -lr g1 (it starts at 0); v2 = mu v1 - lr g2.
    v1 = -LR * g1
    v2 = momentum * v1 - LR * g2
    if nesterov:  # step with the look-ahead velocity: mu v_t - lr g_t
        p1 = p0 + (momentum * v1 - LR * g1)
        p2 = p1 + (momentum * v2 - LR * g2)
    else:
        p1 = p0 + v1
        p2 = p1 + v2
    np.testing.assert_allclose(opt.velocity, v2, rtol=1e-15)
    np.testing.assert_allclose(params, p2, rtol=1e-14, atol=1e-15)
    if momentum == 0.0:  # plain gradient descent, whatever the Nesterov flag
        np.testing.assert_allclose(params, p0 - LR * (g1 + g2), rtol=1e-14, atol=1e-15)

    # scikit-learn's own optimizer takes the same two steps.
    sk_params = [p0.copy()]
    sk = SGDOptimizer(sk_params, learning_rate_init=LR, momentum=momentum, nesterov=nesterov)
    sk.update_params(sk_params, [g1])
    sk.update_params(sk_params, [g2])
    np.testing.assert_allclose(params, sk_params[0], rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("time_step", [1, 10, 1000])
def test_invscaling_learning_rate(time_step):
    opt = SGD(N, np.float64, learning_rate_init=0.2, lr_schedule="invscaling", power_t=0.25)
    opt.iteration_ends(time_step)
    assert opt.learning_rate == pytest.approx(0.2 / (time_step + 1) ** 0.25, rel=1e-15)
    # The next step uses the decayed rate.
    p0, g = vectors(1, 2)
    params = p0.copy()
    opt.momentum = 0.0
    opt.step(params, g)
    np.testing.assert_allclose(params, p0 - 0.2 / (time_step + 1) ** 0.25 * g, rtol=1e-14)


@pytest.mark.parametrize("schedule", ["constant", "adaptive"])
def test_other_schedules_keep_the_learning_rate_at_epoch_end(schedule):
    opt = SGD(N, np.float64, learning_rate_init=0.2, lr_schedule=schedule)
    opt.iteration_ends(100)
    assert opt.learning_rate == 0.2


def test_adaptive_divides_by_5_until_below_1e_6(capsys):
    opt = SGD(N, np.float64, learning_rate_init=0.01, lr_schedule="adaptive")
    rates = []
    while not opt.trigger_stopping("stalled.", verbose=True):
        rates.append(opt.learning_rate)
    # 0.01 / 5**6 = 6.4e-7 is the first rate <= 1e-6; the next call stops.
    np.testing.assert_allclose(rates, [0.01 / 5**k for k in range(1, 7)], rtol=1e-15)
    assert opt.learning_rate == rates[-1] <= 1e-6 < rates[-2]
    out = capsys.readouterr().out
    assert out.count("Setting learning rate to") == 6
    assert "Learning rate too small. Stopping." in out


@pytest.mark.parametrize("opt", [SGD(N, np.float64, lr_schedule="constant"),
                                 SGD(N, np.float64, lr_schedule="invscaling"),
                                 Adam(N, np.float64)], ids=["constant", "invscaling", "adam"])
def test_non_adaptive_optimizers_stop_at_once(opt):
    rate = opt.learning_rate
    assert opt.trigger_stopping("stalled.", verbose=False) is True
    assert opt.learning_rate == rate


# ---- Adam -------------------------------------------------------------------------------
def test_adam_two_steps_by_hand():
    p0, g1, g2 = vectors(2, 3)
    lr0, b1, b2, eps = 0.001, 0.9, 0.999, 1e-8
    params = p0.copy()
    opt = Adam(N, np.float64, learning_rate_init=lr0, beta_1=b1, beta_2=b2, epsilon=eps)
    opt.step(params, g1)
    opt.step(params, g2)

    # Moments start at 0: m1 = (1 - b1) g1, v1 = (1 - b2) g1^2.
    m1, v1 = 0.1 * g1, 0.001 * g1**2
    m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2**2
    # Bias correction folded into the step size, as scikit-learn does:
    # lr_t = lr0 * sqrt(1 - b2^t) / (1 - b1^t), step = -lr_t * m_t / (sqrt(v_t) + eps).
    lr1 = lr0 * np.sqrt(1 - 0.999) / (1 - 0.9)
    lr2 = lr0 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    p1 = p0 - lr1 * m1 / (np.sqrt(v1) + eps)
    p2 = p1 - lr2 * m2 / (np.sqrt(v2) + eps)
    # Step 1 moves every weight by lr0 (up to eps): lr1 * m1 / sqrt(v1) = lr0 * sign(g1).
    np.testing.assert_allclose(np.abs(p1 - p0), lr0, rtol=1e-4)
    assert opt.t == 2
    assert opt.learning_rate == pytest.approx(lr2, rel=1e-15)
    np.testing.assert_allclose(opt.ms, m2, rtol=1e-15)
    np.testing.assert_allclose(opt.vs, v2, rtol=1e-15)
    np.testing.assert_allclose(params, p2, rtol=1e-15, atol=1e-16)

    sk_params = [p0.copy()]
    sk = AdamOptimizer(sk_params, learning_rate_init=lr0, beta_1=b1, beta_2=b2, epsilon=eps)
    sk.update_params(sk_params, [g1])
    sk.update_params(sk_params, [g2])
    np.testing.assert_allclose(params, sk_params[0], rtol=1e-15, atol=1e-16)


def test_make_optimizer():
    hyper = dict(learning_rate_init=0.3, learning_rate="invscaling", momentum=0.5,
                 nesterovs_momentum=False, power_t=0.7, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    sgd = make_optimizer("sgd", N, np.float32, **hyper)
    assert (sgd.learning_rate, sgd.lr_schedule, sgd.momentum, sgd.nesterov, sgd.power_t) == (
        0.3, "invscaling", 0.5, False, 0.7)
    assert sgd.velocity.dtype == np.float32 and sgd.velocity.shape == (N,)
    adam = make_optimizer("adam", N, np.float64, **hyper)
    assert (adam.learning_rate_init, adam.beta_1, adam.beta_2, adam.epsilon) == (
        0.3, 0.8, 0.99, 1e-7)
    with pytest.raises(ValueError, match="lbfgs"):
        make_optimizer("lbfgs", N, np.float64, **hyper)


# ---- the same steps inside the numba kernel ----------------------------------------------
ALPHA = 0.05


def one_batch(dtype, optimizer, seed=0):
    """A tiny network and one full mini-batch: (params before, params after, gradient)."""
    rng = np.random.default_rng(seed)
    network = Network([3, 4, 2], "logistic", "log_loss")
    X = rng.normal(size=(5, 3)).astype(dtype)
    Y = np.eye(2, dtype=dtype)[rng.integers(0, 2, 5)]
    p0 = rng.normal(scale=0.5, size=network.n_params).astype(dtype)
    coefs, intercepts = network.views(p0)
    _, cg, ig = reference.backprop(coefs, intercepts, X, Y, network, ALPHA)
    grad = np.concatenate([g.ravel() for g in cg + ig])
    assert grad.dtype == dtype
    trainer = backends.make_trainer("numba", network, X, Y, None, 5, dtype)
    params = p0.copy()
    _, n_done = trainer.run(params, optimizer, None, 0, 1, ALPHA)
    assert n_done == 1
    return p0, params, grad


# The kernel's gradient differs from the reference's by rounding only: summation
# order in float64 (~1e-16 relative), float32 rounding of each product (~1e-7 of the
# gradient's scale) in float32. So the step (w_after - w_before) agrees to that
# relative precision, plus the rounding of w_after itself (half an ulp, <= eps * |w|).
# Measured: float64 <= 3e-15, float32 <= 1.2e-6 of the step, both entirely within the
# ulp term; we assert 1e-12 and 1e-5 on top of it: a wrong momentum, bias correction
# or L2 term is off by >1e-2 of the step.
STEP_RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close_to_step(actual, expected, dtype, reference_scale=None):
    """``|actual - expected| <= rtol * max|expected| + eps(dtype) * reference_scale``."""
    ulp = np.finfo(dtype).eps * (0.0 if reference_scale is None else reference_scale)
    error = np.abs(np.asarray(actual, np.float64) - expected).max()
    assert error <= STEP_RTOL[dtype] * np.abs(expected).max() + ulp, error


def assert_same_step(p0, params, expected, dtype):
    """Compare the kernel's step with the hand-computed one, relative to its size."""
    hand = expected - p0
    assert np.abs(hand).max() > 1e-3  # a real step, not a no-op
    assert_close_to_step(params.astype(np.float64) - p0, hand, dtype, np.abs(p0).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("nesterov", [False, True], ids=["classic", "nesterov"])
def test_numba_kernel_sgd_step(dtype, nesterov, momentum):
    n_params = Network([3, 4, 2], "logistic", "log_loss").n_params
    opt = SGD(n_params, dtype, learning_rate_init=0.5, momentum=momentum, nesterov=nesterov)
    v0 = np.random.default_rng(9).normal(scale=0.1, size=n_params)
    opt.velocity[...] = v0  # a previous step's velocity, so momentum matters
    v0 = opt.velocity.astype(np.float64)  # as stored (rounded in float32)
    p0, params, grad = one_batch(dtype, opt)
    p0, grad = p0.astype(np.float64), grad.astype(np.float64)

    v = momentum * v0 - 0.5 * grad
    expected = p0 + (momentum * v - 0.5 * grad if nesterov else v)
    assert params.dtype == dtype
    assert_same_step(p0, params, expected, dtype)
    assert_close_to_step(opt.velocity, v, dtype, np.abs(v).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_kernel_adam_step(dtype):
    n_params = Network([3, 4, 2], "logistic", "log_loss").n_params
    lr0, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    opt = Adam(n_params, dtype, learning_rate_init=lr0, beta_1=b1, beta_2=b2, epsilon=eps)
    rng = np.random.default_rng(4)
    m0, v0 = rng.normal(scale=0.1, size=n_params), rng.uniform(0.01, 0.05, n_params)
    opt.ms[...], opt.vs[...], opt.t = m0, v0, 3  # three earlier steps
    m0, v0 = opt.ms.astype(np.float64), opt.vs.astype(np.float64)  # as stored
    p0, params, grad = one_batch(dtype, opt)
    p0, grad = p0.astype(np.float64), grad.astype(np.float64)

    t = 4
    m = b1 * m0 + (1 - b1) * grad
    v = b2 * v0 + (1 - b2) * grad**2
    lr_t = lr0 * np.sqrt(1 - b2**t) / (1 - b1**t)
    expected = p0 - lr_t * m / (np.sqrt(v) + eps)
    assert params.dtype == dtype
    assert opt.t == t
    assert opt.learning_rate == pytest.approx(lr_t, rel=1e-15)
    assert_same_step(p0, params, expected, dtype)
    assert_close_to_step(opt.ms, m, dtype, np.abs(m).max())
    assert_close_to_step(opt.vs, v, dtype, np.abs(v).max())
