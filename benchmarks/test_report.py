"""report.py's results files and README table, and the CPU kinds they are named after."""

import json

import pytest

import report
from _results import README_END, README_START, cpu_kind

ZEN3 = {"brand_raw": "AMD EPYC", "vendor_id_raw": "AuthenticAMD", "family": 25, "model": 1,
        "flags": ["avx", "avx2", "fma"], "count": 2}
ZEN4 = {**ZEN3, "model": 0x11, "flags": ["avx2", "avx512f"]}
XEON = {"brand_raw": "Intel(R) Xeon(R) Platinum", "vendor_id_raw": "GenuineIntel",
        "family": 6, "model": 106, "flags": ["avx2", "avx512f"], "count": 2}


@pytest.mark.parametrize("cpu, kind", [(ZEN3, "amd-zen3-avx2"), (ZEN4, "amd-zen4-avx512"),
                                       (XEON, "intel-xeon-avx512"),
                                       ({"flags": ["sse2"]}, "sse")])
def test_cpu_kind(cpu, kind):
    assert cpu_kind({"machine_info": {"cpu": cpu}}) == kind


def _epoch(lib, batch_size, seconds, layers="784-128-10"):
    e = {"lib": lib, "batch_size": batch_size, "dtype": "float32", "layers": layers,
         "n_samples": 60000, "seconds": seconds, "gemm_fraction": 0.1, "gemm_gflops": 100.0}
    return {"group": f"mnist-epoch {layers} batch_size={batch_size}",
            "name": f"test_epoch[{lib}-float32-bs{batch_size}]",
            "stats": {"min": seconds, "median": seconds, "mean": seconds, "rounds": 5},
            "extra_info": e}


def _document():
    return {"machine_info": {"cpu": ZEN3, "fastmlp_bench": {"cpu_count": 2,
                                                           "versions": {"numpy": "2.4"}}},
            "benchmarks": [_epoch("numba", 32, 0.2), _epoch("sklearn", 32, 1.3),
                           _epoch("numba", 128, 0.16), _epoch("numpy", 128, 0.48),
                           _epoch("numba", 128, 9.9, layers="784-256-128-10")]}


def test_readme_table_names_the_cpu_and_the_source():
    text = report.readme_table(_document(), source="benchmarks/results/amd-zen3-avx2.json")
    assert "AMD EPYC (amd-zen3-avx2), 2 cores with numpy 2.4" in text
    lines = text.splitlines()
    assert "| 32 | **0.200 s** | – | 1.300 s (6.50×) |" in lines
    assert "| 128 | **0.160 s** | 0.480 s (3.00×) | – |" in lines
    assert "9.9" not in text  # the deeper network is not in the table
    assert text.endswith("from `benchmarks/results/amd-zen3-avx2.json`.")


def test_readme_table_without_epoch_benchmarks_is_an_error():
    with pytest.raises(ValueError, match="no mnist-epoch benchmarks"):
        report.readme_table({"benchmarks": []})


def test_results_files_and_readme(tmp_path):
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(_document()))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\noutro\n")
    assert report.main([str(source), "--results-dir", str(tmp_path / "results"),
                        "--readme", str(readme)]) == 0
    assert json.loads((tmp_path / "results" / "amd-zen3-avx2.json").read_text()) == _document()
    markdown = (tmp_path / "results" / "amd-zen3-avx2.md").read_text()
    assert markdown.startswith("# Benchmark results: AMD EPYC (amd-zen3-avx2), 2 cores")
    assert "### Epoch on MNIST, 784-128-10, float32" in markdown
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("intro\n") and text.endswith(f"{README_END}\noutro\n")
    assert "results/amd-zen3-avx2.json`." in text


def test_readme_without_markers_is_left_alone(tmp_path):
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(_document()))
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="lacks the lines"):
        report.main([str(source), "--readme", str(readme)])
    assert readme.read_text() == "no markers here\n"
