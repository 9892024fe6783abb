"""bench.gpu_suite: the smoke run on a CPU without TensorFlow, and its failure handling."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import gpu_suite

ROOT = Path(__file__).resolve().parents[2]


def test_a_failed_benchmark_is_reported_and_the_suite_goes_on(tmp_path):
    broken = gpu_suite.Benchmark("broken", "bench.no_such_benchmark", [], [])
    summary = gpu_suite.run_suite(tmp_path, smoke=True, benchmarks=[broken, broken])
    report = json.loads((tmp_path / "broken.json").read_text())
    assert report["error"] == "exit status 1" and "No module named bench.no_such_benchmark" in report["log_tail"]
    assert summary["benchmarks"]["broken"]["error"] == "exit status 1"
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_benchmarks_past_the_budget_are_skipped(tmp_path):
    summary = gpu_suite.run_suite(tmp_path, budget_seconds=30, min_start_seconds=60)
    assert set(summary["benchmarks"]) == {b.name for b in gpu_suite.BENCHMARKS}
    assert all("skipped" in entry for entry in summary["benchmarks"].values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_unknown_benchmark_names_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_suite.main(["--out", str(tmp_path), "--only", "vit_b16_b256,vit_b17"])
    assert "unknown benchmarks ['vit_b17']" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_suite_runs_without_tensorflow(tmp_path):
    """`--smoke` on a CPU, every process with `import tensorflow` failing, as on the GPU machine."""
    blocker = tmp_path / "block_tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text('import sys\nsys.modules["tensorflow"] = None\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(ROOT)]), JAX_PLATFORMS="cpu")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "bench.gpu_suite", "--out", str(out), "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    expected = {b.name for b in gpu_suite.BENCHMARKS if b.smoke_args is not None}
    assert set(summary["benchmarks"]) == expected
    for name in expected:
        report = json.loads((out / f"{name}.json").read_text())
        assert "error" not in report, (name, report.get("log_tail"))
        assert report["system"]["backend"] == "jax"
    for name in ("vit_b16_b256", "transformer_base_b256"):
        headline = summary["benchmarks"][name]
        assert headline["zoo_over_keras_hub"] > 0 and set(headline["mfu"]) == {"zoo", "keras_hub"}
        assert all(kernel.startswith("keras (") for kernel in headline["zoo_attention_kernels"])
    probe = json.loads((out / "attention_probe.json").read_text())
    by_call = {}
    for entry in probe["zoo_layer"]:
        by_call.setdefault(entry["call"], {})[entry["forced"]] = entry
    assert len(by_call) == 5
    for entries in by_call.values():
        assert entries["auto"]["kernel"] == "keras" and entries["auto"]["ms"] > 0  # the CPU fallback
        assert entries["xla"]["computed_lengths"] == [16 if entries["xla"]["queries"] <= 16 else 32,
                                                      16 if entries["xla"]["keys"] <= 16 else 32]
        assert "NVIDIA GPU" in entries["cudnn"]["error"]
    assert all("cuDNN" in e["error"] for e in probe["raw"] if e["implementation"] == "cudnn")
    assert all(e["ms"] > 0 for e in probe["raw"] if e["implementation"] == "xla")
    assert sum(probe["model_calls"]["vit"].values()) == 2 and sum(probe["model_calls"]["translator"].values()) == 3
    plain = json.loads((out / "plain_jax_vit_b16.json").read_text())
    assert set(plain["per_s"]) == {"sgd_5tokens_xla", "sgd_16tokens_xla", "adamw_16tokens_xla"}
