"""One fit in several threads: the same bits as in one, and no hang when a thread fails.

The kernels split every mini-batch into ``config.KERNEL_PARTS`` parts; a fit
with the cores to itself runs them in threads that meet at a spin barrier
(:mod:`fastmlp.kernels.sync`). These tests force one and two threads on the same
training and require identical parameters, optimizer state and losses, over
the layouts that take different paths through the kernel: dense X gathered
by index or read in order, sparse X, widths that do not split evenly or
split into an empty part, no hidden layer, several hidden layers, the last
short batch, sample weights and every optimizer.
"""

import math
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from fastmlp import FastMLPClassifier, config
from fastmlp.kernels import bundles
from fastmlp.kernels import sync as sync_kernel
from fastmlp.kernels import train as train_kernels
from fastmlp.engine import threads
from fastmlp.engine import backends
from fastmlp.engine.network import Network
from fastmlp.engine.optimizers import SGD, Adam

OPTIMIZERS = {
    "nesterov": lambda n, dtype: SGD(n, dtype, 0.1, "constant", 0.9, True),
    "momentum": lambda n, dtype: SGD(n, dtype, 0.1, "constant", 0.9, False),
    "adam": lambda n, dtype: Adam(n, dtype, 0.01),
}
LAYOUTS = {
    "one-hidden": [40, 37, 3],  # 37 units: parts of 32 and 5 (float32) / 24 and 13 (float64)
    # With tiles, first layers whose parts hold at least a vector each read the rows in X
    # (no gather): 32 units split into whole vectors, 52 into 32 and 20 (a tail of 4).
    "whole-vectors": [40, 32, 3],
    "vectors-and-tail": [40, 52, 3],
    "narrow": [40, 5, 3],  # float32 rounds the cut up to 16: all 5 units in part 0, none in 1
    "two-hidden": [40, 33, 17, 4],
    "no-hidden": [40, 3],
}


@pytest.fixture
def split_small_networks(monkeypatch):
    """Split the tests' small networks as a big one would be (they are below the thresholds)."""
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    monkeypatch.setattr(config, "MIN_THREADED_FLOPS", 0)


def _problem(layout, dtype, sparse, weighted, seed=0, n_rows=83):
    rng = np.random.default_rng(seed)
    network = Network(LAYOUTS[layout], "logistic", "log_loss")
    params = rng.normal(scale=0.3, size=network.n_params).astype(dtype)
    X = rng.normal(size=(n_rows, network.layer_units[0]))
    if sparse:
        X[rng.random(X.shape) < 0.7] = 0.0
        X = sp.csr_matrix(X)
    Y = np.eye(network.layer_units[-1])[rng.integers(0, network.layer_units[-1], n_rows)]
    sample_weight = rng.uniform(0.5, 2.0, n_rows) if weighted else None
    return network, params, X.astype(dtype), Y, sample_weight


