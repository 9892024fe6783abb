"""Shared pieces of the benchmarks: flags, interleaved timing, system info, reports.

Every benchmark times zoo and its anchor in one process, alternating short
measured windows (A B B A A B ...) so that load from other processes on a
shared machine hits both sides alike, and reports for each side the median
throughput over windows, its spread (min, max, interquartile range) and the
ratio zoo / anchor. Absolute numbers depend on the machine and its load;
ratios from the same run are what to compare.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import time

import keras


# -- flags -----------------------------------------------------------------
def base_parser(description, batch_size, windows=5, window_seconds=3.0):
    """Flags every benchmark takes; each adds its own sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument(
        "--dtype-policy", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16", "bfloat16"),
        help="Keras dtype policy, set globally before any model is built.",
    )
    parser.add_argument("--windows", type=int, default=windows, help="measured windows per side")
    parser.add_argument("--window-seconds", type=float, default=window_seconds, help="length of one window")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps per side after compiling")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    return parser


def add_training_flags(parser):
    parser.add_argument(
        "--jit-compile", default="both", choices=("both", "false", "true", "auto"),
        help="XLA for model.compile; 'both' times False and True on TensorFlow (JAX always compiles).",
    )
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--mfu", action="store_true", help="also measure the matmul ceiling and report MFU")
    parser.add_argument(
        "--ceiling-tflops", type=float, default=None,
        help="report MFU against this matmul ceiling (TFLOP/s, e.g. from bench.matmul_ceiling) instead of measuring it",
    )
    return parser


def jit_settings(flag):
    """The jit_compile values to try for a --jit-compile flag on this backend."""
    if keras.backend.backend() != "tensorflow":
        return [True]
    return {"both": [False, True], "false": [False], "true": [True], "auto": ["auto"]}[flag]


def set_policy(name):
    keras.config.set_dtype_policy(name)


# -- timing ------------------------------------------------------------------
def _stats(values):
    ordered = sorted(values)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "iqr": q3 - q1,
        "windows": len(ordered),
    }


def run_window(step, seconds, min_steps=1):
    """Calls `step()` until `seconds` have passed (at least `min_steps` times).

    `step()` must block until its work is done (return a host value or call
    a sync) and returns how many units (images, tokens, ...) it processed.
    Returns units per second over the window.
    """
    units, steps = 0, 0
    start = time.perf_counter()
    while True:
        units += step()
        steps += 1
        elapsed = time.perf_counter() - start
        if steps >= min_steps and elapsed >= seconds:
            return units / elapsed, elapsed / steps


def interleaved(steps, windows, window_seconds, warmup_steps=2):
    """Times several `{name: step}` callables in alternating windows.

    Each step is first called `warmup_steps + 1` times untimed (compilation,
    caches). Then `windows` rounds run one window of every callable, the
    order reversed every other round (A B, B A, A B, ...) so neither side
    always follows the other. Returns `{name: {"per_s": stats, "step_ms": stats}}`.
    """
    names = list(steps)
    for name in names:
        for _ in range(warmup_steps + 1):
            steps[name]()
    rates = {name: [] for name in names}
    step_times = {name: [] for name in names}
    for round_index in range(windows):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            rate, step_time = run_window(steps[name], window_seconds)
            rates[name].append(rate)
            step_times[name].append(1000 * step_time)
    return {
        name: {"per_s": _stats(rates[name]), "step_ms": _stats(step_times[name])} for name in names
    }


