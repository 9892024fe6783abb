"""Plain-JAX ViT training step: the lean reference for zoo and keras-hub on a GPU.

    python -m bench.plain_jax_vit                 # ViT-B/16 @224, batch 256 (a GPU)
    python -m bench.plain_jax_vit --image-size 32 --patch-size 16 --d-model 32 --depth 1 \\
        --heads 2 --mlp-dim 64 --classes 10 --batch-size 4 --pad-to 16    # toy size, any CPU

A pre-norm ViT written directly in `jax.numpy`, with nothing between the
step and XLA: one fused `(D, 3D)` Q/K/V matmul per block,
`jax.nn.dot_product_attention`, exact GELU, LayerNorm computed in float32,
the class token's final LayerNorm into a Dense head, softmax cross-entropy,
one jitted step with the state donated. It is not a model to use; it
measures what a ViT training step costs on this device when no framework
is in the way, so zoo's and keras-hub's images/s (bench.vit_training) can
be read against it. Its model FLOPs are the same as the Keras models'
(bench/flops.py).

Variants, timed in one process in alternating windows (bench/common):

- `sgd_<N>tokens_xla`: bfloat16 weights, plain SGD, the `N = P + 1`
  tokens as they are, attention by XLA (cuDNN refuses odd lengths in
  training);
- `sgd_<pad>tokens_<impl>`: the tokens padded to `--pad-to` (the padding
  keys masked with `key_value_seq_lengths`), cuDNN on a GPU, XLA elsewhere;
- `adamw_<pad>tokens_<impl>`: the same with float32 master weights cast to
  bfloat16 for the step and AdamW (Keras' default hyperparameters), which
  is how zoo and keras-hub train under `mixed_bfloat16` in
  bench.vit_training: it shows how much of the gap to them is the
  optimizer and the float32 weights rather than the model.

AdamW is written out here because the GPU machine has JAX, Keras and
keras-hub only (no optax).
"""

import functools
import math

import numpy as np

from bench import common
from bench.flops import training_flops, vit_forward_flops


def init_params(config, seed=0):
    """float32 NumPy parameters of the ViT described by `config` (a dict)."""
    rng = np.random.default_rng(seed)
    d, f, p = config["d_model"], config["mlp_dim"], config["patch_size"]
    tokens = (config["image_size"] // p) ** 2 + 1

    def normal(shape, fan_in=None, std=None):
        std = std if std is not None else 1 / math.sqrt(fan_in)
        return (rng.standard_normal(shape) * std).astype("float32")

    def zeros(*shape):
        return np.zeros(shape, "float32")

    def block():
        return dict(
            ln1_g=np.ones(d, "float32"), ln1_b=zeros(d), qkv_w=normal((d, 3 * d), d), qkv_b=zeros(3 * d),
            out_w=normal((d, d), d), out_b=zeros(d), ln2_g=np.ones(d, "float32"), ln2_b=zeros(d),
            fc1_w=normal((d, f), d), fc1_b=zeros(f), fc2_w=normal((f, d), f), fc2_b=zeros(d),
        )

    return dict(
        patch_w=normal((p * p * 3, d), p * p * 3), patch_b=zeros(d), cls=zeros(1, 1, d),
        pos=normal((1, tokens, d), std=0.02), blocks=[block() for _ in range(config["depth"])],
        ln_g=np.ones(d, "float32"), ln_b=zeros(d), head_w=normal((d, config["classes"]), d),
        head_b=zeros(config["classes"]),
    )


def _layer_norm(x, gain, bias, eps=1e-6):
    import jax.numpy as jnp

    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = ((x32 - mean) ** 2).mean(-1, keepdims=True)
    return ((x32 - mean) * (var + eps) ** -0.5 * gain.astype(jnp.float32) + bias.astype(jnp.float32)).astype(x.dtype)


def forward(params, images, config, pad_to, implementation):
    """Logits `(B, classes)` float32; `params` in the compute dtype."""
    import jax
    import jax.numpy as jnp

    b, p, d, h = images.shape[0], config["patch_size"], config["d_model"], config["heads"]
    side = config["image_size"] // p
    x = images.astype(params["patch_w"].dtype)
    x = x.reshape(b, side, p, side, p, 3).transpose(0, 1, 3, 2, 4, 5).reshape(b, side * side, p * p * 3)
    x = x @ params["patch_w"] + params["patch_b"]  # (B, P, D)
    cls = jnp.broadcast_to(params["cls"], (b, 1, d))
    x = jnp.concatenate([cls, x], axis=1) + params["pos"]  # (B, N, D)
    tokens, lengths = x.shape[1], None
    if pad_to and pad_to > tokens:
        x = jnp.pad(x, ((0, 0), (0, pad_to - tokens), (0, 0)))  # (B, pad_to, D)
        lengths = jnp.full((b,), tokens, jnp.int32)  # padding keys are never attended
    t = x.shape[1]
    for blk in params["blocks"]:
        y = _layer_norm(x, blk["ln1_g"], blk["ln1_b"])
        qkv = (y @ blk["qkv_w"] + blk["qkv_b"]).reshape(b, t, 3, h, d // h)  # (B, T, 3, H, K)
        a = jax.nn.dot_product_attention(
            qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], key_value_seq_lengths=lengths, implementation=implementation
        )  # (B, T, H, K)
        x = x + a.reshape(b, t, d) @ blk["out_w"] + blk["out_b"]
        y = _layer_norm(x, blk["ln2_g"], blk["ln2_b"])
        x = x + jax.nn.gelu(y @ blk["fc1_w"] + blk["fc1_b"], approximate=False) @ blk["fc2_w"] + blk["fc2_b"]
    cls = _layer_norm(x[:, 0], params["ln_g"], params["ln_b"])
    return (cls @ params["head_w"] + params["head_b"]).astype(jnp.float32)


def _loss(params, images, labels, config, pad_to, implementation):
    import jax
    import jax.numpy as jnp

    logits = forward(params, images, config, pad_to, implementation)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()


def make_step(config, optimizer, pad_to, implementation, lr=1e-4):
    """`(init_state(params), step(state, images, labels) -> (state, loss))`, jitted and donating."""
    import jax
    import jax.numpy as jnp

    loss = functools.partial(_loss, config=config, pad_to=pad_to, implementation=implementation)
    bf16 = lambda tree: jax.tree.map(lambda w: w.astype(jnp.bfloat16), tree)  # noqa: E731
    if optimizer == "sgd":

        @functools.partial(jax.jit, donate_argnums=0)
        def step(params, images, labels):
            value, grads = jax.value_and_grad(loss)(params, images, labels)
            return jax.tree.map(lambda w, g: w - lr * g, params, grads), value

        return (lambda params: bf16(jax.tree.map(jnp.asarray, params))), step

    b1, b2, eps, decay = 0.9, 0.999, 1e-7, 0.004  # keras.optimizers.AdamW defaults

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, images, labels):
        params, m, v, count = state
        value, grads = jax.value_and_grad(lambda w: loss(bf16(w), images, labels))(params)  # float32 grads
        count = count + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        rate = lr * jnp.sqrt(1 - b2**count) / (1 - b1**count)
        params = jax.tree.map(lambda w, m, v: w - rate * m / (jnp.sqrt(v) + eps) - lr * decay * w, params, m, v)
        return (params, m, v, count), value

    def init(params):
        params = jax.tree.map(jnp.asarray, params)
        zeros = jax.tree.map(jnp.zeros_like, params)
        return params, zeros, jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32)

    return init, step


