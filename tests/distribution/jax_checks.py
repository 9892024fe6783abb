"""Trains both models on 8 simulated CPU devices; prints one JSON line of findings.

Run by tests/distribution/test_jax_distribution.py in a subprocess with
`KERAS_BACKEND=jax` and `XLA_FLAGS=--xla_force_host_platform_device_count=8`
(JAX reads both at import). For each model (tiny configs, dropout off,
SGD with momentum so the optimizer state is distributed too):

1. one device: 3 steps (`fit` on a `tf.data` pipeline), then 2 more;
2. `DataParallel` over 8 devices: the first 3 steps from the same weights;
3. `ModelParallel` on a 2x4 (data x model) mesh with the model's
   `layout_map`: the first 3 steps; then the task is saved as a folder,
   its `model.keras` (with the optimizer state) loaded again under a new
   `ModelParallel` scope, trained the 2 more steps, and exported
   (`Task.export`: the TensorFlow backend in a subprocess).

Reported: per-step losses and the largest weight differences against the
one-device run, the sharding of every variable and optimizer slot, and the
export's answers next to the in-process JAX task's.
"""

import json
import os
import sys
import tempfile

import jax
import keras
import numpy as np
import tensorflow as tf

from tests.export.conftest import DE, EN
from zoo import distribution
from zoo.decoding import SearchSettings
from zoo.models import TransformerTranslator, VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier, Translator
from zoo.tasks.image_classifier_graph import classify_with_saved_model
from zoo.text import WordPieceTokenizer

BATCH, FIRST, MORE = 8, 3, 2
ODD = ["", "   \t ", "word " * 200, b"\xff\xfe broken \xc3"]


class BatchLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def train(model, dataset, steps):
    losses = BatchLosses()
    model.fit(dataset.take(steps), epochs=1, verbose=0, shuffle=False, callbacks=[losses])
    return losses.losses


def weights(model):
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.weights]


def max_difference(a, b):
    assert [x.shape for x in a] == [x.shape for x in b]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def shardings(model):
    """`{path: [spec, shard shape, full shape]}` of the model's and its optimizer's variables."""
    out = {}
    slots = [("optimizer:", v) for v in model.optimizer.variables]
    for prefix, v in [("", v) for v in model.weights] + slots:
        value = v.value
        if not v.shape:
            continue
        spec = getattr(value.sharding, "spec", None)
        out[prefix + v.path] = [
            [None if a is None else str(a) for a in spec] if spec is not None else None,
            list(value.addressable_shards[0].data.shape), list(v.shape), len(value.addressable_shards),
        ]
    return out


# -- the two models and their data -----------------------------------------------------------
def translator_parts():
    source = WordPieceTokenizer.from_corpus(EN * 10, 80, lowercase=False)
    target = WordPieceTokenizer.from_corpus(DE * 10, 80, lowercase=False)

    def build():
        return TransformerTranslator(
            source.vocabulary_size, target.vocabulary_size, num_encoder_layers=1, num_decoder_layers=1, d_model=16,
            num_heads=4, d_ff=32, max_length=16, dropout=0.0, position="learned", tie_output_embeddings=False,
        )

    pad = 0
    src = source.tokenize(tf.constant(EN * 10)).to_tensor(pad)[:, :12]
    tgt = target.tokenize(tf.constant(DE * 10)).to_tensor(pad)[:, :11]
    n = tf.shape(tgt)[0]
    start, end = tf.fill([n, 1], 2), tf.fill([n, 1], 3)
    target_in = tf.concat([tf.cast(start, tgt.dtype), tgt], 1)
    target_out = tf.concat([tgt, tf.cast(end, tgt.dtype)], 1)
    data = tf.data.Dataset.from_tensor_slices(
        ({"source_ids": tf.cast(src, tf.int32), "target_ids": tf.cast(target_in, tf.int32)},
         tf.cast(target_out, tf.int32), tf.cast(target_out != pad, tf.float32))
    ).batch(BATCH, drop_remainder=True)
    from zoo.models.losses import SparseCrossentropyWithSmoothing

    def task(model):
        return Translator(model, source, target, SearchSettings(beam_width=3, max_length=8))

    return build, data, SparseCrossentropyWithSmoothing(0.1), task


def vit_parts():
    def build():
        return VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=2,
                                 num_heads=4, d_ff=32, representation_size=8)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(BATCH * (FIRST + MORE), 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 3, size=len(images))
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH, drop_remainder=True)
    prep = ImagePreprocessor(8, (0.5,) * 3, (0.25,) * 3, ("cat", "dog", "bird"))

    def task(model):
        return ImageClassifier(model, prep, top_k=2)

    return build, data, keras.losses.SparseCategoricalCrossentropy(from_logits=True), task


def compile_model(model, loss):
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=loss, weighted_metrics=[])


