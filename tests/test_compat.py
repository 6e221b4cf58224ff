"""Private scikit-learn API stays in fastmlp/_compat.py, which refuses hooks that changed."""

import ast
import inspect
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer

import fastmlp
from fastmlp import _compat

PACKAGE = pathlib.Path(fastmlp.__file__).parent
COMPAT = PACKAGE / "_compat.py"


def _private_uses(path):
    """(line, what) of each private name of scikit-learn or threadpoolctl the module uses."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules, names = [node.module], [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [alias.name for alias in node.names], []
        elif isinstance(node, ast.Attribute):
            # threadpoolctl's private setter, and LabelBinarizer's fitted attributes
            if node.attr in ("_real_set_num_threads", "y_type_", "sparse_input_") and (
                    isinstance(node.ctx, ast.Store) or node.attr.startswith("_")):
                found.append((node.lineno, node.attr))
            continue
        elif isinstance(node, ast.Constant) and node.value == "_real_set_num_threads":
            found.append((node.lineno, node.value))
            continue
        else:
            continue
        for module in modules:
            if module.split(".")[0] not in ("sklearn", "threadpoolctl"):
                continue
            parts = module.split(".") + names
            found += [(node.lineno, f"{module}: {part}") for part in parts
                      if part.startswith("_")]
    return found


def test_private_api_is_used_only_in_the_compat_module():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20 and COMPAT in modules
    offenders = {str(path.relative_to(PACKAGE)): uses for path in modules
                 if path != COMPAT and (uses := _private_uses(path))}
    assert offenders == {}
    assert _private_uses(COMPAT)  # the scan does see private imports


def test_scan_catches_each_kind_of_private_use(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(textwrap.dedent("""
        from sklearn.utils import _safe_indexing
        from sklearn.utils._param_validation import StrOptions
        import sklearn.utils._available_if
        lib._real_set_num_threads(2)
        binarizer.y_type_ = "binary"
    """))
    assert sorted(line for line, _ in _private_uses(module)) == [2, 3, 4, 5, 6]


def test_installed_sklearn_has_every_hook():
    _compat.check_sklearn_hooks()  # as on import
    for (cls, name), parameters in _compat.SKLEARN_HOOKS.items():
        assert tuple(inspect.signature(getattr(cls, name)).parameters) == parameters


def _fit_stochastic_without_sample_weight(self, X, y, activations, deltas, coef_grads,
                                          intercept_grads, layer_units, incremental):
    raise AssertionError("never called")


@pytest.mark.parametrize("change", ["signature", "missing"])
def test_changed_hook_is_refused_with_the_tested_versions(monkeypatch, change):
    if change == "signature":
        monkeypatch.setattr(MLPClassifier, "_fit_stochastic",
                            _fit_stochastic_without_sample_weight)
        expected = r"MLPClassifier\._fit_stochastic now takes \(self, X, y, activations"
    else:
        for cls in MLPRegressor.__mro__:
            if "_validate_input" in vars(cls):
                monkeypatch.delattr(cls, "_validate_input")
        expected = r"MLPRegressor\._validate_input no longer exists"
    with pytest.raises(_compat.SklearnIncompatibleError, match=expected) as info:
        _compat.check_sklearn_hooks()
    low, high = _compat.TESTED_SKLEARN
    message = str(info.value)
    assert f"tested with scikit-learn {low} to {high}" in message
    assert f"pip install 'scikit-learn>={low},<={high}'" in message
    assert isinstance(info.value, ImportError)


def _import_fastmlp_after(patch):
    code = textwrap.dedent(patch) + "\nimport fastmlp\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, timeout=300)


def test_import_fails_loudly_on_a_changed_hook():
    result = _import_fastmlp_after("""
        import sklearn.neural_network._multilayer_perceptron as mlp

        def _initialize(self, y, layer_units, dtype, sample_weight):
            pass

        mlp.BaseMultilayerPerceptron._initialize = _initialize
    """)
    assert result.returncode != 0
    assert "SklearnIncompatibleError" in result.stderr
    assert "_initialize now takes (self, y, layer_units, dtype, sample_weight)" in result.stderr
    assert f"tested with scikit-learn {_compat.TESTED_SKLEARN[0]}" in result.stderr


def test_import_fails_loudly_on_a_missing_helper():
    result = _import_fastmlp_after("""
        import sklearn.neural_network  # which holds its own reference
        import sklearn.utils.optimize

        del sklearn.utils.optimize._check_optimize_result
    """)
    assert result.returncode != 0
    assert "SklearnIncompatibleError" in result.stderr
    assert "a private helper is missing" in result.stderr


@pytest.mark.parametrize("classes", [np.arange(2), np.arange(7), np.array([-4, 0, 9])])
@pytest.mark.parametrize("by_hand", [True, False])
def test_fitted_label_binarizer_is_what_fit_gives(monkeypatch, classes, by_hand):
    assert _compat._BINARIZER_BY_HAND  # the installed scikit-learn takes the fast path
    monkeypatch.setattr(_compat, "_BINARIZER_BY_HAND", by_hand)
    ours = _compat.fitted_label_binarizer(classes)
    theirs = LabelBinarizer().fit(np.repeat(classes, 3))
    assert _compat._same_state(ours, theirs)
    y = np.repeat(classes, 2)
    np.testing.assert_array_equal(ours.transform(y), theirs.transform(y))


def test_lbfgs_iprint_options_follow_scipy():
    newer = tuple(map(int, scipy.__version__.split(".")[:2])) >= (1, 15)
    assert _compat.lbfgs_iprint_options(-1) == ({} if newer else {"iprint": -1})


def test_blas_threads_set_through_private_setter_or_public_one():
    calls = []

    class Private:
        threading_layer = "pthreads"

        def _real_set_num_threads(self, n):
            calls.append(("private", n))

    class Public:
        threading_layer = "pthreads"

        def set_num_threads(self, n):
            calls.append(("public", n))

    class OpenMP(Private, Public):
        threading_layer = "openmp"

    for lib in (Private(), Public(), OpenMP()):
        _compat.set_blas_threads(lib, 3)
    assert calls == [("private", 3), ("public", 3), ("public", 3)]
