"""Decoding speed, side by side in one run (CPU; TensorFlow backend).

    python -m bench.decoding                # transformer_tiny size, 64 new tokens
    python -m bench.decoding --quick        # fewer windows and repeats, for a smoke run

Reports per-token latency of the following (the cached decoders timed in
alternating windows, median and range; full recompute and the SavedModel
as the median of repeats):

- zoo cached greedy: `zoo.decoding.generate` (keras-hub's GreedySampler over
  our cached decoder step), XLA-compiled;
- zoo full recompute: the whole decoder re-run on the prefix at every step;
- keras-hub cached greedy: keras-hub's own `TransformerEncoder` /
  `TransformerDecoder` / `TokenAndPositionEmbedding` at the same sizes with
  their key/value caches, driven by the same XLA-compiled GreedySampler;
- zoo beam search, width 4, XLA-compiled;
- the exported SavedModel (tokenize + beam 4 + detokenize), sentences/s.

at batch 1 and 32, and the ratios. Weights are random; an output bias keeps
the end token from being chosen so every run generates exactly 64 tokens.
Absolute times only mean something on the machine they were taken on.
"""

import argparse
import tempfile

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from bench import common
from bench.common import timed
from zoo.decoding import beam_search, generate
from zoo.models import TransformerTranslator

VOCAB, SOURCE_LENGTH, NEW_TOKENS = 8000, 32, 64


def zoo_model():
    keras.utils.set_random_seed(0)
    model = TransformerTranslator.from_preset(
        "transformer_tiny", source_vocab_size=VOCAB, target_vocab_size=VOCAB, dropout=0.0,
        max_length=NEW_TOKENS + 1, output_bias=True, end_token_id=VOCAB - 1,
    )
    bias = np.zeros(VOCAB, "float32")
    bias[VOCAB - 1] = -1e4  # never end: every run decodes NEW_TOKENS tokens
    model.logits_bias.assign(bias)
    return model


def full_recompute(model, source, steps):
    # Graph mode, shapes relaxed: XLA would recompile for every prefix length.
    @tf.function(reduce_retracing=True)
    def step(source, prefix):
        return tf.argmax(model({"source_ids": source, "target_ids": prefix})[:, -1], axis=-1, output_type=tf.int32)

    def run():
        prefix = tf.fill([source.shape[0], 1], model.start_token_id)
        for _ in range(steps):
            prefix = tf.concat([prefix, step(source, prefix)[:, None]], axis=1)
        return prefix

    return run


class KerasHubSeq2Seq:
    """keras-hub's layers at transformer_tiny sizes, with their caches."""

    def __init__(self, layers=4, d_model=128, heads=8, d_ff=512):
        keras.utils.set_random_seed(0)
        emb = dict(vocabulary_size=VOCAB, sequence_length=NEW_TOKENS + SOURCE_LENGTH, embedding_dim=d_model)
        self.source_embedding = keras_hub.layers.TokenAndPositionEmbedding(**emb)
        self.target_embedding = keras_hub.layers.TokenAndPositionEmbedding(**emb)
        self.encoders = [keras_hub.layers.TransformerEncoder(d_ff, heads) for _ in range(layers)]
        self.decoders = [keras_hub.layers.TransformerDecoder(d_ff, heads) for _ in range(layers)]
        self.head = keras.layers.Dense(VOCAB)
        self.heads, self.key_dim = heads, d_model // heads

    def generate(self, source, max_length):
        x = self.source_embedding(source)
        for layer in self.encoders:
            x = layer(x)
        encoded = x
        batch = ops.shape(source)[0]
        self_caches, cross_caches = [], []
        for layer in self.decoders:  # cross keys/values computed once, by a first call
            empty_self = ops.zeros((batch, 2, max_length, self.heads, self.key_dim))
            empty_cross = ops.zeros((batch, 2, ops.shape(x)[1], self.heads, self.key_dim))
            _, self_cache, cross_cache = layer(
                self.target_embedding(ops.zeros((batch, 1), "int32")), x,
                self_attention_cache=empty_self, self_attention_cache_update_index=0,
                cross_attention_cache=empty_cross, cross_attention_cache_update_index=0,
            )
            self_caches.append(empty_self)
            cross_caches.append(cross_cache)
        cache = (tuple(self_caches), tuple(cross_caches))

        def next_fn(prompt, cache, index):
            token = ops.take(prompt, index - 1, axis=1)[:, None]
            h = self.target_embedding(token, start_index=index - 1)
            new_self = []
            for layer, s, c in zip(self.decoders, *cache):
                h, s, _ = layer(  # the cached cross keys/values are used, not recomputed
                    h, encoded, self_attention_cache=s, self_attention_cache_update_index=index - 1,
                    cross_attention_cache=c, cross_attention_cache_update_index=None,
                )
                new_self.append(s)
            return self.head(h)[:, 0], None, (tuple(new_self), cache[1])

        prompt = ops.concatenate([ops.ones((batch, 1), "int32"), ops.zeros((batch, max_length - 1), "int32")], 1)
        mask = ops.concatenate([ops.ones((batch, 1), "bool"), ops.zeros((batch, max_length - 1), "bool")], 1)
        return keras_hub.samplers.GreedySampler()(next_fn, prompt, cache=cache, index=1, mask=mask)


