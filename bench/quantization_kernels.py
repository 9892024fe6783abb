"""Which stock TensorFlow CPU kernel, if any, makes an int8 matmul faster than float32.

    python -m bench.quantization_kernels                       # all shapes, rows 1, 4, 32, 128
    TF_ENABLE_ONEDNN_OPTS=0 python -m bench.quantization_kernels
    python -m bench.quantization_kernels --smoke               # one shape, a few calls (the suite)

Times, side by side in one process, one `(rows, d_in) @ (d_in, d_out)`
product per route, for the matmul shapes of the decoder of a
Marian / transformer_base translator (`d_model` 512, `d_ff` 2048) and of
ViT-B (768, 3072), at `--rows` rows (a batch-1 greedy step is 1 row, a
batch-32 beam-4 step 128):

- `float`: float32 `MatMul`, the baseline;
- `weight_only`: what zoo's int8 export runs (`zoo.export.quantization`):
  int8 weights cast to float32 in the graph, a float32 `MatMul`, one scale
  per output channel;
- `int8_dynamic`: Keras' default int8 mode: activations quantized per row
  at run time (abs-max), `BatchMatMulV3` int8 x int8 -> int32 (Eigen),
  dequantized;
- `tf_quantization`: the `tf.quantization` ops: `QuantizeV2` of the
  activations (quint8, `MIN_FIRST`), the legacy `QuantizedMatMul` kernel
  (quint8 x quint8 -> qint32; it has no qint8-weight CPU kernel),
  `Dequantize`;
- `onednn`: oneDNN's `QuantizedMatMulWithBiasAndDequantize` (quint8
  activations, qint8 weights, float out), registered only in builds with
  oneDNN kernels on (pip's x86 TensorFlow by default); its output scale
  convention is not documented, so its error is reported as measured.

Each route runs `--repeats` products inside one `tf.function` loop (the
decoder's matmuls run inside a `tf.while_loop` too, so per-call Python
overhead is not counted), and the routes of a shape are timed in
alternating order over `--calls` calls; the report gives the median time
per product, its ratio to float (above 1: faster than float), the error
against a float64 product (`max |out - ref| / max |ref|`), the route's op
types and whether the op audit (`zoo.export.op_audit`) accepts them, and,
from a second process with `TF_ENABLE_ONEDNN_OPTS=0`, whether the route
runs without oneDNN (the stand-in for a TF Serving build without
`--config=mkl`; `--no-probe` skips it).

Written by hand: no library times TensorFlow's quantized kernels against
each other. Results and the decision they led to: BENCHMARKS.md,
"int8 kernels".
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from bench import common

ROUTES = ("float", "weight_only", "int8_dynamic", "tf_quantization", "onednn")
# (d_in, d_out) of each model's matmuls: attention projections, feed-forward up and down.
SHAPES = {
    "decoder": ((512, 512), (512, 2048), (2048, 512)),
    "vit": ((768, 768), (768, 3072), (3072, 768)),
}
ROWS = (1, 4, 32, 128)


# -- the routes --------------------------------------------------------------------
def _routes(w):
    """`{route: fn(x) -> float32 (rows, d_out)}` for float32 weights `w` (d_in, d_out)."""
    import tensorflow as tf

    w_float = tf.constant(w)
    # Per output channel, symmetric (what Keras' int8 layers store).
    channel_scale = np.abs(w).max(axis=0) / 127.0  # (d_out,)
    w_int8 = tf.constant(np.round(w / channel_scale).astype(np.int8))
    channel_scale = tf.constant(channel_scale.astype(np.float32))
    w_max = float(np.abs(w).max())
    # Stored as plain uint8 / int8 and bitcast in the graph: a quantized-dtype
    # tensor captured by a `tf.while_loop` has no CPU kernel to enter it.
    w_quint8 = tf.quantization.quantize(w_float, -w_max, w_max, tf.quint8, mode="MIN_FIRST")
    w_qint8 = tf.quantization.quantize(w_float, -w_max, w_max, tf.qint8, mode="SCALED")
    w_quint8_bytes = tf.constant(tf.bitcast(w_quint8.output, tf.uint8).numpy())
    w_qint8_bytes = tf.constant(tf.bitcast(w_qint8.output, tf.int8).numpy())
    zero_bias = tf.zeros([w.shape[1]], tf.float32)

    def float_route(x):
        return tf.matmul(x, w_float)

    def weight_only(x):
        return tf.matmul(x, tf.cast(w_int8, tf.float32)) * channel_scale

    def int8_dynamic(x):
        row_scale = tf.maximum(tf.reduce_max(tf.abs(x), axis=-1, keepdims=True), 1e-8) / 127.0  # (rows, 1)
        x_int8 = tf.cast(tf.clip_by_value(tf.round(x / row_scale), -127, 127), tf.int8)
        acc = tf.raw_ops.BatchMatMulV3(x=x_int8, y=w_int8, Tout=tf.int32)
        return tf.cast(acc, tf.float32) * row_scale * channel_scale

    def quantized_activations(x):
        low, high = tf.minimum(tf.reduce_min(x), 0.0), tf.maximum(tf.reduce_max(x), 0.0)
        return tf.quantization.quantize(x, low, high, tf.quint8, mode="MIN_FIRST")

    def tf_quantization(x):
        a = quantized_activations(x)
        out, low, high = tf.raw_ops.QuantizedMatMul(
            a=a.output, b=tf.bitcast(w_quint8_bytes, tf.quint8), min_a=a.output_min, max_a=a.output_max,
            min_b=w_quint8.output_min, max_b=w_quint8.output_max, Toutput=tf.qint32,
        )
        return tf.quantization.dequantize(out, low, high)

    def onednn(x):
        a = quantized_activations(x)
        return tf.raw_ops.QuantizedMatMulWithBiasAndDequantize(
            a=a.output, b=tf.bitcast(w_qint8_bytes, tf.qint8), bias=zero_bias, min_a=a.output_min, max_a=a.output_max,
            min_b=w_qint8.output_min, max_b=w_qint8.output_max, min_freezed_output=-1.0,
            max_freezed_output=1.0, Toutput=tf.float32, input_quant_mode="MIN_FIRST",
        )

    return {"float": float_route, "weight_only": weight_only, "int8_dynamic": int8_dynamic,
            "tf_quantization": tf_quantization, "onednn": onednn}


def _looped(route, repeats):
    """A `tf.function` running `route` `repeats` times in a `tf.while_loop`, as the
    decoder runs its matmuls; each input differs a little so nothing is hoisted."""
    import tensorflow as tf

    @tf.function
    def run(x):
        total = tf.constant(0.0)
        for i in tf.range(repeats):
            total += tf.reduce_sum(route(x + tf.cast(i, tf.float32) * 1e-6))
        return total

    return run


def in_while_loop(route, x):
    """None if two products of `route` run inside a `tf.while_loop` (as the decoder's
    matmuls do), else the first line of the error (`_looped` would fail too)."""
    import tensorflow as tf

    @tf.function
    def run(x):
        total = tf.constant(0.0)
        for i in tf.range(2):
            total += tf.reduce_sum(route(x + tf.cast(i, tf.float32)))
        return total

    try:
        run(x).numpy()
        return None
    except Exception as error:  # what fails is the finding
        return _first_line(error)


def route_ops(route, rows, d_in):
    """The op types of one product of `route`, and those the op audit refuses."""
    import tensorflow as tf

    from zoo.export.op_audit import unsupported_ops

    graph = tf.function(route).get_concrete_function(tf.TensorSpec([rows, d_in], tf.float32)).graph
    ops = sorted({op.type for op in graph.get_operations()} - {"Placeholder", "Const", "Identity", "NoOp"})
    return ops, unsupported_ops(ops)


def runs_here(routes, x):
    """`{route: None, or the first line of the error}` for one product of each route in a graph."""
    import tensorflow as tf

    errors = {}
    for name, route in routes.items():
        try:
            tf.function(route)(x).numpy()
            errors[name] = None
        except Exception as error:  # what fails is the finding
            errors[name] = _first_line(error)
    return errors


def _first_line(error):
    """`Type: message` of an error, skipping TensorFlow's generic headers."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if line != "Graph execution error:"] or [""]
    return f"{type(error).__name__}: {lines[0][:160]}"


