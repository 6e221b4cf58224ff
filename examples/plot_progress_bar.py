"""
Progress bars and per-epoch callbacks
=====================================

fastmlp's estimators take scikit-learn's callbacks (:mod:`sklearn.callback`,
scikit-learn 1.9 or later). Each epoch is a task, so
:class:`~sklearn.callback.ProgressBar` (it needs ``rich``: ``pip install
fastmlp[progress]``) set on a :class:`~sklearn.model_selection.GridSearchCV`
shows the epochs of every fit under the search's own progress.

A callback of your own sees each epoch's end, with a ``fitted_estimator``
ready to predict, and stops the fit by returning True.
"""

import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split

from fastmlp import FastMLPClassifier

X, y = load_digits(return_X_y=True)
X = X / 16
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

clf = FastMLPClassifier(hidden_layer_sizes=(32,), activation="logistic", solver="sgd",
                        learning_rate_init=0.1, max_iter=30, random_state=0)

# %%
# A progress bar for a grid search
# --------------------------------
try:
    from sklearn.callback import ProgressBar

    progress = ProgressBar(max_propagation_depth=None)
except ImportError as error:  # scikit-learn < 1.9, or rich not installed
    progress = None
    print(f"No progress bar: {error}")

search = GridSearchCV(clf, {"alpha": [1e-4, 1e-2]}, cv=3)
if progress is not None:
    search.set_callbacks(progress)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)
print(f"best alpha {search.best_params_['alpha']}, test accuracy "
      f"{search.score(X_test, y_test):.3f}")


# %%
# A callback that stops training
# ------------------------------
# This one scores the model on held-out data after each epoch and stops the
# fit once the accuracy reaches a target.
class StopAtAccuracy:
    """Stop a fit once the accuracy on (X, y) reaches ``target``."""

    def __init__(self, X, y, target):
        self.X, self.y, self.target = X, y, target
        self.history = []

    def setup(self, estimator, context):
        """Nothing to prepare."""

    def teardown(self, estimator, context):
        """Nothing to release."""

    def on_fit_task_begin(self, estimator, context):
        """Nothing to do before a task."""

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        """Score each epoch's model; True stops the fit."""
        if context.task_name != "epoch":
            return False
        self.history.append(fitted_estimator.score(self.X, self.y))
        return self.history[-1] >= self.target


if hasattr(clf, "set_callbacks"):
    stopper = StopAtAccuracy(X_test, y_test, target=0.95)
    model = clf.set_params(max_iter=200).set_callbacks(stopper).fit(X_train, y_train)
    print(f"stopped after {model.n_iter_} epochs at test accuracy {stopper.history[-1]:.3f}")
else:
    print("This scikit-learn has no callback API (it arrived in 1.9).")
