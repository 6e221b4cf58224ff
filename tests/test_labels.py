"""fastmlp.engine.labels encodes targets exactly as scikit-learn's MLPClassifier does.

The fast paths (integer labels: a first fit, and partial_fit against the
fitted classes) are compared with scikit-learn's ``LabelBinarizer``; labels
outside the classes must raise scikit-learn's own error.
"""

import numpy as np
import pytest
from sklearn.preprocessing import LabelBinarizer

from fastmlp import FastMLPClassifier
from fastmlp.engine.labels import encode_labels


def _fitted_on(classes, warm_start=False):
    est = FastMLPClassifier(warm_start=warm_start)
    encode_labels(est, np.asarray(classes), incremental=False)
    return est


CASES = {
    "multiclass": ([0, 1, 2, 3], [3, 0, 2, 2, 1, 0]),
    "multiclass-subset": ([0, 1, 2, 3], [3, 3, 1]),  # two of four classes: still one-hot
    "multiclass-one-label": ([0, 1, 2], [2, 2, 2]),
    "binary": ([0, 1], [1, 0, 0, 1, 1]),
    "binary-other-labels": ([-4, 7], [7, 7, -4]),
    "sparse-labels": ([3, 10, 200, 1000], [1000, 3, 200, 10, 10]),
    "unsigned": (np.array([1, 2, 5], np.uint8), np.array([5, 1, 2], np.uint8)),
}


@pytest.mark.parametrize("y_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_partial_fit_encoding_equals_label_binarizer(case, y_dtype):
    classes, y = CASES[case]
    est = _fitted_on(classes)
    y = np.asarray(y) if np.asarray(y).dtype == np.uint8 else np.asarray(y, dtype=y_dtype)
    want = LabelBinarizer().fit(np.asarray(classes)).transform(y).astype(bool)
    got = encode_labels(est, y, incremental=True)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("y", [[3, 0, 2, 2, 1, 0], [1, 0, 0, 1, 1], [7, 7, -4],
                               [1000, 3, 200, 10, 10], np.array([5, 1, 2], np.uint8),
                               [2, 2, 2], ["b", "a", "a"], [0.0, 1.0, 2.0, 1.0]])
def test_first_fit_encoding_and_binarizer_equal_sklearns(y):
    # What MLPClassifier._validate_input does on a first fit: fit a binarizer on y,
    # transform y. The fitted binarizer also decodes predictions later.
    y = np.asarray(y)
    est = FastMLPClassifier()
    got = encode_labels(est, y, incremental=False)
    ref = LabelBinarizer().fit(y)
    want = ref.transform(y).astype(bool)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert vars(est._label_binarizer).keys() == vars(ref).keys()
    for name, value in vars(ref).items():
        np.testing.assert_array_equal(getattr(est._label_binarizer, name), value)
        assert type(getattr(est._label_binarizer, name)) is type(value)
    np.testing.assert_array_equal(est.classes_, ref.classes_)
    assert est.classes_.dtype == ref.classes_.dtype
    np.testing.assert_array_equal(est._label_binarizer.inverse_transform(want), y)


@pytest.mark.parametrize("bad", [[0, 4], [-1], [1, 2, 3, 99]])
def test_unknown_label_raises_sklearns_error(bad):
    est = _fitted_on([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        encode_labels(est, np.array(bad), incremental=True)


def test_warm_start_keeps_sklearns_same_classes_check():
    est = _fitted_on([0, 1, 2], warm_start=True)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        encode_labels(est, np.array([0, 1, 1]), incremental=True)


def test_string_labels_take_sklearns_path():
    est = _fitted_on(["a", "b", "c"])
    got = encode_labels(est, np.array(["c", "a"]), incremental=True)
    np.testing.assert_array_equal(got, [[False, False, True], [True, False, False]])
    with pytest.raises(ValueError, match="`y` has classes not in"):
        encode_labels(est, np.array(["d"]), incremental=True)


def test_partial_fit_matches_sklearn_end_to_end():
    # The encoded targets feed training: same labels, same model as scikit-learn's path.
    from sklearn.neural_network import MLPClassifier

    rng = np.random.RandomState(0)
    X = rng.rand(120, 5)
    y = rng.randint(0, 4, 120)
    params = dict(hidden_layer_sizes=(6,), solver="sgd", random_state=0, batch_size=16)
    ours = FastMLPClassifier(**params).partial_fit(X, y, classes=np.arange(5))
    ref = MLPClassifier(**params).partial_fit(X, y, classes=np.arange(5))
    for _ in range(2):
        ours.partial_fit(X, y[::-1].copy())
        ref.partial_fit(X, y[::-1].copy())
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-10)
