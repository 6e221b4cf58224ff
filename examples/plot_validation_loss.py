"""
Training loss versus validation loss
====================================

With ``early_stopping=True``, fastmlp records beside scikit-learn's
``validation_scores_`` (accuracy) the *loss* on the held-out rows after each
epoch, ``validation_loss_curve_``: the same loss function as ``loss_curve_``,
with the same L2 term, so the two curves can be drawn on one axis. Where the
training loss keeps falling while the validation loss turns up, the network
has begun to over-fit; early stopping keeps the weights of the best
validation epoch.

The data are 4,000 MNIST training images (:func:`fastmlp.datasets.load_mnist`,
read from ``FASTMLP_DATA`` or the per-user cache, never downloaded here), or
scikit-learn's 8x8 digits when MNIST is not on this machine.
"""

import numpy as np
from sklearn.datasets import load_digits

from fastmlp import FastMLPClassifier
from fastmlp.datasets import load_mnist, mnist_available

if mnist_available():
    X, y = load_mnist("train")
    X, y = X[:4000], y[:4000]
    dataset = "MNIST, 4,000 images"
else:
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    dataset = "scikit-learn digits"

# A wide sigmoid network, a large step and a small training set over-fit
# quickly; n_iter_no_change is large so that the curves go on past the best
# epoch and show it.
clf = FastMLPClassifier(hidden_layer_sizes=(128,), activation="logistic", solver="sgd",
                        learning_rate_init=0.2, momentum=0.9, alpha=1e-5,
                        early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=15, max_iter=100, random_state=0)
clf.fit(X, y)

best = int(np.argmax(clf.validation_scores_))
print(f"{dataset}: {clf.n_iter_} epochs, best validation epoch {best + 1}")
print(f"training loss {clf.loss_curve_[best]:.4f}, validation loss "
      f"{clf.validation_loss_curve_[best]:.4f}, validation accuracy "
      f"{clf.validation_scores_[best]:.4f} at the best epoch")
print(f"lowest validation loss {min(clf.validation_loss_curve_):.4f} at epoch "
      f"{int(np.argmin(clf.validation_loss_curve_)) + 1}")

# %%
# The two curves
# --------------
import matplotlib.pyplot as plt  # noqa: E402

epochs = np.arange(1, clf.n_iter_ + 1)
fig, ax = plt.subplots(figsize=(6.4, 4))
ax.plot(epochs, clf.loss_curve_, label="training loss (loss_curve_)")
ax.plot(epochs, clf.validation_loss_curve_, label="validation loss (validation_loss_curve_)")
ax.axvline(best + 1, color="grey", linestyle=":", label="best validation accuracy")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("log-loss + L2 term")
ax.set_title(f"FastMLPClassifier on {dataset}")
ax.legend()
fig.tight_layout()
plt.show()
