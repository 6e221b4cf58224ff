"""The package's layers import in one direction only.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): ``fastmlp.bench`` above the public
face (estimators, streaming, datasets), above ``fastmlp.engine``, above ``fastmlp.kernels``, above
``fastmlp.config``; the estimators never import the kernels or numba directly. ``import fastmlp``
must not import numba, which function-level imports in the engine make possible but no contract
can see, so a fresh interpreter checks it.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter (test extra) checks the layers")

ROOT = Path(__file__).resolve().parents[1]


def _lint(root):
    """Run lint-imports on the package and pyproject.toml found in ``root``."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")
    env = {"PYTHONPATH": str(root), "PATH": "", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_are_kept():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


# Each edit breaks one rule: the contracts must notice it.
VIOLATIONS = {
    "kernels import the engine": ("fastmlp/kernels/aligned.py", "import fastmlp.engine.network\n"),
    "estimators import the kernels": ("fastmlp/estimators.py", "import fastmlp.kernels.exp\n"),
    "estimators import numba": ("fastmlp/estimators.py", "import numba\n"),
    "the engine imports the bench": ("fastmlp/engine/network.py", "import fastmlp.bench.run\n"),
    "config imports the engine": ("fastmlp/config.py", "import fastmlp.engine\n"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_a_broken_rule_is_caught(tmp_path, name):
    shutil.copytree(ROOT / "fastmlp", tmp_path / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path, line = VIOLATIONS[name]
    with open(tmp_path / path, "a") as f:
        f.write(line)
    done = _lint(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "1 broken" in done.stdout


def test_import_fastmlp_does_not_import_numba():
    code = "import sys, fastmlp; print(sorted(m for m in ('numba', 'llvmlite') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
