"""Every use of scikit-learn's and threadpoolctl's private API, and the guard that checks it.

fastmlp's estimators subclass scikit-learn's MLPs and override their private
training hooks (:data:`SKLEARN_HOOKS`); they also reuse a few private helpers
that have no public equivalent (parameter constraints, sample and feature
counts, the L-BFGS result check). Private API may change in any release, so
this module is the only one that imports it, and on import it checks that
every hook still exists with the signature fastmlp was written against. A
missing helper or a changed hook stops ``import fastmlp`` with
:class:`SklearnIncompatibleError`, naming the scikit-learn versions fastmlp
was tested with: training on hooks whose meaning may have changed could
silently give different models.

The versions tested are those of ``pyproject.toml``'s lower bounds and the
newest releases (``noxfile.py``'s ``oldest`` and ``newest`` sessions).
"""

import inspect

import numpy as np
import scipy
import sklearn
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.fixes import parse_version

#: The scikit-learn releases fastmlp's test matrix ran: the oldest and the newest.
TESTED_SKLEARN = ("1.7.0", "1.9.1")

#: Private scikit-learn methods fastmlp overrides or calls, with their parameters.
SKLEARN_HOOKS = {
    (MLPClassifier, "_fit"): ("self", "X", "y", "sample_weight", "incremental"),
    (MLPClassifier, "_fit_stochastic"): (
        "self", "X", "y", "sample_weight", "activations", "deltas", "coef_grads",
        "intercept_grads", "layer_units", "incremental"),
    (MLPClassifier, "_fit_lbfgs"): (
        "self", "X", "y", "sample_weight", "activations", "deltas", "coef_grads",
        "intercept_grads", "layer_units"),
    (MLPClassifier, "_forward_pass_fast"): ("self", "X", "check_input"),
    (MLPClassifier, "_initialize"): ("self", "y", "layer_units", "dtype"),
    (MLPClassifier, "_update_no_improvement_count"): (
        "self", "early_stopping", "X", "y", "sample_weight"),
    (MLPClassifier, "_check_solver"): ("self",),
    (MLPClassifier, "_score"): ("self", "X", "y", "sample_weight"),
    (MLPClassifier, "_validate_input"): ("self", "X", "y", "incremental", "reset"),
    (MLPRegressor, "_validate_input"): ("self", "X", "y", "incremental", "reset"),
}


class SklearnIncompatibleError(ImportError):
    """The installed scikit-learn lacks or changed private API fastmlp relies on."""


def _incompatible(what):
    low, high = TESTED_SKLEARN
    return SklearnIncompatibleError(
        f"fastmlp cannot run with scikit-learn {sklearn.__version__}: {what}. fastmlp "
        f"subclasses scikit-learn's MLPs and relies on their private training hooks; it was "
        f"tested with scikit-learn {low} to {high}. Install a tested release "
        f"(pip install 'scikit-learn>={low},<={high}') or upgrade fastmlp.")


def check_sklearn_hooks(hooks=None):
    """Raise unless every hook exists with the parameters fastmlp expects.

    Parameters
    ----------
    hooks : dict, default=None
        ``{(class, method name): parameter names}``; None checks
        :data:`SKLEARN_HOOKS`.

    Raises
    ------
    SklearnIncompatibleError
        Naming the first hook that is missing or whose parameters differ.
    """
    for (cls, name), expected in (SKLEARN_HOOKS if hooks is None else hooks).items():
        method = getattr(cls, name, None)
        if method is None:
            raise _incompatible(f"{cls.__name__}.{name} no longer exists")
        found = tuple(inspect.signature(method).parameters)
        if found != expected:
            raise _incompatible(
                f"{cls.__name__}.{name} now takes ({', '.join(found)}) instead of "
                f"({', '.join(expected)})")


try:
    from sklearn.utils._param_validation import Options, StrOptions
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import _num_features, _num_samples
except ImportError as error:  # pragma: no cover - depends on the installed release
    raise _incompatible(f"a private helper is missing ({error})") from error

check_sklearn_hooks()


