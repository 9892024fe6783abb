"""Attention kernel probe: which kernel each of zoo's attention calls uses, and its time.

    KERAS_BACKEND=jax python -m bench.attention_probe            # GPU sizes (about a minute on an H200)
    KERAS_BACKEND=jax python -m bench.attention_probe --smoke    # toy sizes, any CPU

Four parts, forward + backward, bfloat16 (`mixed_bfloat16` for zoo's layers):

- `raw`: `jax.nn.dot_product_attention` alone, XLA vs cuDNN, at ViT-B/16
  lengths (197, 198, 200, 208 tokens: which lengths cuDNN takes in
  training, so `attention_kernels.PAD_MULTIPLE` can follow), the padded
  208 with 197 key lengths (what zoo feeds cuDNN), and at transformer_base
  shapes with the padding as a bias, a boolean mask or lengths, and causal.
  A refusal is recorded with its message.
- `zoo_layer`: zoo's `MultiHeadAttention` (projections included) at each
  attention call of the benchmark models (ViT-B/16 self-attention, its
  class-token-only last block, transformer_base encoder self-attention
  with padding, decoder causal self-attention, cross-attention with
  padding): the kernel chosen (`last_kernel`, with the reason and the
  padded lengths) and its time, then each other kernel forced, for
  comparison (`keras` is the path before the kernel module).
- `fused_qkv`: the same self-attention calls with one `(D, 3, H, K)`
  projection instead of three (the lever BENCHMARKS.md left open for GPUs).
- `model_calls`: which kernel every attention layer of zoo's ViT-B/16 and
  transformer_base takes in a training forward at the benchmark shapes
  (traced with `jax.eval_shape`, nothing computed).
"""

import time

import keras
import numpy as np

from bench import common

# vit_extra: lengths tried beyond the ViT's own (197 + 1, 3, 11 = 198, 200, 208 at full size).
FULL = dict(vit_batch=256, t_batch=256, vit_heads=12, t_heads=8, head_dim=64, vit_tokens=197, t_len=128, iters=20,
            vit_extra=(1, 3, 11))
SMOKE = dict(vit_batch=2, t_batch=2, vit_heads=2, t_heads=2, head_dim=8, vit_tokens=17, t_len=8, iters=1,
             vit_extra=(15,))


def _median_ms(fn, iters):
    fn()
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _error(error):
    """The error's type and message on one line (Keras wraps layer errors in extra lines)."""
    lines = [line.strip() for line in str(error).replace("\x1b[1m", "").replace("\x1b[0m", "").splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Exception encountered", "Arguments received",
                                                                      "•"))]
    return f"{type(error).__name__}: {' '.join(lines)[:400]}"


# -- raw jax.nn.dot_product_attention --------------------------------------------
def raw_case(name, batch, length, heads, dim, implementation, iters, mask=None, causal=False, kv_length=None):
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    q, k, v = (jax.random.normal(key, (batch, length, heads, dim), jnp.bfloat16) for key in keys)
    rng = np.random.default_rng(0)
    lengths = jnp.asarray(rng.integers(length // 2, length + 1, batch) if kv_length is None
                          else np.full(batch, kv_length), jnp.int32)

    def loss(q, k, v):
        kwargs = {}
        valid = jnp.arange(length)[None, :] < lengths[:, None]  # (B, S)
        if mask == "bias":
            kwargs["bias"] = jnp.where(valid, 0.0, -1e9).astype(q.dtype)[:, None, None, :]
        elif mask == "bool":
            kwargs["mask"] = valid[:, None, None, :]
        elif mask == "lengths":
            kwargs["key_value_seq_lengths"] = lengths
        out = jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation=implementation, **kwargs)
        return out.astype(jnp.float32).sum()

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    entry = dict(name=name, batch=batch, length=length, heads=heads, head_dim=dim, implementation=implementation,
                 mask=mask, causal=causal)
    try:
        entry["ms"] = _median_ms(lambda: jax.block_until_ready(grad(q, k, v)), iters)
    except Exception as error:  # a refused shape is a result, not a failure
        entry["error"] = _error(error)
    return entry


