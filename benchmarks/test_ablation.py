"""benchmarks/ablation.py: its variants reach the kernels, and its table says what it measured.

Each patch is applied in a fresh process (it rebinds module attributes that
the rest of the suite must not see), then the kernel modules are imported,
which compiles nothing. The probe must show the variant in every kernel module
that uses the patched name, so a kernel module that imports the name under
another path or keeps its own copy fails this test instead of silently
measuring the baseline.
"""

import json
import os
import subprocess
import sys

import pytest

import ablation

# Each runs child processes for tens of seconds.
pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_PROBE = """
import json, sys
sys.path.insert(0, {here!r})
import ablation
patched = getattr(ablation, {patch!r})() or {{}}
import fastmlp.kernels.train, fastmlp.kernels.tiles, fastmlp.engine.backends
from fastmlp.engine import backends
print(json.dumps({{"probe": ablation._probe(patched),
                   "tiled": backends.{tiled}()}}))
"""


def _run_probe(patch):
    import fastmlp.engine.backends as backends

    # The function that reads TILED_PRODUCTS, whatever its current name.
    tiled = next(name for name in dir(backends)
                 if callable(getattr(backends, name)) and "tile" in name.lower())
    code = _PROBE.format(here=HERE, patch=patch, tiled=tiled)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_ablation_names_known_workloads_and_patches():
    """Each ablation measures defined workloads and makes its variant one way or another."""
    for name, entry in ablation.ABLATIONS.items():
        assert entry.workloads, name
        assert set(entry.workloads) <= set(ablation.WORKLOADS), name
        assert entry.patch or entry.random_state_object, name
        if entry.patch:
            assert callable(getattr(ablation, entry.patch)), name


@pytest.mark.parametrize("patch, attrs", [("_patch_prefetch", ["prefetch"]),
                                          ("_patch_exp", ["exp", "exp_float32"])])
def test_function_patches_reach_every_kernel_module(patch, attrs):
    """The replaced functions are the ones the kernel modules hold, in every module using them."""
    result = _run_probe(patch)["probe"]["holders"]
    for attr in attrs:
        assert result[attr]["users"], f"no kernel module uses {attr}: the probe is blind"
        assert result[attr]["stale"] == [], f"{attr} not replaced in {result[attr]['stale']}"


def test_knob_patches_take_effect():
    """The configuration patches change what the backends read."""
    assert _run_probe("_patch_tiles")["tiled"] is False
    probe = _run_probe("_patch_zero_columns")["probe"]
    assert probe["MIN_ZERO_COLUMN_INPUTS"] > 10 ** 9
    assert _run_probe("_patch_parts")["probe"]["KERNEL_PARTS"] == 1
    assert _run_probe("_patch_parts_4")["probe"]["KERNEL_PARTS"] == 4
    assert _run_probe("_patch_parts_8")["probe"]["KERNEL_PARTS"] == 8
    assert _run_probe("_patch_reach_guard")["probe"]["PREFETCH_REACH_STRIPS"] == 0


def test_null_flush_replaces_the_subnormal_mode():
    """With the FTZ patch, kernel calls enter the null context instead of setting MXCSR."""
    import fastmlp.kernels.fpenv as fpenv

    original = fpenv.subnormals_flushed
    try:
        ablation._patch_ftz()
        assert fpenv.subnormals_flushed is ablation._null_flush
    finally:
        fpenv.subnormals_flushed = original


def test_summary_line_reports_the_ratio_of_medians():
    """B / A of the medians, the per-round range and of the fastest, from the recorded times."""
    result = {"ablation": "x", "workload": "w", "metric": "cpu", "threads": 1,
              "A": [1.0, 2.0, 3.0], "B": [1.5, 2.2, 3.3], "A_fastest": [1.0, 2.0, 3.0],
              "B_fastest": [1.1, 2.0, 3.6], "same_bits": True}
    cells = [c.strip() for c in ablation.summary_line(result).strip("|").split("|")]
    assert cells[6] == "1.100"
    assert cells[7] == "1.100-1.500"
    assert cells[8] == "1.000"
    assert cells[9] == "yes"
