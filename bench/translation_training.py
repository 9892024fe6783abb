"""Translation training throughput: zoo `TransformerTranslator` vs keras-hub layers.

    python -m bench.translation_training                      # CPU: transformer_tiny, batch 64, 32+32 tokens
    python -m bench.translation_training --preset transformer_base --batch-size 128 \
        --source-length 128 --target-length 128 --dtype-policy mixed_bfloat16 --mfu   # GPU

The anchor is keras-hub's `TokenAndPositionEmbedding` + `TransformerEncoder`
+ `TransformerDecoder` stack at the preset's sizes: same d_model, heads,
d_ff, layers, dropout, activation, LayerNorm epsilon and norm placement
(post-norm for the paper presets), the output projection tied to the
target token embedding (keras-hub's `ReversibleEmbedding(reverse=True)`),
separate source and target embeddings. What differs, because keras-hub's
layers do not offer it: keras-hub learns its position tables (zoo:
fixed sinusoids, no parameters) and does not scale token embeddings by
sqrt(d_model) (one multiply). Both mask padded source keys (encoder self-
and decoder cross-attention) and use a causal decoder mask; padded target
positions are excluded from the loss by `sample_weight`.

Same synthetic batch every step: random token ids (vocabulary 8,000 by
default), every row padded after a random length in [L/2, L]. Same Adam,
same `SparseCategoricalCrossentropy(from_logits=True)`, `train_on_batch`,
same `jit_compile` and `steps_per_execution`. Reports target tokens/s
(non-padding target tokens), zoo / keras-hub, parameters and model FLOPs.
"""

import keras
import numpy as np
from keras import ops

from bench import common
from bench.flops import translator_config_flops

PAD, START = 0, 2


def zoo_builder(config):
    def build():
        from zoo.models import TransformerTranslator

        keras.utils.set_random_seed(0)
        return TransformerTranslator(**config)

    return build


def keras_hub_builder(config, source_length, target_length):
    def build():
        import keras_hub

        keras.utils.set_random_seed(0)
        d, layer_args = config["d_model"], dict(
            intermediate_dim=config["d_ff"],
            num_heads=config["num_heads"],
            dropout=config["dropout"],
            activation=config["activation"],
            layer_norm_epsilon=config["layer_norm_epsilon"],
            normalize_first=config["norm_first"],
        )
        source = keras.Input((source_length,), dtype="int32", name="source_ids")
        target = keras.Input((target_length,), dtype="int32", name="target_ids")
        source_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            config["source_vocab_size"], source_length, d, name="source_embedding"
        )
        target_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            config["target_vocab_size"], target_length, d, name="target_embedding"
        )
        source_mask = ops.not_equal(source, PAD)  # (B, S)
        x = keras.layers.Dropout(config["dropout"])(source_embedding(source))
        for i in range(config["num_encoder_layers"]):
            x = keras_hub.layers.TransformerEncoder(**layer_args, name=f"encoder_{i}")(x, padding_mask=source_mask)
        if config["norm_first"]:
            x = keras.layers.LayerNormalization(epsilon=config["layer_norm_epsilon"])(x)
        y = keras.layers.Dropout(config["dropout"])(target_embedding(target))
        for i in range(config["num_decoder_layers"]):
            y = keras_hub.layers.TransformerDecoder(**layer_args, name=f"decoder_{i}")(
                y, x, encoder_padding_mask=source_mask, use_causal_mask=True
            )
        if config["norm_first"]:
            y = keras.layers.LayerNormalization(epsilon=config["layer_norm_epsilon"])(y)
        logits = target_embedding.token_embedding(y, reverse=True)  # tied output projection
        logits = keras.layers.Activation("linear", dtype="float32")(logits)
        return keras.Model({"source_ids": source, "target_ids": target}, logits)

    return build


def padded_ids(rng, batch, length, vocab):
    """`(batch, length)` random ids, padded with PAD after a random length in [L/2, L]."""
    ids = rng.integers(4, vocab, (batch, length))
    lengths = rng.integers(length // 2, length + 1, batch)
    return np.where(np.arange(length)[None, :] < lengths[:, None], ids, PAD).astype("int32")


def synthetic_batch(batch, source_length, target_length, vocab, seed=0):
    """Random ids padded after a random length in [L/2, L]; decoder input,
    labels (shifted) and the sample weights that drop padding."""
    rng = np.random.default_rng(seed)
    source = padded_ids(rng, batch, source_length, vocab)
    labels = padded_ids(rng, batch, target_length, vocab)
    decoder_input = np.concatenate([np.full((batch, 1), START, "int32"), labels[:, :-1]], axis=1)
    weights = (labels != PAD).astype("float32")
    return {"source_ids": source, "target_ids": decoder_input}, labels, weights


def main(argv=None):
    parser = common.add_training_flags(common.base_parser(__doc__.splitlines()[0], batch_size=64))
    parser.add_argument("--preset", default="transformer_tiny")
    parser.add_argument("--source-length", type=int, default=32)
    parser.add_argument("--target-length", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's dropout")
    parser.add_argument("--layers", type=int, default=None, help="override encoder and decoder depth (smoke tests)")
    args = parser.parse_args(argv)
    common.set_policy(args.dtype_policy)
    from zoo.models.transformer_translator_presets import TRANSFORMER_TRANSLATOR_PRESETS

    config = dict(
        TRANSFORMER_TRANSLATOR_PRESETS[args.preset]["config"],
        source_vocab_size=args.vocab_size,
        target_vocab_size=args.vocab_size,
        max_length=max(args.source_length, args.target_length),
    )
    if args.dropout is not None:
        config["dropout"] = args.dropout
    if args.layers:
        config["num_encoder_layers"] = config["num_decoder_layers"] = args.layers
    x, labels, weights = synthetic_batch(args.batch_size, args.source_length, args.target_length, args.vocab_size)
    target_tokens = int(weights.sum())
    result = common.compare_training(
        {"zoo": zoo_builder(config), "keras_hub": keras_hub_builder(config, args.source_length, args.target_length)},
        common.sparse_ce_compiler(lambda: keras.optimizers.Adam(1e-4), args.steps_per_execution),
        (x, labels, weights),
        target_tokens,
        args,
        flops_per_step=translator_config_flops(config, args.batch_size, args.source_length, args.target_length),
    )
    d = config["d_model"]
    report = {
        "benchmark": "translation_training",
        "unit": "target tokens/s (non-padding)",
        "system": common.system_info(),
        "preset": args.preset,
        "config": config,
        "batch_size": args.batch_size,
        "source_length": args.source_length,
        "target_length": args.target_length,
        "real_target_tokens_per_step": target_tokens,
        "real_source_tokens_per_step": int((x["source_ids"] != PAD).sum()),
        "steps_per_execution": args.steps_per_execution,
        "param_gap_explained": {
            "keras_hub_position_tables": (args.source_length + args.target_length) * d,
        },
        **result,
    }
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
