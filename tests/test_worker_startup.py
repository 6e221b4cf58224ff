"""What a fresh process (a loky worker) pays for fastmlp before and during its first fit.

A loky worker of ``GridSearchCV(n_jobs=-1)`` is a new interpreter: it imports
fastmlp when it unpickles the estimator and loads the compiled kernels on its
first fit. These tests pin down that it imports Numba only when a fit needs
it, loads the kernels from Numba's disk cache instead of compiling them, and
loads only the few entry points the fit calls. Nothing here is timed.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastmlp

#: Compiled entry points a default fit may load: the training kernel and the
#: switch of the floating-point mode around it.
MAX_ENTRY_POINTS = 2

CHILD = textwrap.dedent("""
    import json, sys, warnings
    import fastmlp
    numba_on_import = "numba" in sys.modules
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(), fastmlp.FastMLPClassifier(max_iter=3,
                                                                         random_state=0))
        score = pipe.fit(X, y).score(X, y)
    from numba.core.dispatcher import Dispatcher
    loaded = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("fastmlp."):
            for attr, obj in vars(module).items():
                if isinstance(obj, Dispatcher) and obj.overloads:
                    loaded[f"{name}.{attr}"] = {"hits": sum(obj.stats.cache_hits.values()),
                                               "misses": sum(obj.stats.cache_misses.values())}
    print(json.dumps({"numba_on_import": numba_on_import, "score": score, "loaded": loaded}))
""")


def run_fresh_process(code):
    root = str(Path(fastmlp.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_fresh_process_imports_numba_late_and_loads_few_cached_entry_points():
    # This process fills Numba's disk cache with the fit's kernels (compiling them
    # if the cache is cold), as the parent of loky's workers does.
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        parent_score = make_pipeline(
            StandardScaler(), fastmlp.FastMLPClassifier(max_iter=3, random_state=0)
        ).fit(X, y).score(X, y)
    child = run_fresh_process(CHILD)
    assert child["numba_on_import"] is False  # unpickling an estimator does not pay for Numba
    assert child["score"] == parent_score  # the same fit, bit for bit
    loaded = child["loaded"]
    assert 1 <= len(loaded) <= MAX_ENTRY_POINTS, loaded
    for name, stats in loaded.items():
        # Loaded from the cache the parent wrote; a miss would be a compile (seconds).
        assert stats == {"hits": 1, "misses": 0}, (name, stats)
