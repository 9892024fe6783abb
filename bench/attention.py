"""Attention layer alone: zoo vs `keras.layers.MultiHeadAttention`, forward + backward.

    python -m bench.attention                       # CPU defaults: T 128 and 512
    python -m bench.attention --seq-lens 1024,4096 --dtype-policy mixed_bfloat16   # GPU
    KERAS_BACKEND=jax python -m bench.attention ...

Self-attention on `(B, T, D)` hidden states: the four projections and the
attention itself, forward and backward (gradients for the weights and the
input), at the widths of `transformer_tiny` (D 128, 8 heads) and ViT-Ti
(D 192, 3 heads). Masks: none, causal (`use_causal_mask=True` on both), and
padding (a `(B, S)` key mask for zoo; Keras core needs it as `(B, T, S)`,
built inside the timed step). Both layers get identical weights.
Reports calls/s and tokens/s, medians over alternating windows, and
zoo / Keras core (above 1: zoo is faster).
"""

import keras
import numpy as np
from keras import ops

from bench import common
from bench.flops import attention_layer_flops

WIDTHS = {"transformer_tiny": (128, 8), "vit_ti": (192, 3)}


def _layers(d_model, heads):
    from zoo.layers import MultiHeadAttention

    key_dim = d_model // heads
    zoo_mha = MultiHeadAttention(num_heads=heads, key_dim=key_dim)
    core = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=key_dim)
    shape = (None, None, d_model)
    zoo_mha.build(shape, shape)
    core.build(shape, shape)
    for source, target in zip(zoo_mha.weights, core.weights):  # same layout, same order
        target.assign(source)
    return zoo_mha, core


def _functions(zoo_mha, core, mask_kind):
    if mask_kind == "none":
        return (lambda x, training: zoo_mha(x, x)), (lambda x, training: core(x, x))
    if mask_kind == "causal":
        return (
            (lambda x, training: zoo_mha(x, x, use_causal_mask=True)),
            (lambda x, training: core(x, x, use_causal_mask=True)),
        )

    def zoo_fn(x, keep, training):
        return zoo_mha(x, x, attention_mask=keep)

    def core_fn(x, keep, training):
        full = ops.logical_and(keep[:, None, :], ops.ones_like(keep)[:, :, None])  # (B, T, S)
        return core(x, x, attention_mask=full)

    return zoo_fn, core_fn


def bench_case(width, seq_len, mask_kind, args, jit):
    d_model, heads = WIDTHS[width]
    keras.utils.set_random_seed(0)
    zoo_mha, core = _layers(d_model, heads)
    rng = np.random.default_rng(0)
    x = ops.convert_to_tensor(rng.standard_normal((args.batch_size, seq_len, d_model)), keras.config.floatx())
    inputs = (x,)
    if mask_kind == "padding":
        lengths = rng.integers(seq_len // 2, seq_len + 1, args.batch_size)
        inputs += (ops.convert_to_tensor(np.arange(seq_len)[None, :] < lengths[:, None]),)
    zoo_fn, core_fn = _functions(zoo_mha, core, mask_kind)
    steps = {
        "zoo": common.forward_backward([zoo_mha], zoo_fn, inputs, jit),
        "keras_core": common.forward_backward([core], core_fn, inputs, jit),
    }
    results = common.interleaved(steps, args.windows, args.window_seconds, args.warmup_steps)
    tokens = args.batch_size * seq_len
    flops = 3 * attention_layer_flops(args.batch_size, seq_len, seq_len, d_model)
    for side in results.values():
        side["tokens_per_s_median"] = side["per_s"]["median"] * tokens
        side["model_tflops_per_s"] = side["per_s"]["median"] * flops / 1e12
    return {
        "width": width, "d_model": d_model, "heads": heads, "seq_len": seq_len, "mask": mask_kind,
        "jit_compile": jit, "batch_size": args.batch_size,
        "train_flops_per_call": flops,
        "calls_per_s": {name: side["per_s"] for name, side in results.items()},
        "tokens_per_s": {name: side["tokens_per_s_median"] for name, side in results.items()},
        "model_tflops_per_s": {name: side["model_tflops_per_s"] for name, side in results.items()},
        "zoo_over_keras_core": common.ratio(results, "zoo", "keras_core"),
    }


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=16, windows=5, window_seconds=1.0)
    parser.add_argument("--seq-lens", default="128,512")
    parser.add_argument("--widths", default="transformer_tiny,vit_ti", help=f"of {sorted(WIDTHS)}")
    parser.add_argument("--masks", default="none,causal", help="of none, causal, padding")
    parser.add_argument("--jit-compile", default="both", choices=("both", "false", "true"))
    args = parser.parse_args(argv)
    common.set_policy(args.dtype_policy)
    cases = []
    for jit in common.jit_settings(args.jit_compile):
        for width in args.widths.split(","):
            for seq_len in (int(t) for t in args.seq_lens.split(",")):
                for mask_kind in args.masks.split(","):
                    cases.append(bench_case(width, seq_len, mask_kind, args, jit))
    summary = [
        f"{c['width']} T={c['seq_len']} mask={c['mask']} jit={c['jit_compile']}: "
        f"zoo/keras_core = {c['zoo_over_keras_core']:.3f}"
        for c in cases
    ]
    return common.emit({"benchmark": "attention", "system": common.system_info(), "summary": summary, "cases": cases}, args.json)


if __name__ == "__main__":
    main()
