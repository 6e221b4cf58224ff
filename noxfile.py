"""The dependency matrix: the oldest versions ``pyproject.toml`` allows, and the newest.

``nox -s oldest`` installs every runtime dependency at exactly its lower bound
(read from ``pyproject.toml``, so the bounds declared are the bounds tested),
together, on Python 3.11, and runs the tests of the kernels, the estimators
and the scikit-learn trajectories. ``nox -s newest`` installs the newest
releases and runs the whole suite. Extra arguments go to pytest:
``nox -s oldest -- -x``.
"""

import pathlib
import tomllib

import nox
from packaging.requirements import Requirement

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

ROOT = pathlib.Path(__file__).parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# NumPy 1.24, the lower bound, has no wheels for Python 3.12.
OLDEST_PYTHON = "3.11"

# The test tools the oldest suite needs (from the `test` extra, at their newest
# releases that work with the oldest runtime dependencies).
OLDEST_TEST_TOOLS = ("pytest", "hypothesis", "pandas")

# The kernels, the estimators (scikit-learn's behaviour, messages and own MLP
# tests) and the trajectories compared with scikit-learn.
OLDEST_SUITE = [
    "tests/test_aligned.py", "tests/test_exp.py", "tests/test_fpenv.py",
    "tests/test_mt19937.py", "tests/test_tiles.py", "tests/test_gradients.py",
    "tests/test_optimizers.py", "tests/test_backends.py", "tests/test_labels.py",
    "tests/test_compat.py", "tests/test_estimators.py", "tests/test_bad_input.py",
    "tests/test_divergence.py", "tests/test_sklearn_mlp_suite.py",
    "tests/test_trajectory.py",
]


def lower_bounds(requirements):
    """``name==version`` for each ``name>=version`` requirement.

    Parameters
    ----------
    requirements : list of str
        PEP 508 requirements, each with a ``>=`` lower bound.

    Returns
    -------
    pins : list of str
    """
    pins = []
    for text in requirements:
        requirement = Requirement(text)
        lows = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(lows) != 1:
            raise ValueError(f"{text!r} needs exactly one '>=' lower bound to be tested")
        pins.append(f"{requirement.name}=={lows[0]}")
    return pins


@nox.session(python=OLDEST_PYTHON)
def oldest(session):
    """The oldest versions the bounds allow, installed together."""
    tools = [text for text in PROJECT["optional-dependencies"]["test"]
             if Requirement(text).name in OLDEST_TEST_TOOLS]
    session.install(".", *lower_bounds(PROJECT["dependencies"]), *tools)
    session.run("python", "-m", "pip", "list")
    session.run("pytest", "-p", "no:cacheprovider", *OLDEST_SUITE, *session.posargs)


@nox.session
def newest(session):
    """The newest releases of every dependency; the whole suite."""
    session.install("--upgrade", "--upgrade-strategy", "eager", ".[test]")
    session.run("python", "-m", "pip", "list")
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)