def check_optimize_result(result, max_iter):
    """scikit-learn's check of an L-BFGS result: warns if it did not converge.

    Parameters
    ----------
    result : scipy.optimize.OptimizeResult
        What ``scipy.optimize.minimize`` returned.
    max_iter : int
        The iteration limit it was given.

    Returns
    -------
    n_iter : int
        The iterations run, as scikit-learn's MLP records them.
    """
    return _check_optimize_result("lbfgs", result, max_iter)


def lbfgs_iprint_options(iprint):
    """The ``iprint`` option scikit-learn passes to L-BFGS-B: none from SciPy 1.15 on.

    SciPy 1.15 deprecated ``iprint`` for L-BFGS-B; scikit-learn (>= 1.7.1,
    ``utils.fixes._get_additional_lbfgs_options_dict``) then leaves it out.

    Parameters
    ----------
    iprint : int
        Verbosity for SciPy releases that still take it.

    Returns
    -------
    options : dict
        ``{"iprint": iprint}`` or ``{}``.
    """
    return {} if parse_version(scipy.__version__) >= parse_version("1.15") else {"iprint": iprint}


def num_samples_and_features(X):
    """Rows and columns of any input scikit-learn accepts, before validation.

    Parameters
    ----------
    X : array-like or sparse matrix
        The input, as given to ``fit``.

    Returns
    -------
    n_samples, n_features : int

    Raises
    ------
    TypeError or ValueError
        When X is not a matrix.
    """
    return _num_samples(X), _num_features(X)


def _label_binarizer_by_hand(classes):
    binarizer = LabelBinarizer()
    binarizer.classes_ = classes
    binarizer.y_type_ = "binary" if classes.shape[0] == 2 else "multiclass"
    binarizer.sparse_input_ = False
    return binarizer


def _same_state(a, b):
    return vars(a).keys() == vars(b).keys() and all(
        np.array_equal(value, vars(b)[key]) for key, value in vars(a).items())


# Whether writing LabelBinarizer's fitted attributes gives what its fit gives
# (checked on one case): otherwise its own, slower fit is used.
_BINARIZER_BY_HAND = _same_state(_label_binarizer_by_hand(np.arange(3)),
                                 LabelBinarizer().fit(np.arange(3)))


def fitted_label_binarizer(classes):
    """A LabelBinarizer fitted to integer labels whose sorted classes are ``classes``.

    Sets the fitted attributes directly (~1 us instead of ~2 ms for
    ``fit``, whose label-type checks dominate small fits) when the installed
    scikit-learn's ``fit`` is known to set exactly those; otherwise fits.

    Parameters
    ----------
    classes : ndarray of int, shape (n_classes,)
        Sorted, unique, at least two.

    Returns
    -------
    binarizer : LabelBinarizer
    """
    if _BINARIZER_BY_HAND:
        return _label_binarizer_by_hand(classes)
    return LabelBinarizer().fit(classes)


def set_blas_threads(lib, n):
    """Set a BLAS library's threads through threadpoolctl, from any Python thread.

    threadpoolctl >= 3.8 lets only the first Python thread that set a limit
    change a pthreads OpenBLAS and silently ignores the others; its private
    ``_real_set_num_threads`` sets the limit regardless. Without it (older
    threadpoolctl, or OpenMP builds, where the limit is per thread anyway) the
    public ``set_num_threads`` is used.

    Parameters
    ----------
    lib : threadpoolctl LibController
        One BLAS library.
    n : int
        Threads.
    """
    real_set = getattr(lib, "_real_set_num_threads", None)
    if real_set is not None and getattr(lib, "threading_layer", None) != "openmp":
        real_set(n)
    else:
        lib.set_num_threads(n)


__all__ = ["Options", "SKLEARN_HOOKS", "SklearnIncompatibleError", "StrOptions",
           "TESTED_SKLEARN", "check_optimize_result", "check_sklearn_hooks",
           "fitted_label_binarizer", "lbfgs_iprint_options", "num_samples_and_features",
           "set_blas_threads"]
