"""scikit-learn's estimator checks, run on both fastmlp estimators.

Configured as scikit-learn configures its own MLPs for these checks
(``sklearn/utils/_test_common/instance_generator.py``): ``max_iter=100`` for
every check, and for ``check_sample_weight_equivalence_on_dense_data`` the
per-check settings of ``PER_ESTIMATOR_CHECK_PARAMS`` (scikit-learn applies
those only to its own classes, so they are applied here by check name). As in
scikit-learn's ``test_common.py``, ConvergenceWarning (and FutureWarning /
UserWarning) raised by the checks' deliberately short fits are ignored.

No check is expected to fail.
"""

import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._testing import ignore_warnings
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp import FastMLPClassifier, FastMLPRegressor

# Mirrors PER_ESTIMATOR_CHECK_PARAMS[MLPClassifier / MLPRegressor].
PER_CHECK_PARAMS = {
    FastMLPClassifier: {
        "check_sample_weight_equivalence_on_dense_data": dict(solver="lbfgs"),
    },
    FastMLPRegressor: {
        "check_sample_weight_equivalence_on_dense_data": dict(
            solver="sgd", tol=1e-2, random_state=42),
    },
}

ESTIMATORS = [
    FastMLPClassifier(max_iter=100),
    FastMLPRegressor(max_iter=100),
    # The NumPy path, which 'auto' takes for fits as small as the checks' (the
    # test suite pins 'auto' to the kernels: tests/conftest.py).
    FastMLPClassifier(max_iter=100, backend="numpy"),
    FastMLPRegressor(max_iter=100, backend="numpy"),
    # The primary path (sigmoid hidden units, SGD) on the compiled backend.
    FastMLPClassifier(max_iter=100, hidden_layer_sizes=(16,), activation="logistic",
                      solver="sgd", learning_rate_init=0.1),
    FastMLPRegressor(max_iter=100, hidden_layer_sizes=(16,), activation="logistic",
                     solver="sgd", learning_rate_init=0.01),
]


def _check_name(check):
    return getattr(check, "func", check).__name__


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    params = PER_CHECK_PARAMS[type(estimator)].get(_check_name(check))
    if params is not None:
        # A clone, as sklearn's _yield_instances_for_check does: the parametrized
        # instance is shared by all the checks.
        estimator = clone(estimator).set_params(**params)
    with ignore_warnings(category=(FutureWarning, ConvergenceWarning, UserWarning)):
        check(estimator)


def test_configuration_mirrors_sklearns_own_mlp_settings():
    # If scikit-learn changes how it configures MLP for these checks, follow it.
    instance_generator = pytest.importorskip(
        "sklearn.utils._test_common.instance_generator",
        reason="scikit-learn's private test configuration moved; nothing to mirror")
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    for ref_cls, fast_cls in [(MLPClassifier, FastMLPClassifier),
                              (MLPRegressor, FastMLPRegressor)]:
        assert instance_generator.INIT_PARAMS[ref_cls] == {"max_iter": 100}
        ref_per_check = instance_generator.PER_ESTIMATOR_CHECK_PARAMS.get(ref_cls, {})
        ours = PER_CHECK_PARAMS[fast_cls]
        assert set(ref_per_check) == set(ours)
        for check_name, params in ref_per_check.items():
            assert (params if isinstance(params, list) else [params]) == [ours[check_name]]
        assert ref_cls not in instance_generator.PER_ESTIMATOR_XFAIL_CHECKS