def _runner(init, step, params, images, labels, batch):
    state = [init(params)]

    def run():
        state[0], loss = step(state[0], images, labels)
        loss.block_until_ready()
        return batch

    return run


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=256, windows=5, window_seconds=2.0)
    for flag, default in (("image-size", 224), ("patch-size", 16), ("d-model", 768), ("depth", 12), ("heads", 12),
                          ("mlp-dim", 3072), ("classes", 1000), ("pad-to", 208)):
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--implementation", default="auto", choices=("auto", "xla", "cudnn"),
                        help="attention of the padded variants; auto = cudnn on a GPU, else xla")
    parser.add_argument("--variants", default="sgd_unpadded,sgd_padded,adamw_padded")
    parser.add_argument("--ceiling-tflops", type=float, default=None, help="bf16 matmul ceiling, for MFU")
    args = parser.parse_args(argv)
    import jax

    config = dict(image_size=args.image_size, patch_size=args.patch_size, d_model=args.d_model, depth=args.depth,
                  heads=args.heads, mlp_dim=args.mlp_dim, classes=args.classes)
    impl = args.implementation
    if impl == "auto":
        impl = "cudnn" if jax.default_backend() == "gpu" else "xla"
    tokens = (args.image_size // args.patch_size) ** 2 + 1
    variants = {
        "sgd_unpadded": ("sgd", 0, "xla", f"sgd_{tokens}tokens_xla"),
        "sgd_padded": ("sgd", args.pad_to, impl, f"sgd_{args.pad_to}tokens_{impl}"),
        "adamw_padded": ("adamw", args.pad_to, impl, f"adamw_{args.pad_to}tokens_{impl}"),
    }
    rng = np.random.default_rng(0)
    images = jax.numpy.asarray(rng.standard_normal((args.batch_size, args.image_size, args.image_size, 3)),
                               jax.numpy.float32)
    labels = jax.numpy.asarray(rng.integers(0, args.classes, args.batch_size), jax.numpy.int32)
    params = init_params(config)
    steps = {}
    for key in args.variants.split(","):
        optimizer, pad_to, implementation, name = variants[key]
        init, step = make_step(config, optimizer, pad_to, implementation)
        steps[name] = _runner(init, step, params, images, labels, args.batch_size)
    results = common.interleaved(steps, args.windows, args.window_seconds, args.warmup_steps)
    flops = training_flops(vit_forward_flops(
        args.batch_size, args.image_size, args.patch_size, 3, args.d_model, args.depth, args.mlp_dim, args.classes,
    ))
    report = {
        "benchmark": "plain_jax_vit",
        "unit": "images/s",
        "system": common.system_info(),
        "config": config,
        "batch_size": args.batch_size,
        "tokens": tokens,
        "pad_to": args.pad_to,
        "params": int(sum(w.size for w in jax.tree.leaves(params))),
        "train_flops_per_step": flops,
        "per_s": {name: r["per_s"] for name, r in results.items()},
        "step_ms_median": {name: r["step_ms"]["median"] for name, r in results.items()},
        "model_tflops_per_s": {name: r["per_s"]["median"] / args.batch_size * flops / 1e12
                               for name, r in results.items()},
    }
    if args.ceiling_tflops:
        report["matmul_ceiling_tflops_per_s"] = args.ceiling_tflops
        report["mfu"] = {name: value / args.ceiling_tflops for name, value in report["model_tflops_per_s"].items()}
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
