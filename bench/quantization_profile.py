"""Parts of `bench/quantization.py`: where an export's time goes, and int8 logit drift on Marian.

`profile_translator` loads each translator export in a TF1 session (the way
TF Serving's loader runs a SavedModel), traces one request with
`RunOptions.FULL_TRACE` and adds up the time of every executed op by kind:

- `weight_matmuls`: matmuls of the layers int8 quantizes (attention
  projections, feed-forward, tied logits), the only ones it could speed up;
- `attention_matmuls`: query x key and weights x value over the caches;
- `cache_and_layout`: transposes, gathers (beam reordering of the caches,
  embedding lookups), scatters (cache writes), concatenations;
- `dequantize`: casts and scalings inside the quantized layers (and, in
  Keras' default int8 mode, the run-time quantization of activations);
- `softmax_top_k`: softmax, log-softmax and the beam's top-k;
- `other`.

Shares are of the summed op time (ops on two cores overlap, so the sum
exceeds the wall time); each is the median over `runs` traced requests.
`max_speedup_from_weight_matmuls` is Amdahl's bound: the whole request's
speed-up if weight matmuls took no time at all.

`marian_drift` converts a MarianMT checkpoint (`zoo.Translator.from_marian`),
quantizes a copy and compares logits on teacher-forced targets (the float
model's own translations), over the real (non-padding) target positions.
"""

import collections
import re
import statistics

import numpy as np

MATMULS = {"MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "_MklMatMul", "_MklBatchMatMulV2",
           "_MklBatchMatMulV3", "_MklEinsum", "_MklFusedMatMul", "_MklFusedBatchMatMulV2"}
LAYOUT = {"Transpose", "_MklTranspose", "GatherV2", "ResourceGather", "TensorScatterUpdate", "ConcatV2",
          "_MklConcatV2", "Tile", "Pack", "Reshape", "_MklReshape"}
SOFTMAX = {"Softmax", "_MklSoftmax", "LogSoftmax", "TopKV2"}
# Dequantizing weights (cast, scale), and for Keras' default int8 mode quantizing activations too.
DEQUANTIZE = {"Cast", "RealDiv", "Abs", "Max", "Round", "ClipByValue"}
# Name scopes of the layers `zoo.export.quantization` quantizes.
WEIGHT_LAYERS = re.compile(r"/(query|key|value|attention_output|intermediate|output|token_embedding|output_projection)/"
                           r"|target_embedding/")


def _category(op, name):
    name = re.sub(r"_\d+(?=/|$)", "", name)  # "intermediate_1/..." -> "intermediate/..."
    weights = bool(WEIGHT_LAYERS.search(name))
    if op in MATMULS:
        return "weight_matmuls" if weights else "attention_matmuls"
    if op in DEQUANTIZE and weights:
        return "dequantize"
    if op in LAYOUT:
        return "cache_and_layout"
    if op in SOFTMAX:
        return "softmax_top_k"
    return "other"


def _trace(path, sentences):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta.signature_def["serving_default"]
        fetch, feed = signature.outputs["translations"].name, signature.inputs["sentences"].name
        session.run(fetch, {feed: sentences})  # warm-up
        metadata = tf.compat.v1.RunMetadata()
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        session.run(fetch, {feed: sentences}, options=options, run_metadata=metadata)
    micros, ops = collections.Counter(), collections.Counter()
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            label = node.timeline_label
            op = label.split(" = ")[1].split("(")[0].strip() if " = " in label else node.node_name
            elapsed = node.op_end_rel_micros - node.op_start_rel_micros
            micros[_category(op, node.node_name)] += elapsed
            ops[op] += elapsed
    return micros, ops


def profile_translator(paths, sentences, runs=3):
    """`{side: {"share": {category: fraction}, "top_ops": ..., "max_speedup_from_weight_matmuls": x}}`."""
    out = {}
    for side, path in paths.items():
        shares, top = collections.defaultdict(list), collections.Counter()
        for _ in range(runs):
            micros, ops = _trace(path, sentences)
            total = sum(micros.values())
            for category in ("weight_matmuls", "attention_matmuls", "cache_and_layout", "dequantize",
                             "softmax_top_k", "other"):
                shares[category].append(micros[category] / total)
            top.update({op: t / total / runs for op, t in ops.items()})
        share = {category: statistics.median(values) for category, values in shares.items()}
        out[side] = {
            "share": share,
            "top_ops": {op: value for op, value in top.most_common(8)},
            "max_speedup_from_weight_matmuls": 1 / (1 - share["weight_matmuls"]),
        }
    out["batch"] = len(sentences)
    return out


def _reference_checkpoint(directory):
    from tests.convert.marian_checkpoint import write_marian_checkpoint

    write_marian_checkpoint(directory)  # the tests' random reference (needs torch, transformers)
    return directory


def marian_drift(checkpoint=None, sentences=64):
    """How far int8 logits move from float32 on a converted MarianMT checkpoint."""
    import tempfile

    import tensorflow as tf

    from tests.convert.marian_checkpoint import SOURCE_WORDS
    from tests.convert.marian_checkpoint import sentences as make_sentences
    from zoo.export import quantize_model
    from zoo.tasks import Translator

    with tempfile.TemporaryDirectory() as scratch:
        translator = Translator.from_marian(checkpoint or _reference_checkpoint(scratch))
    model = translator.model
    quantized, summary = quantize_model(model)
    texts = make_sentences(SOURCE_WORDS, sentences, seed=7)
    source, _, _ = translator.preprocessor.serving_inputs(tf.constant(texts))
    target = translator.graph().translate_ids(source)["target_ids"]  # (B, L): the float model's own translations
    decoder_input = tf.concat([tf.fill([tf.shape(target)[0], 1], model.start_token_id), target[:, :-1]], axis=1)
    # Real positions: up to and including the first end token.
    ended = tf.cumsum(tf.cast(tf.equal(target, model.end_token_id), tf.int32), axis=1, exclusive=True) > 0
    real = np.asarray(tf.logical_not(ended))
    inputs = {"source_ids": source, "target_ids": decoder_input}
    float_logits, int8_logits = np.asarray(model(inputs))[real], np.asarray(quantized(inputs))[real]  # (N, V)
    difference = np.abs(int8_logits - float_logits)
    int8_translator = Translator(quantized, translator.source_tokenizer, translator.target_tokenizer, translator.settings)
    same = np.mean([a == b for a, b in zip(translator.translate(texts), int8_translator.translate(texts))])
    return {
        "checkpoint": checkpoint or "tests/convert/marian_checkpoint.py write_marian_checkpoint (random, seed 0)",
        "quantized": summary.describe(),
        "positions": int(real.sum()),
        "max_abs_logit_difference": float(difference.max()),
        "mean_abs_logit_difference": float(difference.mean()),
        "float_logit_std": float(float_logits.std()),
        "mean_abs_difference_over_std": float(difference.mean() / float_logits.std()),
        "same_argmax": float(np.mean(int8_logits.argmax(-1) == float_logits.argmax(-1))),
        "same_translation": float(same),
        "sentences": len(texts),
    }
