"""The GPU suite: every GPU benchmark in one command, one JSON report each.

    python -m bench.gpu_suite --out DIR            # one H100 / H200, JAX: under 8 minutes
    python -m bench.gpu_suite --out DIR --smoke    # the same code at toy sizes, on a CPU

Each benchmark runs in its own process on the JAX backend (`KERAS_BACKEND`
is set to `jax`), so a crash or a timeout costs that report only and every
benchmark starts with the whole device memory. Reports, in the order they
run (the most telling first, in case the budget runs out):

1. `matmul_ceiling.json`: the bfloat16 matmul ceiling (bench.matmul_ceiling,
   8192^3 chains), the MFU denominator passed to the training benchmarks;
2. `attention_probe.json`: which kernel each of zoo's attention calls uses,
   and its time (bench.attention_probe);
3. `vit_b16_b256.json`: ViT-B/16 @224 training, batch 256, zoo vs
   keras-hub in one process (bench.vit_training, `mixed_bfloat16`);
4. `transformer_base_b256.json`: `transformer_base` training, batch 256,
   source and target length 128, vocabulary 32,000, zoo vs keras-hub
   (bench.translation_training);
5. `plain_jax_vit_b16.json`: the lean pure-JAX ViT-B/16 step at batch 256
   (bench.plain_jax_vit);
6. `vit_b16_b128.json`: as 3 at batch 128 (not run with `--smoke`: the
   same code as 3);

then `summary.json` with the headline numbers of each, and `NAME.log`, the
output of each process. A benchmark that fails or runs out of time gets a
report with its error; benchmarks that would start with less than
`--min-start-seconds` of the `--budget-seconds` left are skipped.

Needs JAX, Keras and keras-hub only: no TensorFlow is imported on this
path (tests/bench/test_gpu_suite.py runs `--smoke` with TensorFlow blocked).
BENCHMARKS.md ("GPU") has the command sequence for a bare GPU machine.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WINDOWS = ["--windows", "5", "--window-seconds", "2", "--warmup-steps", "3"]
SMOKE_WINDOWS = ["--windows", "1", "--window-seconds", "0.05", "--warmup-steps", "0"]
VIT_SMOKE = ["--preset", "vit_tiny_patch4_32", "--layers", "1", "--batch-size", "4", "--dtype-policy", "mixed_bfloat16"]


@dataclasses.dataclass
class Benchmark:
    name: str
    module: str
    args: list
    smoke_args: list  # None: not run with --smoke (the same code as another benchmark)
    takes_ceiling: bool = False  # gets --ceiling-tflops from matmul_ceiling


def vit(batch, smoke=True):
    return Benchmark(
        f"vit_b16_b{batch}", "bench.vit_training",
        ["--preset", "vit_base_patch16_224", "--batch-size", str(batch), "--dtype-policy", "mixed_bfloat16", *WINDOWS],
        VIT_SMOKE + SMOKE_WINDOWS if smoke else None, takes_ceiling=True,
    )


BENCHMARKS = [
    Benchmark("matmul_ceiling", "bench.matmul_ceiling", ["--dtype", "bfloat16", "--size", "8192"],
              ["--dtype", "bfloat16", "--size", "128", "--repeats", "2"]),
    Benchmark("attention_probe", "bench.attention_probe", [], ["--smoke"]),
    vit(256),
    Benchmark(
        "transformer_base_b256", "bench.translation_training",
        ["--preset", "transformer_base", "--batch-size", "256", "--source-length", "128", "--target-length", "128",
         "--vocab-size", "32000", "--dtype-policy", "mixed_bfloat16", *WINDOWS],
        ["--preset", "transformer_tiny", "--layers", "1", "--batch-size", "4", "--source-length", "9",
         "--target-length", "7", "--vocab-size", "50", "--dtype-policy", "mixed_bfloat16", *SMOKE_WINDOWS],
        takes_ceiling=True,
    ),
    Benchmark(
        "plain_jax_vit_b16", "bench.plain_jax_vit", ["--batch-size", "256", *WINDOWS],
        ["--image-size", "32", "--patch-size", "16", "--d-model", "32", "--depth", "1", "--heads", "2",
         "--mlp-dim", "64", "--classes", "10", "--batch-size", "4", "--pad-to", "16", *SMOKE_WINDOWS],
        takes_ceiling=True,
    ),
    vit(128, smoke=False),  # the b256 code at another batch size
]


def _tail(text, limit=4000):
    return text[-limit:] if text else ""


def run_benchmark(bench, out, smoke, ceiling, timeout, env):
    """Runs one benchmark in a subprocess; returns its report (or an error report)."""
    path = out / f"{bench.name}.json"
    command = [sys.executable, "-m", bench.module, *(bench.smoke_args if smoke else bench.args), "--json", str(path)]
    if bench.takes_ceiling and ceiling:
        command += ["--ceiling-tflops", f"{ceiling:.6g}"]
    start = time.perf_counter()
    error = None
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        log = result.stdout + result.stderr
        if result.returncode != 0:
            error = f"exit status {result.returncode}"
    except subprocess.TimeoutExpired as expired:
        log = "".join(part.decode() if isinstance(part, bytes) else (part or "")
                      for part in (expired.stdout, expired.stderr))
        error = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    (out / f"{bench.name}.log").write_text(_tail(log, 200_000), encoding="utf-8")
    if error is None and path.exists():
        report = json.loads(path.read_text(encoding="utf-8"))
    else:
        error = error or "no report written"
        report = {"benchmark": bench.name, "error": error, "log_tail": _tail(log)}
    report["suite"] = {"name": bench.name, "command": command, "seconds": round(seconds, 1)}
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return report


def headline(report):
    """The few numbers of a report worth reading first."""
    if "error" in report:
        return {"error": report["error"]}
    kind = report.get("benchmark")
    if kind == "matmul_ceiling":
        return {"tflops_per_s": report["tflops_per_s"], "device": report["device"]}
    if kind in ("vit_training", "translation_training"):
        best = report["best_setting"]
        numbers = {
            "zoo_over_keras_hub": report["zoo_over_keras_hub_each_at_best"],
            "per_s": {side: report["per_s"][best[side]][side]["median"] for side in best},
            "unit": report["unit"],
            "zoo_attention_kernels": report.get("zoo_attention_kernels"),
        }
        if "mfu" in report:
            numbers["mfu"] = report["mfu"]
        return numbers
    if kind == "plain_jax_vit":
        return {"per_s": {k: v["median"] for k, v in report["per_s"].items()}, "mfu": report.get("mfu")}
    if kind == "attention_probe":
        return {"zoo_layer": report.get("summary"), "model_calls": report.get("model_calls")}
    return {}


def run_suite(out, smoke=False, budget_seconds=450.0, min_start_seconds=60.0, only=None, benchmarks=None):
    """Runs the benchmarks into `out`; returns the summary (also `out/summary.json`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    ceiling, summary = None, {"smoke": smoke, "budget_seconds": budget_seconds, "benchmarks": {}}
    for bench in benchmarks or BENCHMARKS:
        if (only and bench.name not in only) or (smoke and bench.smoke_args is None):
            continue
        left = budget_seconds - (time.perf_counter() - start)
        if left < min_start_seconds:
            summary["benchmarks"][bench.name] = {"skipped": f"{left:.0f} s of the budget left"}
            continue
        report = run_benchmark(bench, out, smoke, ceiling, left, env)
        if bench.name == "matmul_ceiling" and "tflops_per_s" in report:
            ceiling = report["tflops_per_s"]
        summary["benchmarks"][bench.name] = dict(headline(report), seconds=report["suite"]["seconds"])
        print(f"[gpu_suite] {bench.name}: {report['suite']['seconds']} s"
              + (f", error: {report['error']}" if "error" in report else ""), flush=True)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the JSON reports (created)")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks the suite runs, on any CPU")
    parser.add_argument("--budget-seconds", type=float, default=450.0,
                        help="wall-clock budget for the whole suite; later benchmarks are skipped past it")
    parser.add_argument("--min-start-seconds", type=float, default=None,
                        help="skip a benchmark when less than this is left (default 60, smoke 0)")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {[b.name for b in BENCHMARKS]}")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; expected some of {[b.name for b in BENCHMARKS]}")
    min_start = args.min_start_seconds if args.min_start_seconds is not None else (0.0 if args.smoke else 60.0)
    summary = run_suite(args.out, args.smoke, args.budget_seconds, min_start, only)
    print(json.dumps(summary, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