def _train(monkeypatch, n_threads, network, params0, X, Y, sample_weight, optimizer_name,
           shuffle, dtype, batch_size=16):
    monkeypatch.setattr(backends.NumbaTrainer, "threads_for_run", lambda self: n_threads)
    trainer = backends.make_trainer("numba", network, X, Y, sample_weight, batch_size, dtype)
    params = params0.copy()
    optimizer = OPTIMIZERS[optimizer_name](network.n_params, dtype)
    rng = np.random.default_rng(1)
    n_rows = X.shape[0]
    n_batches = -(-n_rows // batch_size)
    losses = []
    with threadpool_limits(1):
        for _ in range(3):
            rows = rng.permutation(n_rows) if shuffle else None
            # Two calls per epoch, as the estimators' time-bounded chunks make.
            loss_sum, done = trainer.run(params, optimizer, rows, 0, 2, 1e-3)
            loss_sum, rest = trainer.run(params, optimizer, rows, 2, n_batches, 1e-3, loss_sum)
            assert done + rest == n_batches
            losses.append(loss_sum)
            optimizer.iteration_ends(n_rows)
    state = [optimizer.velocity] if isinstance(optimizer, SGD) else [optimizer.ms, optimizer.vs]
    return params, [s.copy() for s in state], losses


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("sparse, shuffle", [(False, True), (False, False), (True, True)],
                         ids=["gathered", "in-order", "sparse"])
def test_two_threads_give_the_bits_of_one(monkeypatch, split_small_networks, layout,
                                          optimizer_name, dtype, sparse, shuffle):
    network, params0, X, Y, sw = _problem(layout, dtype, sparse, weighted=layout == "one-hidden")
    one = _train(monkeypatch, 1, network, params0, X, Y, sw, optimizer_name, shuffle, dtype)
    two = _train(monkeypatch, 2, network, params0, X, Y, sw, optimizer_name, shuffle, dtype)
    np.testing.assert_array_equal(one[0], two[0])
    for a, b in zip(one[1], two[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert one[2] == two[2]
    assert not np.array_equal(one[0], params0)  # it trained


def test_one_to_eight_parts_match_the_numpy_reference(monkeypatch, split_small_networks):
    # The split changes only which BLAS calls compute which block, so both
    # part counts stay within float64 rounding of the reference.
    network, params0, X, Y, sw = _problem("two-hidden", np.float64, False, True)
    reference = backends.make_trainer("numpy", network, X, Y, sw, 16, np.float64)
    params = params0.copy()
    optimizer = OPTIMIZERS["nesterov"](network.n_params, np.float64)
    reference.run(params, optimizer, None, 0, 6, 1e-3)
    for parts in range(1, 9):
        monkeypatch.setattr(config, "KERNEL_PARTS", parts)
        ours = _train_once(network, params0, X, Y, sw)
        np.testing.assert_allclose(ours, params, rtol=0, atol=1e-12)


def _train_once(network, params0, X, Y, sw):
    trainer = backends.make_trainer("numba", network, X, Y, sw, 16, np.float64)
    params = params0.copy()
    trainer.run(params, OPTIMIZERS["nesterov"](network.n_params, np.float64), None, 0, 6, 1e-3)
    return params


def test_a_failing_thread_makes_the_others_give_up(split_small_networks):
    from fastmlp.kernels import train

    network, params0, X, Y, sw = _problem("one-hidden", np.float64, False, False)
    trainer = backends.make_trainer("numba", network, X, Y, sw, 16, np.float64)
    optimizer = OPTIMIZERS["nesterov"](network.n_params, np.float64)
    hyper, s1, s2, step = optimizer.kernel_state()
    hidden, out, loss = network.codes
    params = params0.copy()
    args = (bundles.Data(*trainer.X, trainer.Y, trainer.sw, np.arange(X.shape[0]), X.shape[0]),
            bundles.Net(params, network.units, network.coef_offsets, network.intercept_offsets,
                        hidden, out, loss),
            bundles.Optimizer(optimizer.kind, hyper, s1, s2, step, 1e-3),
            trainer.work,
            # Not whole epochs: no shuffle, stop rule or epoch losses.
            bundles.Schedule(16, 0, 5, 0.0, 0, np.empty(0, np.uint32), np.zeros(1, np.int64),
                             np.array([np.inf, 0, 0, 0]), np.empty(0)))

    def kernel(*call):
        team = call[-1]
        if team.part_lo == 1:
            raise MemoryError("helper thread failed")
        return train.train_batches(*call)

    outcome = []

    def call():
        try:
            trainer._run_in_threads(kernel, args, 2)
        except MemoryError as exc:
            outcome.append(exc)

    runner = threading.Thread(target=call, daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the surviving thread hung at its barrier"
    assert len(outcome) == 1 and "helper thread failed" in str(outcome[0])
    # Part 0 stopped before its first update: its block of the first layer is
    # copied back unchanged.
    np.testing.assert_array_equal(params, params0)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_barrier_lets_no_thread_run_ahead(n_threads):
    rounds = 2000
    sync = np.zeros(sync_kernel.SYNC_SIZE, dtype=np.int64)
    seen = np.zeros((n_threads, rounds), dtype=np.int64)
    counter = np.zeros(1, dtype=np.int64)

    def work(t):
        for k in range(rounds):
            counter[0] += 0  # touch shared memory between barriers
            seen[t, k] = sync[sync_kernel.COUNTER]
            assert sync_kernel.barrier(sync, n_threads, k)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sync[sync_kernel.COUNTER] == n_threads * rounds
    # Before barrier k every thread sees at least the arrivals of barrier k - 1
    # and at most those of barrier k: nobody passed a barrier early.
    k = np.arange(rounds)
    assert (seen >= n_threads * k).all() and (seen < n_threads * (k + 1)).all()


def test_abort_releases_a_waiting_thread():
    sync = np.zeros(sync_kernel.SYNC_SIZE, dtype=np.int64)
    result = []
    waiter = threading.Thread(target=lambda: result.append(sync_kernel.barrier(sync, 2, 0)))
    waiter.start()
    sync_kernel.abort(sync)
    waiter.join(60)
    assert result == [False]


def _trainer(units, batch_size):
    network = Network(units, "logistic", "log_loss")
    X = np.zeros((4, units[0]), dtype=np.float32)
    Y = np.zeros((4, units[-1]), dtype=np.float32)
    return backends.make_trainer("numba", network, X, Y, None, batch_size, np.float32)


def test_threads_for_run_follows_the_cores_a_fit_has():
    big = _trainer([784, 128, 10], 32)
    assert big.n_parts == config.KERNEL_PARTS
    assert _trainer([64, 64, 10], 32).n_parts == 1  # never threaded: not split either
    assert big.threads_for_run() == 1  # outside a fit: nothing says the cores are free
    with threadpool_limits(2), threads.share_cores():
        assert big.threads_for_run() == 2
        assert _trainer([784, 16, 10], 32).threads_for_run() == 1  # 2.4 MFLOP per batch
        assert _trainer([64, 512, 10], 200).threads_for_run() == 1  # too few inputs
        with threads.share_cores():  # a second fit started
            assert big.threads_for_run() == 1
    with threadpool_limits(1), threads.share_cores():  # the user's limit is respected
        assert big.threads_for_run() == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 epochs on purpose
def test_a_lone_fit_uses_two_threads_and_matches_a_single_threaded_fit(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.random((600, 300), dtype=np.float32)
    y = rng.integers(0, 4, 600)
    used = []
    original = backends.NumbaTrainer.threads_for_run

    def spy(self):
        used.append(original(self))
        return used[-1]

    monkeypatch.setattr(backends.NumbaTrainer, "threads_for_run", spy)
    params = dict(hidden_layer_sizes=(64,), solver="sgd", batch_size=128, max_iter=3, tol=0,
                  random_state=0)
    with threadpool_limits(2):
        threaded = FastMLPClassifier(**params).fit(X, y)
    assert set(used) == {2}
    used.clear()
    with threadpool_limits(1):
        single = FastMLPClassifier(**params).fit(X, y)
    assert set(used) == {1}
    for a, b in zip(threaded.coefs_ + threaded.intercepts_, single.coefs_ + single.intercepts_,
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert threaded.loss_curve_ == single.loss_curve_


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_predictions_in_threads_give_the_bits_of_one(monkeypatch, sparse):
    network, params, X, _, _ = _problem("two-hidden", np.float32, sparse, False, n_rows=2500)
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    monkeypatch.setattr(config, "PREDICT_CHUNK_ROWS", 300)  # 9 chunks: 4 and 5 per thread
    outs = {}
    for n_threads in (1, 2):
        monkeypatch.setattr(threads, "cores_for_fit", lambda n=n_threads: n)
        outs[n_threads] = backends.predict("numba", network, params, X)
        if not sparse:  # X not in the kernel's layout is converted chunk by chunk
            np.testing.assert_array_equal(
                backends.predict("numba", network, params, np.asfortranarray(X)),
                outs[n_threads])
    np.testing.assert_array_equal(outs[1], outs[2])
    expected = backends.predict("numpy", network, params, X)
    np.testing.assert_allclose(outs[2], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_full_batch_objective_in_threads_gives_the_bits_of_one(monkeypatch, sparse):
    # L-BFGS's loss and gradient: blocks of rows dealt to two parts, summed in part order.
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    monkeypatch.setattr(config, "FULL_BATCH_BLOCK_ROWS", 16)  # 83 rows: 6 blocks
    network, params, X, Y, sw = _problem("two-hidden", np.float64, sparse, True)
    results = {}
    for n_threads in (1, 2):
        monkeypatch.setattr(threads, "cores_for_fit", lambda n=n_threads: n)
        objective = backends.FullBatchObjective("numba", network, X, Y, sw, np.float64)
        assert objective.n_parts == 2
        results[n_threads] = objective(params, 1e-3)
    assert results[1][0] == results[2][0]
    np.testing.assert_array_equal(results[1][1], results[2][1])
    loss, grad = backends.loss_and_gradient("numpy", network, params, X, Y, 1e-3, sw)
    assert results[2][0] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(results[2][1], grad, rtol=0, atol=1e-12 * np.abs(grad).max())


@pytest.mark.parametrize("optimizer_name", ["nesterov", "adam"])
def test_network_without_hidden_layer_is_not_split_and_trains_right(monkeypatch,
                                                                    optimizer_name):
    # 300 inputs and 20 softmax outputs: above the thresholds, but the output
    # layer cannot be split by units. Must match the NumPy reference.
    rng = np.random.default_rng(0)
    network = Network([300, 20], "logistic", "log_loss")
    params0 = rng.normal(scale=0.1, size=network.n_params)
    X = rng.normal(size=(130, 300))
    Y = np.eye(20)[rng.integers(0, 20, 130)]
    trainer = backends.make_trainer("numba", network, X, Y, None, 64, np.float64)
    assert trainer.n_parts == 1
    ours, theirs = params0.copy(), params0.copy()
    trainer.run(ours, OPTIMIZERS[optimizer_name](network.n_params, np.float64), None, 0, 3, 1e-3)
    reference = backends.make_trainer("numpy", network, X, Y, None, 64, np.float64)
    reference.run(theirs, OPTIMIZERS[optimizer_name](network.n_params, np.float64), None, 0, 3,
                  1e-3)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


PARTS_AND_THREADS = [(parts, threads) for parts in range(2, 9)
                     for threads in sorted({2, 3, parts}) if threads <= parts]


@pytest.mark.parametrize("parts, threads", PARTS_AND_THREADS)
def test_more_parts_and_threads_give_the_bits_of_one_thread(monkeypatch, split_small_networks,
                                                            parts, threads):
    # Machines with more cores may raise KERNEL_PARTS; thread t then runs parts
    # [parts * t // threads, parts * (t + 1) // threads), equal runs or not
    # (oversubscribed here: the barrier yields).
    monkeypatch.setattr(config, "KERNEL_PARTS", parts)
    network, params0, X, Y, sw = _problem("two-hidden", np.float32, False, True)
    one = _train(monkeypatch, 1, network, params0, X, Y, sw, "adam", True, np.float32)
    many = _train(monkeypatch, threads, network, params0, X, Y, sw, "adam", True, np.float32)
    np.testing.assert_array_equal(one[0], many[0])
    assert one[2] == many[2]


def test_without_a_second_thread_the_parts_run_in_the_calling_one(monkeypatch,
                                                                 split_small_networks):
    network, params0, X, Y, sw = _problem("one-hidden", np.float32, False, True)
    expected = _train(monkeypatch, 1, network, params0, X, Y, sw, "adam", True, np.float32)

    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    got = _train(monkeypatch, 2, network, params0, X, Y, sw, "adam", True, np.float32)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[2] == expected[2]


@pytest.fixture
def handovers(monkeypatch):
    """How each training call run in threads ended (True: it fell back to one thread)."""
    calls = []
    contention = threads.Contention()
    record = contention.record
    contention.record = lambda handed_over: (calls.append(handed_over), record(handed_over))[1]
    monkeypatch.setattr(threads, "CONTENTION", contention)
    return calls


X86_ONLY = pytest.mark.skipif(not sync_kernel._X86, reason="the kernels time waits with the "
                              "x86 time-stamp counter; elsewhere they never fall back")


@X86_ONLY
@pytest.mark.parametrize("late_waits", [1, 6])
@pytest.mark.parametrize("optimizer_name", ["nesterov", "adam"])
def test_a_call_that_falls_back_to_one_thread_keeps_the_bits(monkeypatch, split_small_networks,
                                                             handovers, late_waits,
                                                             optimizer_name):
    # No spinning, and any time in late waits enough: nearly every wait counts,
    # as beside a process that holds a core. The first thread takes over every
    # part at the end of a batch (after one late wait, or in a later batch after six).
    network, params0, X, Y, sw = _problem("two-hidden", np.float32, False, True)
    one = _train(monkeypatch, 1, network, params0, X, Y, sw, optimizer_name, True, np.float32)
    monkeypatch.setattr(config, "BARRIER_SPINS", 0)
    monkeypatch.setattr(config, "CONTENDED_LATE_WAITS", late_waits)
    monkeypatch.setattr(config, "CONTENDED_LATE_SHARE", 10 ** 9)  # any stall counts
    two = _train(monkeypatch, 2, network, params0, X, Y, sw, optimizer_name, True, np.float32)
    assert True in handovers
    np.testing.assert_array_equal(one[0], two[0])
    for a, b in zip(one[1], two[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert one[2] == two[2]


@X86_ONLY
def test_whole_epochs_that_fall_back_to_one_thread_keep_the_bits(monkeypatch,
                                                                 split_small_networks,
                                                                 handovers):
    # The estimator's path: several shuffled epochs in one call, with the
    # no-improvement rule and the epoch losses computed in the kernel.
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    X, Y = np.random.default_rng(3).normal(size=(300, 40)), np.arange(300) % 3

    def fit(n_threads):
        monkeypatch.setattr(backends.NumbaTrainer, "threads_for_run", lambda self: n_threads)
        model = FastMLPClassifier((33, 17), max_iter=6, batch_size=16, random_state=0,
                                  backend="numba", tol=0.0)
        with pytest.warns(Warning):
            model.fit(X, Y)
        return model

    one = fit(1)
    monkeypatch.setattr(config, "BARRIER_SPINS", 0)
    monkeypatch.setattr(config, "CONTENDED_LATE_WAITS", 30)
    monkeypatch.setattr(config, "CONTENDED_LATE_SHARE", 10 ** 9)
    two = fit(2)
    assert True in handovers
    assert one.loss_curve_ == two.loss_curve_
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_after_a_fallback_calls_run_in_one_thread_for_a_while_then_try_threads_again(
        monkeypatch):
    monkeypatch.setattr(config, "CHUNK_SECONDS", 0.25)
    monkeypatch.setattr(config, "CONTENDED_MAX_SERIAL_SECONDS", 1.0)
    now = [0.0]
    contention = threads.Contention(clock=lambda: now[0])
    serial_for = []
    for handed_over in [True, True, True, True, False, True]:
        contention.record(handed_over)
        start = now[0]
        while not contention.threads_allowed():
            now[0] += 0.125
        serial_for.append(now[0] - start)
    # 0.25 s after the first fallback, then 0.5, 1 and at most 1; none after a
    # call that kept its threads, and 0.25 s again after the next fallback.
    assert serial_for == [0.25, 0.5, 1.0, 1.0, 0.0, 0.25]


def test_a_fit_that_fell_back_leaves_the_next_fit_in_one_thread_for_a_while(monkeypatch,
                                                                          handovers):
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    monkeypatch.setattr(config, "MIN_THREADED_FLOPS", 0)
    monkeypatch.setattr(threads.CONTENTION, "serial_until", math.inf)  # a fallback just now
    used = []
    run = train_kernels.train_batches

    def spy(*args):
        used.append(args[-1].n_threads)
        return run(*args)

    monkeypatch.setattr(train_kernels, "train_batches", spy)
    monkeypatch.setattr(backends.NumbaTrainer, "threads_for_run", lambda self: 2)
    X = np.random.default_rng(0).normal(size=(64, 40))
    with pytest.warns(Warning):
        FastMLPClassifier((16,), max_iter=2, batch_size=16, backend="numba").fit(X, X[:, 0] > 0)
    assert used and set(used) == {1}
    assert handovers == []