def timed(fn, repeats):
    """Median and half-range of `repeats` wall times of `fn()` after one
    untimed call (compilation, warm-up): for runs too long for windows."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (max(times) - min(times)) / 2


def ratio(results, a, b, key="per_s"):
    """Median throughput of `a` over that of `b` (above 1: `a` is faster)."""
    return results[a][key]["median"] / results[b][key]["median"]


def block(x):
    """Waits for a backend tensor (or nested structure) to be computed."""
    backend = keras.backend.backend()
    leaves = keras.tree.flatten(x)
    if backend == "jax":
        for leaf in leaves:
            if hasattr(leaf, "block_until_ready"):
                leaf.block_until_ready()
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        for leaf in leaves:
            if hasattr(leaf, "numpy"):
                leaf.numpy()
                break  # one host copy waits for the whole step
    return x


# -- system information --------------------------------------------------------
def _versions():
    """Installed versions, read from package metadata: nothing is imported (a JAX
    run never loads TensorFlow or PyTorch just to name their versions)."""
    from importlib import metadata

    versions = {"keras": keras.__version__}
    for module, dist in (("tensorflow", "tensorflow"), ("keras_hub", "keras-hub"), ("jax", "jax"),
                         ("jaxlib", "jaxlib"), ("torch", "torch"), ("numpy", "numpy")):
        try:
            versions[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # not installed: not needed by this backend
            pass
    return versions


def device_name():
    """The accelerator the backend computes on, in words ("cpu" when none)."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            return f"{device.platform}: {getattr(device, 'device_kind', device)}"
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"gpu: {details.get('device_name', gpus[0].name)}"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"gpu: {torch.cuda.get_device_name(0)}"
    except Exception as error:  # report, never fail a benchmark over it
        return f"unknown ({error})"
    return f"cpu: {platform.processor() or platform.machine()}"