def raw_cases(sizes):
    vb, tb, vh, th, d, n, t, it = (sizes[k] for k in ("vit_batch", "t_batch", "vit_heads", "t_heads", "head_dim",
                                                      "vit_tokens", "t_len", "iters"))
    cases = []
    for impl in ("xla", "cudnn"):
        for length in [n] + [n + extra for extra in sizes["vit_extra"]]:
            cases.append(raw_case("vit", vb, length, vh, d, impl, it))
        padded = n + sizes["vit_extra"][-1]  # 208 at full size
        cases.append(raw_case("vit_padded_keys_masked", vb, padded, vh, d, impl, it, mask="lengths", kv_length=n))
        for mask in (None, "bias", "bool", "lengths"):
            cases.append(raw_case("t_base_encoder", tb, t, th, d, impl, it, mask=mask))
        cases.append(raw_case("t_base_decoder_causal", tb, t, th, d, impl, it, causal=True))
    return cases


# -- zoo's MultiHeadAttention at the models' calls ------------------------------------
def zoo_calls(sizes):
    vb, tb, vh, th, d, n, t = (sizes[k] for k in ("vit_batch", "t_batch", "vit_heads", "t_heads", "head_dim",
                                                  "vit_tokens", "t_len"))
    return {
        "vit_b16_self_attention": dict(batch=vb, queries=n, keys=n, heads=vh, dim=d, self_attention=True),
        "vit_b16_last_block_class_token": dict(batch=vb, queries=1, keys=n, heads=vh, dim=d),
        "t_base_encoder_self_attention_padding": dict(batch=tb, queries=t, keys=t, heads=th, dim=d,
                                                      self_attention=True, lengths=True),
        "t_base_decoder_causal_self_attention": dict(batch=tb, queries=t, keys=t, heads=th, dim=d,
                                                     self_attention=True, causal=True),
        "t_base_cross_attention_padding": dict(batch=tb, queries=t, keys=t, heads=th, dim=d, lengths=True),
    }


def _fused_qkv_attention(mha, x, key_lengths=None, causal=False):
    """`mha` as self-attention with one `(D, 3, H, K)` projection (its own weights, concatenated)."""
    from keras import ops

    from zoo.layers.attention_kernels import MaskParts

    dtype = mha.compute_dtype
    kernel = ops.stack([ops.cast(dense.kernel, dtype) for dense in (mha.query_dense, mha.key_dense, mha.value_dense)],
                       axis=1)  # (D, 3, H, K)
    bias = ops.stack([ops.cast(dense.bias, dtype) for dense in (mha.query_dense, mha.key_dense, mha.value_dense)])
    qkv = ops.einsum("btd,dnhk->btnhk", ops.cast(x, dtype), kernel) + bias  # (B, T, 3, H, K)
    masks = MaskParts(None, (None, None, None), causal, None, key_lengths)
    out, _ = mha._attend(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], masks, False, False, False)
    return mha.output_dense(out)  # (B, T, D)


