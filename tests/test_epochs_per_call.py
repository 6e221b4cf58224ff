"""Whole epochs in one compiled call give the fit that one call per epoch gives, to the bit.

Short epochs run several to a call (``fastmlp._mlp_base._FastMLPMixin._run_epochs``): the kernel
shuffles with a copy of the RandomState and applies scikit-learn's
no-improvement rule itself. Against the same fit with one epoch per call
(shuffled by ``RandomState.shuffle`` in Python), every fitted attribute, the
optimizer's state, the random state and the warnings must be identical. The
trajectory tests compare the one-epoch path with scikit-learn (they pass
RandomState instances, which shuffle in Python); the last test here compares
the many-epochs path with scikit-learn directly.
"""

import warnings

import numpy as np
import pytest

from fastmlp import FastMLPClassifier, FastMLPRegressor, TrainingDivergedError, _mlp_base, config
from fastmlp.engine import backends

RNG = np.random.RandomState(0)
X = RNG.randn(300, 12)
Y_CLS = (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)
Y_REG = X @ RNG.randn(12)

STALL = dict(tol=1e3, n_iter_no_change=1)
SETTINGS = {
    "sgd": dict(solver="sgd", learning_rate_init=0.05),
    "sgd-stall": dict(solver="sgd", learning_rate_init=0.05, **STALL),  # stops after epoch 3
    "sgd-adaptive-stall": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05,
                               **STALL),  # lr / 5 after epochs 3, 5, 7, ...
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "adam-stall": dict(solver="adam", learning_rate_init=0.01, tol=1e3, n_iter_no_change=2),
    "sgd-no-shuffle": dict(solver="sgd", learning_rate_init=0.05, shuffle=False),
}
ATTRS = ["coefs_", "intercepts_", "loss_", "loss_curve_", "n_iter_", "t_", "best_loss_",
         "_no_improvement_count"]


def _fit(est, y, many, monkeypatch, sample_weight=None):
    calls = {"run": 0, "run_epochs": 0}
    make_trainer = backends.make_trainer

    def counting_make_trainer(*args, **kwargs):
        trainer = make_trainer(*args, **kwargs)
        for name in calls:
            if hasattr(trainer, name):
                setattr(trainer, name, _counting(name, getattr(trainer, name)))
        return trainer

    def _counting(name, run):
        def counted(*a, **k):
            calls[name] += 1
            return run(*a, **k)
        return counted

    with monkeypatch.context() as patch:
        patch.setattr(backends, "make_trainer", counting_make_trainer)
        if not many:
            patch.setattr(_mlp_base._FastMLPMixin, "_many_epochs_per_call",
                          lambda self, incremental, early_stopping: False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X, y, sample_weight=sample_weight)
    calls["warnings"] = [str(w.message) for w in caught]
    return calls


def _assert_identical(a, b):
    for name in ATTRS:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, list) and va and isinstance(va[0], np.ndarray):
            for x, y in zip(va, vb):
                np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_array_equal(va, vb, err_msg=name)
    assert vars(a._optimizer).keys() == vars(b._optimizer).keys()
    for key, value in vars(a._optimizer).items():
        np.testing.assert_array_equal(value, getattr(b._optimizer, key), err_msg=key)
    sa, sb = a._random_state.get_state(), b._random_state.get_state()
    np.testing.assert_array_equal(sa[1], sb[1])
    assert sa[2:] == sb[2:]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_many_epochs_per_call_equal_one(monkeypatch, setting, weighted, dtype):
    sw = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    params = dict(hidden_layer_sizes=(9,), activation="logistic", batch_size=32, max_iter=12,
                  random_state=0, dtype=dtype, **SETTINGS[setting])
    many, one = FastMLPClassifier(**params), FastMLPClassifier(**params)
    calls_many = _fit(many, Y_CLS, True, monkeypatch, sw)
    calls_one = _fit(one, Y_CLS, False, monkeypatch, sw)
    assert calls_many["run_epochs"] > 0 and calls_one["run_epochs"] == 0
    assert calls_many["run"] + calls_many["run_epochs"] < calls_one["run"]
    assert calls_many["warnings"] == calls_one["warnings"]
    if "stall" not in setting:  # all 12 epochs run: the warning comes once, at the end
        assert sum("Maximum iterations (12)" in w for w in calls_many["warnings"]) == 1
    _assert_identical(many, one)


