"""scikit-learn's own MLP tests, run against fastmlp's estimators.

The installed scikit-learn's ``neural_network/tests/test_mlp.py`` is loaded
as a new module whose ``MLPClassifier`` and ``MLPRegressor`` are
:class:`fastmlp.FastMLPClassifier` and :class:`fastmlp.FastMLPRegressor`; its
tests are collected from here, so every one of them runs against fastmlp. Only
the tests that read private attributes fastmlp does not keep are deselected
(:data:`PRIVATE_ATTRIBUTE_TESTS`, each with the attribute it reads).
"""

import importlib.util
import pathlib

import pytest
import sklearn.neural_network

from fastmlp import FastMLPClassifier, FastMLPRegressor

SUITE = (pathlib.Path(sklearn.neural_network.__file__).parent / "tests" / "test_mlp.py")

#: test name -> the private attribute it reads, which fastmlp's estimators do not have.
#: Five more tests of the file read or write private attributes that fastmlp
#: keeps as scikit-learn does, and pass, so they run: test_fit (sets
#: ``_no_improvement_count`` and others before ``partial_fit``),
#: test_learning_rate_warmstart and test_adaptive_learning_rate
#: (``_optimizer.learning_rate``), test_n_iter_no_change and
#: test_n_iter_no_change_inf (``_no_improvement_count``).
PRIVATE_ATTRIBUTE_TESTS = {
    "test_gradient": "_coef_indptr (through scikit-learn's _loss_grad_lbfgs), set by "
                     "scikit-learn's _fit_lbfgs, which fastmlp replaces (fastmlp's own "
                     "gradients are checked in tests/test_gradients.py)",
}


def _load_suite():
    spec = importlib.util.spec_from_file_location("sklearn_test_mlp_on_fastmlp", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The tests look these names up in their module when they run.
    module.MLPClassifier = FastMLPClassifier
    module.MLPRegressor = FastMLPRegressor
    return module


_suite = _load_suite()


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture of the same name, at its default seed (42)."""
    return 42


def _skip_private(name, test):
    if name not in PRIVATE_ATTRIBUTE_TESTS:
        return test
    reason = f"reads {PRIVATE_ATTRIBUTE_TESTS[name]}, which fastmlp's estimators do not keep"
    return pytest.mark.skip(reason=reason)(test)


globals().update({name: _skip_private(name, obj) for name, obj in vars(_suite).items()
                  if name.startswith("test_") and callable(obj)})


def test_the_suite_runs_against_fastmlp():
    assert _suite.MLPClassifier is FastMLPClassifier
    assert _suite.MLPRegressor is FastMLPRegressor
    n_tests = sum(name.startswith("test_") for name in vars(_suite))
    assert n_tests > 40  # the whole file, not a part of it
    assert set(PRIVATE_ATTRIBUTE_TESTS) <= set(vars(_suite))  # each deselection exists
