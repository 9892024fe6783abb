"""Where the time goes: pieces of a training step, zoo vs anchor, forward + backward.

    python -m bench.profile_components                     # all groups, CPU sizes
    python -m bench.profile_components --groups attention_variants --jit-compile true

Groups (each piece timed interleaved against its counterpart, forward and
backward with gradients for the weights and the float input, no optimizer):

- `translation`: transformer_tiny sizes (batch 64, source = target = 32,
  vocabulary 8,000, dropout 0.1 on, padded source): token + position
  embedding; one encoder block; one decoder block; tied output projection
  + masked cross-entropy; the whole model + loss. zoo layers vs keras-hub's.
- `vit`: vit_tiny_patch4_32 sizes (batch 128, 65 tokens): patch + class
  token + position embedding; one pre-norm encoder block; the whole model
  + loss. zoo layers vs keras-hub's ViT layers.
- `attention_variants`: candidate changes to zoo's `MultiHeadAttention`,
  built here as subclasses or a stand-alone layer (zoo itself is not
  changed), against the current layer and `keras.layers.MultiHeadAttention`,
  at the ViT-Ti (no mask) and transformer_tiny encoder (padding mask) sizes:
  no zeroing of fully masked rows; the explicit einsum + float32 softmax
  path instead of `ops.dot_product_attention`; one fused `(D, 3D)` Q/K/V
  projection.

Each piece reports calls/s (median, spread) and zoo / anchor; the model
rows give the share of each piece in the whole forward + backward.
"""

import math

import keras
import numpy as np
from keras import ops

from bench import common
from bench.translation_training import keras_hub_builder, padded_ids, zoo_builder

D_TINY, H_TINY, F_TINY, V, L = 128, 8, 512, 8000, 32
D_VIT, H_VIT, N_VIT = 192, 3, 65


def _compare(name, steps, args, results):
    timed = common.interleaved(steps, args.windows, args.window_seconds, args.warmup_steps)
    names = list(steps)
    entry = {n: timed[n]["per_s"] for n in names}
    entry["ms_median"] = {n: 1000 / timed[n]["per_s"]["median"] for n in names}
    for other in names[1:]:
        entry[f"{names[0]}_over_{other}"] = common.ratio(timed, names[0], other)
    results[name] = entry


def translation_group(args, jit, results):
    import keras_hub

    from zoo.layers import DecoderBlock, EncoderBlock, TokenAndPositionEmbedding

    rng = np.random.default_rng(0)
    b = 64
    ids = ops.convert_to_tensor(padded_ids(rng, b, L, V))
    mask = ops.not_equal(ids, 0)
    x = ops.convert_to_tensor(rng.standard_normal((b, L, D_TINY)).astype("float32"))
    labels = ops.convert_to_tensor(padded_ids(rng, b, L, V))
    weights = ops.cast(ops.not_equal(labels, 0), "float32")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    fb = lambda layers, fn, inputs: common.forward_backward(layers, fn, inputs, jit, training=True)

    zoo_emb = TokenAndPositionEmbedding(V, D_TINY, max_length=L, scale_by_sqrt_dim=True, sinusoid_layout="concat")
    hub_emb = keras_hub.layers.TokenAndPositionEmbedding(V, L, D_TINY)
    zoo_emb.build((None, L))
    hub_emb.build((None, L))
    _compare("embedding", {
        "zoo": fb([zoo_emb], lambda i, training: zoo_emb(i), (ids,)),
        "keras_hub": fb([hub_emb], lambda i, training: hub_emb(i), (ids,)),
    }, args, results)

    block = dict(d_model=D_TINY, num_heads=H_TINY, d_ff=F_TINY, dropout=0.1, layer_norm_epsilon=1e-6)
    hub_block = dict(intermediate_dim=F_TINY, num_heads=H_TINY, dropout=0.1, layer_norm_epsilon=1e-6)
    zoo_enc, hub_enc = EncoderBlock(**block), keras_hub.layers.TransformerEncoder(**hub_block)
    zoo_enc.build((None, L, D_TINY))
    hub_enc.build((None, L, D_TINY))
    _compare("encoder_block", {
        "zoo": fb([zoo_enc], lambda h, m, training: zoo_enc(h, attention_mask=m, training=training), (x, mask)),
        "keras_hub": fb([hub_enc], lambda h, m, training: hub_enc(h, padding_mask=m, training=training), (x, mask)),
    }, args, results)

    zoo_dec, hub_dec = DecoderBlock(**block), keras_hub.layers.TransformerDecoder(**hub_block)
    zoo_dec.build((None, L, D_TINY), (None, L, D_TINY))
    hub_dec.build((None, L, D_TINY), (None, L, D_TINY))
    _compare("decoder_block", {
        "zoo": fb([zoo_dec], lambda h, c, m, training: zoo_dec(h, c, context_mask=m, training=training), (x, x, mask)),
        "keras_hub": fb([hub_dec], lambda h, c, m, training: hub_dec(
            h, c, encoder_padding_mask=m, use_causal_mask=True, training=training), (x, x, mask)),
    }, args, results)

    def zoo_logits(h, y, w, training):
        return loss_fn(y, ops.cast(zoo_emb.logits(h), "float32"), sample_weight=w)

    def hub_logits(h, y, w, training):
        return loss_fn(y, ops.cast(hub_emb.token_embedding(h, reverse=True), "float32"), sample_weight=w)

    _compare("logits_and_loss", {
        "zoo": fb([zoo_emb], zoo_logits, (x, labels, weights)),
        "keras_hub": fb([hub_emb], hub_logits, (x, labels, weights)),
    }, args, results)

    from zoo.models.transformer_translator_presets import TRANSFORMER_TRANSLATOR_PRESETS

    config = dict(TRANSFORMER_TRANSLATOR_PRESETS["transformer_tiny"]["config"], source_vocab_size=V,
                  target_vocab_size=V, max_length=L)
    zoo_model, hub_model = zoo_builder(config)(), keras_hub_builder(config, L, L)()

    def whole(model):
        def fn(h, s, t, y, w, training):  # h unused: keeps the float-first convention
            return loss_fn(y, model({"source_ids": s, "target_ids": t}, training=training), sample_weight=w) + 0 * ops.sum(h)

        return fn

    scalar = ops.zeros((1,))
    _compare("whole_model_and_loss", {
        "zoo": fb([zoo_model], whole(zoo_model), (scalar, ids, ids, labels, weights)),
        "keras_hub": fb([hub_model], whole(hub_model), (scalar, ids, ids, labels, weights)),
    }, args, results)


