"""fastmlp: fast CPU training of sigmoid multi-layer perceptrons.

Numba-compiled kernels run whole fused forward/backward/update loops; the
estimators are drop-in replacements for scikit-learn's MLPClassifier and
MLPRegressor.
"""

__version__ = "0.1.0"

import sys as _sys

from fastmlp.estimators import FastMLPClassifier, FastMLPRegressor, TrainingDivergedError
from fastmlp.streaming import partial_fit_chunks

if "skl2onnx" in _sys.modules:
    # skl2onnx is in use: teach it fastmlp's estimators (fastmlp.export does, on import).
    from fastmlp import export as _export  # noqa: F401

__all__ = ["FastMLPClassifier", "FastMLPRegressor", "TrainingDivergedError", "partial_fit_chunks",
           "__version__"]