# -- measuring ----------------------------------------------------------------------
def measure_shape(rows, d_in, d_out, calls, repeats=None, seed=0):
    """`{route: {"us": median microseconds per product, "error", ...}}` for one shape."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, d_in)).astype(np.float32)
    w = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
    reference = x.astype(np.float64) @ w.astype(np.float64)
    routes = _routes(w)
    failures = runs_here(routes, x)
    if repeats is None:  # about 1 GFLOP of float work per call
        repeats = int(np.clip(1e9 / (2 * rows * d_in * d_out), 3, 200))
    report, timed = {}, {}
    for name, route in routes.items():
        ops, refused = route_ops(route, rows, d_in)
        report[name] = {"ops": ops, "audit_refuses": refused, "error_here": failures[name],
                        "in_while_loop": in_while_loop(route, x) if failures[name] is None else None}
        if failures[name] is None:
            out = np.asarray(__import__("tensorflow").function(route)(x))
            report[name]["error"] = float(np.abs(out - reference).max() / np.abs(reference).max())
            timed[name] = _looped(route, repeats)
            timed[name](x).numpy()  # trace and warm up
    times = {name: [] for name in timed}
    names = list(timed)
    for call in range(calls):
        for name in names if call % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            timed[name](x).numpy()
            times[name].append((time.perf_counter() - start) / repeats * 1e6)
    for name, values in times.items():
        report[name]["us"] = statistics.median(values)
    if "float" in times:
        for name in times:
            report[name]["speed_vs_float"] = report["float"]["us"] / report[name]["us"]
    return report


def probe_without_onednn():
    """Which routes run with `TF_ENABLE_ONEDNN_OPTS=0`, from a fresh process:
    `{route: None or the error}`, or `{"probe": error}` if the process failed."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0")
    command = [sys.executable, "-m", "bench.quantization_kernels", "--probe"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"probe": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ''}"}
    return json.loads(lines[-1])