# -- the checks ---------------------------------------------------------------------------------
def run(name, parts, scratch):
    build, data, loss, task = parts()
    more = data.skip(FIRST)
    keras.utils.set_random_seed(1)
    single = build()
    start = weights(single)
    compile_model(single, loss)
    found = {"single": train(single, data, FIRST)}
    after_first = weights(single)
    found["single_more"] = train(single, more, MORE)
    after_more = weights(single)

    def distributed(engine):
        with engine.scope():
            model = build()
            model.set_weights(start)
            compile_model(model, loss)
            losses = train(model, data, FIRST)
        return model, losses

    engine = distribution.data_parallel()
    found["data_parallel_engine"] = [distribution.describe(engine), distribution.batch_shards(engine)]
    dp, found["data_parallel"] = distributed(engine)
    found["data_parallel_weights"] = max_difference(after_first, weights(dp))
    found["data_parallel_sharding"] = shardings(dp)
    engine = distribution.model_parallel(type(single), "2x4", single.get_config())
    found["model_parallel_engine"] = [distribution.describe(engine), distribution.batch_shards(engine)]
    mp, found["model_parallel"] = distributed(engine)
    found["model_parallel_weights"] = max_difference(after_first, weights(mp))
    found["model_parallel_sharding"] = shardings(mp)

    # A checkpoint of the sharded run: the task folder (model.keras holds the optimizer state).
    folder = task(mp).save(os.path.join(scratch, name))
    engine = distribution.model_parallel(type(single), "2x4", single.get_config())
    with engine.scope():
        # A task loads its model uncompiled; resuming training loads model.keras with its optimizer.
        model = keras.saving.load_model(os.path.join(folder, "model.keras"))
        found["resumed_sharding"] = shardings(model)
        found["resumed_more"] = train(model, more, MORE)
    found["resumed_weights"] = max_difference(after_more, weights(model))
    found["export"] = compare_export(task(model), os.path.join(scratch, "export"))
    return found


def compare_export(task, base):
    """The in-process JAX task's answers and the TensorFlow export's, side by side."""
    path = task.export(base)
    loaded = tf.saved_model.load(path)
    if isinstance(task, Translator):
        sentences = EN + ODD
        as_bytes = [s.encode() if isinstance(s, str) else s for s in sentences]
        exported = loaded.signatures["serving_default"](sentences=tf.constant(as_bytes))
        nbest = loaded.signatures["translate_nbest"](sentences=tf.constant(as_bytes), n=tf.constant(3))
        pairs = task.translate(sentences, return_scores=True)
        lists = task.translate(sentences, n_best=3, return_scores=True)
        # The short sentences alone: the export pads them to the longest, the JAX search to a bucket.
        exported_short = loaded.signatures["serving_default"](sentences=tf.constant(as_bytes[: len(EN)]))
        short = task.translate(EN, return_scores=True)
        return {
            "path": path,
            "jax": [t for t, _ in pairs], "tf": [t.decode() for t in exported["translations"].numpy()],
            "jax_scores": [s for _, s in pairs], "tf_scores": exported["scores"].numpy().tolist(),
            "jax_nbest": [[t for t, _ in row] for row in lists],
            "tf_nbest": [[t.decode() for t, s in zip(ts, ss) if s > -1e8] for ts, ss in
                         zip(nbest["translations"].numpy(), nbest["scores"].numpy())],
            "jax_short": [t for t, _ in short], "tf_short": [t.decode() for t in exported_short["translations"].numpy()],
            "jax_short_scores": [s for _, s in short], "tf_short_scores": exported_short["scores"].numpy().tolist(),
            "short_width": int(task.graph().prepare(tf.constant(as_bytes[: len(EN)]))[0].shape[1]),
        }
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(12, 10, 3)).astype("uint8") for _ in range(3)]
    encoded = [tf.io.encode_png(image).numpy() for image in images] + [b"not an image"]
    ours = task.predict(encoded)
    theirs = classify_with_saved_model(path, encoded)
    pixels = rng.random((2, 8, 8, 3)).astype("float32")
    ours_pixels = task.predict(list(pixels))["probabilities"]
    theirs_pixels = loaded.signatures["classify_pixels"](pixels=tf.constant(pixels))["probabilities"].numpy()
    return {
        "path": path,
        "jax": ours["probabilities"].tolist(), "tf": theirs["probabilities"].tolist(),
        "jax_labels": ours["top_k_labels"].tolist(), "tf_labels": np.char.decode(theirs["top_k_labels"].astype(bytes)).tolist(),
        "jax_valid": ours["valid"].tolist(), "tf_valid": theirs["valid"].tolist(),
        "jax_pixels": ours_pixels.tolist(), "tf_pixels": theirs_pixels.tolist(),
    }


def main():
    assert keras.backend.backend() == "jax" and jax.device_count() == 8, (keras.backend.backend(), jax.devices())
    results = {"devices": jax.device_count()}
    with tempfile.TemporaryDirectory() as scratch:
        for name, parts in (("translator", translator_parts), ("vit", vit_parts)):
            if len(sys.argv) < 2 or name in sys.argv[1:]:
                results[name] = run(name, parts, scratch)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