def vit_group(args, jit, results):
    from keras_hub.src.models.vit.vit_layers import (
        ViTEncoderBlock,
        ViTPatchingAndEmbedding,
    )

    from bench.vit_training import keras_hub_builder, zoo_builder
    from zoo.layers import EncoderBlock
    from zoo.models.vision_transformer_presets import VISION_TRANSFORMER_PRESETS

    rng = np.random.default_rng(0)
    b = 128
    images = ops.convert_to_tensor(rng.standard_normal((b, 32, 32, 3)).astype("float32"))
    tokens = ops.convert_to_tensor(rng.standard_normal((b, N_VIT, D_VIT)).astype("float32"))
    labels = ops.convert_to_tensor(rng.integers(0, 10, (b,)).astype("int32"))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    fb = lambda layers, fn, inputs: common.forward_backward(layers, fn, inputs, jit, training=True)

    config = dict(VISION_TRANSFORMER_PRESETS["vit_tiny_patch4_32"]["config"], dropout=0.0, attention_dropout=0.0)
    zoo_model, hub_model = zoo_builder(config)(), keras_hub_builder(config)()
    hub_embed = ViTPatchingAndEmbedding((32, 32), (4, 4), D_VIT, 3)
    hub_embed.build((None, 32, 32, 3))
    _compare("vit_embedding", {
        "zoo": fb([zoo_model], lambda i, training: zoo_model._embed(i, training=training), (images,)),
        "keras_hub": fb([hub_embed], lambda i, training: hub_embed(i), (images,)),
    }, args, results)

    zoo_block = EncoderBlock(D_VIT, H_VIT, 4 * D_VIT, activation="gelu", norm_first=True, layer_norm_epsilon=1e-6)
    hub_block = ViTEncoderBlock(H_VIT, D_VIT, 4 * D_VIT)
    zoo_block.build((None, N_VIT, D_VIT))
    hub_block.build((None, N_VIT, D_VIT))
    _compare("vit_encoder_block", {
        "zoo": fb([zoo_block], lambda h, training: zoo_block(h, training=training), (tokens,)),
        "keras_hub": fb([hub_block], lambda h, training: hub_block(h), (tokens,)),
    }, args, results)

    _compare("vit_whole_model_and_loss", {
        "zoo": fb([zoo_model], lambda i, y, training: loss_fn(y, zoo_model(i, training=training)), (images, labels)),
        "keras_hub": fb([hub_model], lambda i, y, training: loss_fn(y, hub_model(i, training=training)), (images, labels)),
    }, args, results)