def table(results, without_onednn):
    """Markdown: one row per shape and rows count, float us and each route's speed vs float."""
    others = ROUTES[1:]
    lines = [
        "| model | rows x d_in x d_out | float us | " + " | ".join(f"{r} x float (err)" for r in others) + " |",
        "|---|---|---|" + "---|" * len(others),
    ]
    for entry in results:
        cells = []
        for route in others:
            r = entry["routes"][route]
            cells.append(f"{r['speed_vs_float']:.2f} ({r['error']:.1e})" if "us" in r else "fails")
        lines.append(f"| {entry['model']} | {entry['rows']} x {entry['d_in']} x {entry['d_out']} | "
                     f"{entry['routes']['float']['us']:.1f} | " + " | ".join(cells) + " |")
    first = results[0]["routes"]
    lines.append("")
    for route in ROUTES:
        refused = first[route]["audit_refuses"]
        runs = without_onednn.get(route, "not probed")
        lines.append(f"- {route}: ops {', '.join(first[route]['ops'])}; op audit: "
                     f"{'refuses ' + ', '.join(refused) if refused else 'accepts'}; "
                     f"in a tf.while_loop: {first[route]['in_while_loop'] or 'runs'}; "
                     f"with TF_ENABLE_ONEDNN_OPTS=0: {'runs' if runs is None else runs}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated rows per product")
    parser.add_argument("--models", default="decoder,vit", help=f"comma-separated, of {sorted(SHAPES)}")
    parser.add_argument("--calls", type=int, default=7, help="timed calls per route and shape")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (0: its default)")
    parser.add_argument("--no-probe", action="store_true", help="skip the TF_ENABLE_ONEDNN_OPTS=0 process")
    parser.add_argument("--smoke", action="store_true", help="one small shape, 2 calls (the test suite)")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    import tensorflow as tf

    if args.probe:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((4, 64)).astype(np.float32)
        print(json.dumps(runs_here(_routes(rng.standard_normal((64, 32)).astype(np.float32)), x)))
        return None
    threads = args.threads or "default"
    if args.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        except RuntimeError:  # TensorFlow already ran in this process (e.g. under pytest)
            threads = "default (TensorFlow was initialised before the flag could apply)"
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SHAPES]
    if unknown:
        raise SystemExit(f"--models takes {sorted(SHAPES)}. Received: {unknown}")
    rows = [int(r) for r in args.rows.split(",")]
    shapes = [(m, d_in, d_out) for m in models for d_in, d_out in SHAPES[m]]
    calls, repeats = args.calls, None
    if args.smoke:
        shapes, rows, calls, repeats = [("decoder", 512, 512)], [4], 2, 3
    results = []
    for model, d_in, d_out in shapes:
        for r in rows:
            results.append({"model": model, "rows": r, "d_in": d_in, "d_out": d_out,
                            "routes": measure_shape(r, d_in, d_out, calls, repeats)})
    without_onednn = {} if args.no_probe else probe_without_onednn()
    report = {
        "benchmark": "quantization_kernels",
        "system": common.system_info(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 pip builds)"),
        "threads": threads,
        "load_average": os.getloadavg(),
        "results": results,
        "without_onednn": without_onednn,
    }
    print(table(results, without_onednn))
    print(f"load average {os.getloadavg()}, threads {threads}, TF_ENABLE_ONEDNN_OPTS={report['onednn']}")
    common.emit(report, args.json)
    return report


if __name__ == "__main__":
    main()