def zoo_layer_case(name, call, kernel, iters, fused_qkv=False):
    from zoo.layers import MultiHeadAttention, attention_kernel

    d_model = call["heads"] * call["dim"]
    keras.utils.set_random_seed(0)
    mha = MultiHeadAttention(call["heads"], call["dim"], dtype="mixed_bfloat16")
    mha.build((None, call["queries"], d_model), (None, call["keys"], d_model))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((call["batch"], call["queries"], d_model)).astype("float32")
    context = x if call.get("self_attention") else rng.standard_normal((call["batch"], call["keys"], d_model)).astype("float32")
    lengths = rng.integers(call["keys"] // 2, call["keys"] + 1, call["batch"]).astype("int32")
    causal, use_lengths = call.get("causal", False), call.get("lengths", False)

    def fn(x, context, lengths, training):
        key_lengths = lengths if use_lengths else None
        if fused_qkv:
            return _fused_qkv_attention(mha, x, key_lengths, causal)
        return mha(x, context, key_lengths=key_lengths, use_causal_mask=causal)

    entry = dict(call=name, forced=kernel, fused_qkv=fused_qkv, **call)
    try:
        with attention_kernel(kernel):
            run = common.forward_backward([mha], fn, (x, context, lengths), jit_compile=True)
            entry["ms"] = _median_ms(run, iters)
        choice = mha.last_kernel
        entry.update(kernel=choice.kernel, reason=choice.reason, computed_lengths=[choice.query_length,
                                                                                  choice.key_length])
    except Exception as error:
        entry["error"] = _error(error)
    return entry


def model_calls(smoke):
    """`{model: {"kernel (reason)": layers}}` for zoo's benchmark models in a traced training forward."""
    import jax

    from zoo.models import TransformerTranslator, VisionTransformer

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        if smoke:
            vit = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=2)
            translator = TransformerTranslator.from_preset(
                "transformer_tiny", source_vocab_size=50, target_vocab_size=50, num_encoder_layers=1,
                num_decoder_layers=1, max_length=16)
            batch, size, length = 2, 32, 8
        else:
            vit = VisionTransformer.from_preset("vit_base_patch16_224")
            translator = TransformerTranslator.from_preset(
                "transformer_base", source_vocab_size=32000, target_vocab_size=32000, max_length=128)
            batch, size, length = 256, 224, 128
        images = jax.ShapeDtypeStruct((batch, size, size, 3), "float32")
        ids = jax.ShapeDtypeStruct((batch, length), "int32")
        report = {}
        for name, model, inputs in (("vit", vit, images), ("translator", translator,
                                                              {"source_ids": ids, "target_ids": ids})):
            if not model.built:
                model.build(None)
            weights = ([w.value for w in model.trainable_variables], [w.value for w in model.non_trainable_variables])
            jax.eval_shape(lambda w, x: model.stateless_call(*w, x, training=True), weights, inputs)
            report[name] = common.attention_kernels_of(model)
        return report
    finally:
        keras.config.set_dtype_policy("float32")


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=0)
    parser.add_argument("--smoke", action="store_true", help="toy sizes (any CPU)")
    parser.add_argument("--parts", default="raw,zoo_layer,fused_qkv,model_calls")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit(f"bench.attention_probe needs KERAS_BACKEND=jax. Received: {keras.backend.backend()}")
    sizes = SMOKE if args.smoke else FULL
    parts = args.parts.split(",")
    report = {"benchmark": "attention_probe", "system": common.system_info(), "sizes": sizes}
    if "raw" in parts:
        report["raw"] = raw_cases(sizes)
    calls = zoo_calls(sizes)
    if "zoo_layer" in parts:
        report["zoo_layer"] = []
        for name, call in calls.items():
            auto = zoo_layer_case(name, call, "auto", sizes["iters"])
            report["zoo_layer"].append(auto)
            for kernel in ("keras", "xla", "cudnn"):
                if kernel != auto.get("kernel"):
                    report["zoo_layer"].append(zoo_layer_case(name, call, kernel, sizes["iters"]))
    if "fused_qkv" in parts:
        report["fused_qkv"] = [
            zoo_layer_case(name, call, "auto", sizes["iters"], fused_qkv=True)
            for name, call in calls.items() if call.get("self_attention")
        ]
    if "model_calls" in parts:
        report["model_calls"] = model_calls(args.smoke)
    report["summary"] = [
        f"{e['call']}: {e.get('kernel', e['forced'])}{' (fused qkv)' if e['fused_qkv'] else ''} "
        + (f"{e['ms']:.3f} ms" if "ms" in e else e.get("error", "")[:160])
        for e in report.get("zoo_layer", []) + report.get("fused_qkv", [])
    ]
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