# -- candidate attention changes, built here without touching zoo ------------------
def _variants():
    from zoo.layers import MultiHeadAttention, attention_kernel

    class NoRowZeroing(MultiHeadAttention):
        """Skips the multiply that zeroes fully masked rows after the fused kernel."""

        def _attend(self, q, k, v, masks, cached, return_scores, training):
            if return_scores or (training and self.dropout > 0):
                return super()._attend(q, k, v, masks, cached, return_scores, training)
            scale = 1.0 / math.sqrt(self.key_dim)
            mask = self._combined_mask(ops.shape(q)[1], ops.shape(k)[1], masks)
            return ops.dot_product_attention(q, k, v, mask=mask, scale=scale), None

    class ExplicitSoftmax(MultiHeadAttention):
        """The einsum + float32 softmax path (as with requested scores) for every call."""

        def _attend(self, q, k, v, masks, cached, return_scores, training):
            with attention_kernel("matmul"):
                return super()._attend(q, k, v, masks, cached, return_scores, training)

    class FusedQKV(keras.layers.Layer):
        """Self-attention with one (D, 3D) projection for Q, K and V."""

        def __init__(self, num_heads, key_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_heads, self.key_dim = num_heads, key_dim

        def build(self, shape):
            h, k, d = self.num_heads, self.key_dim, shape[-1]
            self.qkv = keras.layers.EinsumDense("btd,dx->btx", (None, 3 * h * k), bias_axes="x")
            self.qkv.build(shape)
            self.out = keras.layers.EinsumDense("bthk,hkd->btd", (None, d), bias_axes="d")
            self.out.build((None, None, h, k))

        def call(self, x, attention_mask=None):
            b, t = ops.shape(x)[0], ops.shape(x)[1]
            qkv = ops.reshape(self.qkv(x), (b, t, 3, self.num_heads, self.key_dim))  # (B, T, 3, H, K)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            mask = None if attention_mask is None else attention_mask[:, None, None, :]
            out = ops.dot_product_attention(q, k, v, mask=mask, scale=1.0 / math.sqrt(self.key_dim))
            return self.out(out)  # (B, T, D)

    return {"no_row_zeroing": NoRowZeroing, "explicit_softmax": ExplicitSoftmax, "fused_qkv": FusedQKV}


def _attention_call(name, layer, t, d):
    """Builds `layer` and returns `fn(x, [key mask], training)` calling it as self-attention."""
    if name == "fused_qkv":
        layer.build((None, t, d))
        return lambda q, *m, training: layer(q, attention_mask=m[0] if m else None)
    layer.build((None, t, d), (None, t, d))
    if name == "keras_core":  # needs the (B, T, S) form of the key mask
        return lambda q, *m, training: layer(
            q, q, attention_mask=(m[0][:, None, :] & ops.ones_like(m[0])[:, :, None]) if m else None
        )
    return lambda q, *m, training: layer(q, q, attention_mask=m[0] if m else None)


def attention_variants_group(args, jit, results):
    from zoo.layers import MultiHeadAttention

    rng = np.random.default_rng(0)
    for label, (b, t, d, h, padded) in {
        "vit_ti_no_mask": (128, N_VIT, D_VIT, H_VIT, False),
        "tiny_encoder_padding_mask": (64, L, D_TINY, H_TINY, True),
    }.items():
        x = ops.convert_to_tensor(rng.standard_normal((b, t, d)).astype("float32"))
        inputs = (x,)
        if padded:
            inputs += (ops.not_equal(ops.convert_to_tensor(padded_ids(rng, b, t, V)), 0),)
        layers = {"zoo_current": MultiHeadAttention(h, d // h)}
        for name, cls in _variants().items():
            layers[name] = cls(h, d // h)
        layers["keras_core"] = keras.layers.MultiHeadAttention(h, d // h)
        steps = {name: common.forward_backward([layer], _attention_call(name, layer, t, d), inputs, jit)
                 for name, layer in layers.items()}
        _compare(f"attention_{label}", steps, args, results)


GROUPS = {"translation": translation_group, "vit": vit_group, "attention_variants": attention_variants_group}


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=0, windows=5, window_seconds=1.0)
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--jit-compile", default="false", choices=("both", "false", "true"))
    args = parser.parse_args(argv)
    common.set_policy(args.dtype_policy)
    report = {"benchmark": "profile_components", "system": common.system_info()}
    for jit in common.jit_settings(args.jit_compile):
        results = {}
        for group in args.groups.split(","):
            keras.utils.set_random_seed(0)
            GROUPS[group](args, jit, results)
        report[f"jit_compile={jit}"] = results
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