def bench_batch(batch, repeats, windows, window_seconds):
    model = zoo_model()
    source = tf.constant(np.random.default_rng(0).integers(4, VOCAB, (batch, SOURCE_LENGTH)), tf.int32)
    zoo_greedy = tf.function(lambda s: generate(model, s, NEW_TOKENS), jit_compile=True)
    zoo_beam = tf.function(lambda s: beam_search(model, s, NEW_TOKENS, beam_width=4), jit_compile=True)
    hub = KerasHubSeq2Seq()
    hub_greedy = tf.function(lambda s: hub.generate(s, NEW_TOKENS + 1), jit_compile=True)

    def tokens(fn):
        def call():
            common.block(fn(source))
            return NEW_TOKENS  # tokens generated per sequence by one call

        return call

    # The cached decoders alternate in windows (A B C, C B A, ...), so
    # machine load hits them alike; full recompute is too slow for windows.
    timings = common.interleaved(
        {
            "zoo_cached_greedy": tokens(zoo_greedy),
            "keras_hub_cached_greedy": tokens(hub_greedy),
            "zoo_beam4": tokens(zoo_beam),
        },
        windows,
        window_seconds,
    )
    results = {}
    for name, timing in timings.items():
        per_s = timing["per_s"]
        results[name] = {
            "ms_per_token": round(1000 / per_s["median"], 3),
            "range_ms": [round(1000 / per_s["max"], 3), round(1000 / per_s["min"], 3)],
        }
    median, spread = timed(full_recompute(model, source, NEW_TOKENS), max(1, repeats // 3))
    results["zoo_full_recompute"] = {
        "ms_per_token": round(1000 * median / NEW_TOKENS, 3),
        "spread_ms": round(1000 * spread / NEW_TOKENS, 3),
    }
    zoo_ms = results["zoo_cached_greedy"]["ms_per_token"]
    results["ratios"] = {
        "full_recompute / zoo_cached": round(results["zoo_full_recompute"]["ms_per_token"] / zoo_ms, 2),
        "keras_hub_cached / zoo_cached": round(results["keras_hub_cached_greedy"]["ms_per_token"] / zoo_ms, 2),
        "beam4 / greedy": round(results["zoo_beam4"]["ms_per_token"] / zoo_ms, 2),
    }
    return results


def bench_saved_model(repeats):
    from zoo.data import builtin_translation
    from zoo.decoding import SearchSettings
    from zoo.tasks import Translator
    from zoo.text import WordPieceTokenizer

    pairs = builtin_translation.load_splits(num_pairs=3000)["train"]
    source = WordPieceTokenizer.from_corpus([s for s, _ in pairs], 1000, lowercase=False)
    target = WordPieceTokenizer.from_corpus([t for _, t in pairs], 1000, lowercase=False)
    keras.utils.set_random_seed(0)  # the same weights, so the same hypothesis lengths, every run
    model = TransformerTranslator.from_preset(
        "transformer_tiny", source_vocab_size=source.vocabulary_size, target_vocab_size=target.vocabulary_size,
        max_length=40, dropout=0.0,
    )
    results = {}
    with tempfile.TemporaryDirectory() as base:
        translator = Translator(model, source, target, SearchSettings(beam_width=4, max_length=40))
        loaded = tf.saved_model.load(translator.export(base))
        serve = loaded.signatures["serving_default"]
        for batch in (1, 32):
            sentences = tf.constant([s for s, _ in pairs[:batch]])
            median, spread = timed(lambda: serve(sentences=sentences), repeats)
            results[f"batch_{batch}"] = {"sentences_per_s": round(batch / median, 1), "spread_s": round(spread, 4)}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 10
    windows, window_seconds = (3, 1.0) if args.quick else (7, 2.0)
    report = {
        "system": common.system_info(),
        "new_tokens": NEW_TOKENS,
        "batch_1": bench_batch(1, repeats, windows, window_seconds),
        "batch_32": bench_batch(32, repeats, windows, window_seconds),
        "saved_model_beam4": bench_saved_model(repeats),
    }
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
