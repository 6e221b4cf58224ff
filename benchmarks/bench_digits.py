"""Small data: a whole ``fit`` on scikit-learn's digits, 64 sigmoid units, batch 32, 100 epochs.

With 64 inputs and 64 hidden units a mini-batch is a few microseconds of
arithmetic, so the per-batch Python overhead of scikit-learn (and of the
NumPy backend) dominates; this is the regime of grid searches.
"""

import pytest
from sklearn.model_selection import train_test_split

from _benchkit import RoundTimer, epoch_flops, layer_units, make_classifier, quiet_fit, rate_info
from _machine import pedantic

# Smoke mode runs BLAS single-threaded (see conftest.smoke_single_thread).
pytestmark = pytest.mark.usefixtures("smoke_single_thread")

HIDDEN = (64,)
BATCH_SIZE = 32
#: Epochs per fit: 100 in full mode, 10 in smoke mode.
EPOCHS, SMOKE_EPOCHS = 100, 10
ROUNDS = 5


@pytest.fixture(scope="module")
def digits_split(digits):
    """Stratified 75 % / 25 % split of digits (1347 training rows, 450 test rows)."""
    X, y = digits
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def make_digits_model(lib, epochs):
    """The benchmarked classifier: exactly ``epochs`` epochs (no early stop)."""
    return make_classifier(lib, HIDDEN, BATCH_SIZE, "float64", max_iter=epochs,
                           n_iter_no_change=epochs + 1)


@pytest.mark.benchmark(group="digits-fit 64-64-10")
@pytest.mark.parametrize("lib", ["numba", "numpy", "sklearn"])
def test_digits_fit(benchmark, lib, digits_split, smoke, gemm, machine_check):
    """A full fit per round; the model must then classify the held-out digits well."""
    X, X_test, y, y_test = digits_split
    epochs = SMOKE_EPOCHS if smoke else EPOCHS
    quiet_fit(make_digits_model(lib, 1), X, y)  # compiles (or loads the cache), untimed
    timer = RoundTimer()
    model = pedantic(benchmark, machine_check, "float64", timer.wrap(quiet_fit),
                     lambda: ((make_digits_model(lib, epochs), X, y), {}),
                     1 if smoke else ROUNDS)
    assert model.n_iter_ == epochs
    accuracy = float(model.score(X_test, y_test))
    units = layer_units(X.shape[1], HIDDEN, 10)
    benchmark.extra_info.update(
        lib=lib, dtype="float64", batch_size=BATCH_SIZE, epochs=epochs,
        layers="-".join(map(str, units)), n_samples=int(X.shape[0]), test_accuracy=accuracy,
        final_loss=float(model.loss_), smoke=bool(smoke), seconds_per_epoch=timer.best / epochs,
        **rate_info(epochs * epoch_flops(units, X.shape[0]), epochs * X.shape[0], timer.best,
                    gemm, "float64"))
    # 10 classes; a 64-unit sigmoid net reaches ~0.95 within a few epochs here.
    assert accuracy > 0.9