def test_stall_settings_stop_inside_a_call(monkeypatch):
    # Guard: the kernel's own stop (after epoch 3 of a call that could run 11).
    est = FastMLPClassifier((9,), activation="logistic", batch_size=32, max_iter=12,
                            random_state=0, **SETTINGS["sgd-stall"])
    monkeypatch.setattr(backends.ChunkSizer, "_target", lambda self, rate: 100 * self.n_batches)
    calls = _fit(est, Y_CLS, True, monkeypatch)
    assert est.n_iter_ == 3 and calls["run_epochs"] == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_split_network_in_threads(monkeypatch, threads):
    # Batches split into parts (a bigger network's path), run in one or two
    # threads: the part that shuffles and the others meet at a barrier per epoch.
    monkeypatch.setattr(config, "MIN_THREADED_INPUTS", 0)
    monkeypatch.setattr(config, "MIN_THREADED_FLOPS", 0)
    from fastmlp.engine import threads as engine_threads

    monkeypatch.setattr(engine_threads, "cores_for_fit", lambda: threads)
    params = dict(hidden_layer_sizes=(40, 9), activation="logistic", batch_size=32, max_iter=8,
                  random_state=0, solver="adam", learning_rate_init=0.01)
    many, one = FastMLPRegressor(**params), FastMLPRegressor(**params)
    calls = _fit(many, Y_REG, True, monkeypatch)
    _fit(one, Y_REG, False, monkeypatch)
    assert calls["run_epochs"] > 0
    _assert_identical(many, one)


@pytest.mark.parametrize("random_state", [None, np.random.RandomState(0)],
                         ids=["global", "instance"])
def test_shared_random_states_shuffle_in_python(monkeypatch, random_state):
    # A RandomState passed in, or NumPy's global one, may be shared with other
    # threads: only a fit's own generator (an integer seed) is copied into the
    # kernel. Without shuffling, any random_state runs many epochs per call.
    est = FastMLPClassifier((9,), activation="logistic", batch_size=32, max_iter=6,
                            solver="sgd", learning_rate_init=0.05, random_state=random_state)
    assert _fit(est, Y_CLS, True, monkeypatch)["run_epochs"] == 0
    est.set_params(shuffle=False)
    assert _fit(est, Y_CLS, True, monkeypatch)["run_epochs"] > 0
    if random_state is not None:
        # Same draws as scikit-learn's per-epoch shuffles: equal to a fit from
        # an equal generator that never takes the many-epochs path.
        ours = FastMLPClassifier((9,), activation="logistic", batch_size=32, max_iter=6,
                                 solver="sgd", learning_rate_init=0.05,
                                 random_state=np.random.RandomState(5))
        theirs = FastMLPClassifier(**ours.get_params())
        theirs.set_params(random_state=np.random.RandomState(5))
        _fit(ours, Y_CLS, True, monkeypatch)
        _fit(theirs, Y_CLS, False, monkeypatch)
        _assert_identical(ours, theirs)


@pytest.mark.parametrize("setting", ["sgd-stall", "sgd-adaptive-stall", "adam"])
def test_many_epochs_per_call_match_sklearn(monkeypatch, setting):
    # And directly against scikit-learn's MLPClassifier with the same integer seed.
    from sklearn.neural_network import MLPClassifier

    params = dict(hidden_layer_sizes=(9,), activation="logistic", batch_size=32, max_iter=12,
                  random_state=0, **SETTINGS[setting])
    ours = FastMLPClassifier(**params)
    assert _fit(ours, Y_CLS, True, monkeypatch)["run_epochs"] > 0
    ref = MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, Y_CLS)
    assert ours.n_iter_ == ref.n_iter_ and ours.t_ == ref.t_
    assert ours._no_improvement_count == ref._no_improvement_count
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lr", [1.0, 2.0])
def test_divergence_names_the_same_epoch(monkeypatch, lr):
    # One batch per epoch: the first non-finite loss is always an epoch's last
    # batch, the case where counting whole epochs could include the failing one.
    params = dict(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=lr, tol=0.0,
                  batch_size=X.shape[0], max_iter=200, n_iter_no_change=300, random_state=0)
    messages = []
    for many in (True, False):
        est = FastMLPRegressor(**params)
        with pytest.raises(TrainingDivergedError) as info:
            _fit(est, Y_REG, many, monkeypatch)
        messages.append(str(info.value))
    assert "in epoch " in messages[0]
    assert messages[0] == messages[1]