def system_info():
    """Date, machine, load, backend, dtype policy and library versions."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "host_cpus": os.cpu_count(),
        "load_average_1_5_15min": load,
        "backend": keras.backend.backend(),
        "device": device_name(),
        "dtype_policy": keras.config.dtype_policy().name,
        "versions": _versions(),
    }


# -- reports -------------------------------------------------------------------
def rounded(value, digits=4):
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def emit(report, path=None):
    """Prints the report as JSON (and writes it to `path`); returns it."""
    report = rounded(report)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return report


def count_params(model):
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def attention_kernels_of(model):
    """`{"kernel (reason)": number of layers}` over the zoo attention layers of `model`
    that have run (traced): which kernel computed its attention. Empty for other models."""
    from zoo.layers import kernels_used

    counts = {}
    for choice in kernels_used(model).values():
        counts[str(choice)] = counts.get(str(choice), 0) + 1
    return counts


# -- forward + backward of a piece of a model, on any backend --------------------
class _Piece(keras.layers.Layer):
    """Holds sublayers and a function of them, so JAX can call it statelessly."""

    def __init__(self, layers, fn, **kwargs):
        super().__init__(**kwargs)
        self.pieces = list(layers)
        self.fn = fn

    def call(self, *args, training=False):
        return self.fn(*args, training=training)


def forward_backward(layers, fn, args, jit_compile=True, training=False):
    """A callable running `fn(*args)` forward and backward, and blocking.

    The loss is `sum(output * c)` for a fixed random `c` shaped like the
    output (so every output element gets a gradient); gradients are taken
    with respect to the trainable weights of `layers` and to the first
    argument when it is a float input (e.g. the hidden states). `fn` is
    called as `fn(*args, training=training)` (dropout on or off).
    Returns 1 per call.
    """
    import numpy as np

    piece = _Piece(layers, fn, name="piece")
    backend = keras.backend.backend()
    wrt_input = "float" in str(keras.backend.standardize_dtype(args[0].dtype))
    first = fn(*args, training=training)  # builds any sublayer not built yet
    piece.built = True
    cotangent = keras.ops.convert_to_tensor(
        np.random.default_rng(0).standard_normal(tuple(first.shape)).astype("float32")
    )
    if backend == "tensorflow":
        import tensorflow as tf

        variables = [w.value for w in piece.trainable_weights]

        @tf.function(jit_compile=bool(jit_compile))
        def step(*inputs):
            with tf.GradientTape() as tape:
                if wrt_input:
                    tape.watch(inputs[0])
                out = piece(*inputs, training=training)
                loss = tf.reduce_sum(tf.cast(out, tf.float32) * cotangent)
            return tape.gradient(loss, ([inputs[0]] if wrt_input else []) + variables)

    elif backend == "jax":
        import jax

        trainable = [w.value for w in piece.trainable_weights]
        non_trainable = [w.value for w in piece.non_trainable_weights]

        def loss(tv, x, rest):
            out, _ = piece.stateless_call(tv, non_trainable, x, *rest, training=training)
            return (out.astype("float32") * cotangent).sum()

        grad = jax.jit(jax.grad(loss, argnums=(0, 1) if wrt_input else 0))

        def step(*inputs):
            return grad(trainable, inputs[0], tuple(inputs[1:]))

    elif backend == "torch":

        def step(*inputs):
            x = inputs[0].detach().requires_grad_(True) if wrt_input else inputs[0]
            out = piece(x, *inputs[1:], training=training)
            (out.float() * cotangent).sum().backward()
            for w in piece.trainable_weights:
                w.value.grad = None
            return out

    else:
        raise ValueError(f"Unsupported backend: {backend}")

    def run():
        block(step(*args))
        return 1

    return run


# -- training steps ---------------------------------------------------------------
def train_step(model, x, y, sample_weight=None, units=1):
    """A callable running one `train_on_batch` (which returns host values,
    so it blocks) and returning `units` (images, target tokens)."""

    def run():
        model.train_on_batch(x, y, sample_weight=sample_weight)
        return units

    return run


def sparse_ce_compiler(make_optimizer, steps_per_execution):
    """`compile_fn(model, jit_compile)` for `compare_training`: a fresh
    `make_optimizer()` per model, sparse cross-entropy on logits."""

    def compile_model(model, jit):
        model.compile(
            optimizer=make_optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
            steps_per_execution=steps_per_execution,
        )

    return compile_model


def compare_training(builders, compile_fn, data, units, args, flops_per_step=None):
    """Trains every `{name: builder}` model on `data = (x, y, sample_weight)`,
    for each jit_compile setting of `args.jit_compile`, timed interleaved.

    `builders` build fresh models; `compile_fn(model, jit_compile)` compiles
    one (same optimizer, loss and `steps_per_execution` for every side).
    Returns per-setting results, the best setting of each side, the ratios
    at equal settings and at each side's best, and MFU with `--mfu`.
    """
    x, y, sample_weight = data
    models = {name: build() for name, build in builders.items()}
    runs = {}
    for jit in jit_settings(args.jit_compile):
        steps = {}
        for name, model in models.items():
            compile_fn(model, jit)
            steps[name] = train_step(model, x, y, sample_weight, units)
        results = interleaved(steps, args.windows, args.window_seconds, args.warmup_steps)
        runs[f"jit_compile={jit}"] = results
    names = list(builders)
    zoo, anchor = names[0], names[1]
    best = {
        name: max(runs, key=lambda setting: runs[setting][name]["per_s"]["median"]) for name in names
    }
    report = {
        "params": {name: count_params(model) for name, model in models.items()},
        f"{zoo}_attention_kernels": attention_kernels_of(models[zoo]),
        "per_s": {setting: {name: r[name]["per_s"] for name in names} for setting, r in runs.items()},
        "step_ms_median": {setting: {name: r[name]["step_ms"]["median"] for name in names} for setting, r in runs.items()},
        f"{zoo}_over_{anchor}_same_setting": {setting: ratio(r, zoo, anchor) for setting, r in runs.items()},
        "best_setting": best,
        f"{zoo}_over_{anchor}_each_at_best": runs[best[zoo]][zoo]["per_s"]["median"]
        / runs[best[anchor]][anchor]["per_s"]["median"],
    }
    if flops_per_step:
        report["train_flops_per_step"] = flops_per_step
        achieved = {
            name: runs[best[name]][name]["per_s"]["median"] / units * flops_per_step for name in names
        }
        report["model_tflops_per_s_at_best"] = {name: value / 1e12 for name, value in achieved.items()}
        ceiling = getattr(args, "ceiling_tflops", None)
        if ceiling is None and getattr(args, "mfu", False):
            from bench.matmul_ceiling import measure_ceiling

            ceiling = measure_ceiling(keras.config.dtype_policy().compute_dtype)["tflops_per_s"]
        if ceiling:
            report["matmul_ceiling_tflops_per_s"] = ceiling
            report["mfu"] = {name: value / 1e12 / ceiling for name, value in achieved.items()}
    return report
