"""The achievable matmul FLOP/s for a dtype on this device: the MFU denominator.

    python -m bench.matmul_ceiling                      # float32, sizes for a CPU
    python -m bench.matmul_ceiling --dtype bfloat16 --size 8192    # GPU

Times a compiled chain of square `(N, N) @ (N, N)` products (2*N^3 FLOPs
each) in the backend's compiler (XLA through `tf.function(jit_compile=True)`
on TensorFlow, `jax.jit` on JAX) and reports the best and median FLOP/s over
repeats. The best is used as the ceiling: it is what this device reached
for dense matmuls in this dtype, so a model's utilisation against it says
how much of the reachable speed the model gets (not the datasheet peak).
"""

import time

import keras
import numpy as np

from bench import common

CHAIN = 8


def _compiled_chain():
    backend = keras.backend.backend()

    def chain(a, b):
        # Each product depends on the previous one: no work can be skipped.
        x = a
        for _ in range(CHAIN):
            x = keras.ops.matmul(x, b)
        return x

    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(chain, jit_compile=True)
    if backend == "jax":
        import jax

        return jax.jit(chain)
    return chain


def measure_ceiling(dtype="float32", size=None, repeats=5):
    """Returns `{"tflops_per_s": best, "median_tflops_per_s", "size", "dtype", "device"}`."""
    device = common.device_name()
    if size is None:
        size = 1024 if device.startswith("cpu") else 8192
    rng = np.random.default_rng(0)
    # Scaled so the chain neither overflows nor underflows in low precision.
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size)).astype("float32"), dtype=dtype)
    b = keras.ops.convert_to_tensor((rng.standard_normal((size, size)) / np.sqrt(size)).astype("float32"), dtype=dtype)
    chain = _compiled_chain()
    common.block(chain(a, b))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        common.block(chain(a, b))
        rates.append(CHAIN * 2 * size**3 / (time.perf_counter() - start) / 1e12)
    return {
        "tflops_per_s": max(rates),
        "median_tflops_per_s": float(np.median(rates)),
        "size": size,
        "dtype": str(dtype),
        "device": device,
    }


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=0)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report = {
        "benchmark": "matmul_ceiling",
        "system": common.system_info(),
        **measure_ceiling(args.dtype, args.size, args.repeats),
    }
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
