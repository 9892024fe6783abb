"""ImageClassifier.fit: trains on a folder, arrays or a tf.data.Dataset, each fed through the one preprocessor;
labels that are not the classifier's classes are named."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.tasks.conftest import ROOT
from zoo.data.image_data import load_builtin
from zoo.models import VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier

CLASSES = ("cat", "dog", "emu")


def _classifier(classes=CLASSES, image_size=8, seed=0):
    keras.utils.set_random_seed(seed)
    model = VisionTransformer(image_size=image_size, patch_size=4, num_classes=len(classes), d_model=16,
                              num_encoder_layers=1, num_heads=2, d_ff=32)
    return ImageClassifier(model, ImagePreprocessor(image_size, (0.5,) * 3, (0.25,) * 3, classes), top_k=2)


def _images(count=12, seed=0):
    """uint8 images of two sizes (each class a brightness) and their labels, in class order."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) * len(CLASSES) // count
    images = [np.clip(70 * label + rng.integers(0, 60, (6 + i % 2 * 5, 7, 3)), 0, 255).astype(np.uint8)
              for i, label in enumerate(labels)]
    return images, labels


def _write_folder(root, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.png").write_bytes(tf.io.encode_png(image).numpy())
    return str(root)


def _fed(classifier, *args, **kwargs):
    """`(training batches, validation batches)` that `classifier.fit(*args, **kwargs)` hands to Keras, as NumPy."""
    fed = {}

    def record(x, validation_data=None, **_):
        fed.update(x=x, validation=validation_data)

    classifier.model.fit = record  # the instance's, for this test
    classifier.fit(*args, **kwargs)
    del classifier.model.fit
    as_numpy = lambda ds: None if ds is None else [tuple(t.numpy() for t in batch) for batch in ds]  # noqa: E731
    return as_numpy(fed["x"]), as_numpy(fed["validation"])


def _assert_same_batches(got, expected, atol=0.0):
    assert len(got) == len(expected)
    for (x, y), (x_expected, y_expected) in zip(got, expected):
        np.testing.assert_allclose(x, x_expected, atol=atol)
        np.testing.assert_array_equal(y, y_expected)


def test_fit_learns_the_builtin_digits_with_callbacks_and_augmentation():
    digits = load_builtin()
    classifier = _classifier(tuple(str(i) for i in range(10)))
    before = classifier.model.get_weights()
    seen, epochs = [], []

    def augment(batch):  # sees the resized [0, 1] pixels, before normalisation
        seen.append(tuple(batch["images"].shape[1:]))
        return {"images": tf.clip_by_value(batch["images"] * 1.1, 0.0, 1.0), "labels": batch["labels"]}

    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append(epoch))
    x, y = digits.train
    classifier.compile(optimizer=keras.optimizers.AdamW(3e-3))  # from scratch: a higher rate than the default
    history = classifier.fit(x[:320], y[:320], validation_data=digits.validation, epochs=3, batch_size=32,
                             callbacks=[record], augment=augment, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and epochs == [0, 1, 2]
    assert seen == [(8, 8, 3)]  # traced once
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses
    assert history.history["val_accuracy"][-1] > 0.25  # 10 classes: chance is 0.1
    assert any(not np.array_equal(a, b) for a, b in zip(before, classifier.model.get_weights()))
    # predict answers with the trained weights.
    probabilities = classifier.predict(list(digits.validation[0][:50]))["probabilities"]
    assert (probabilities.argmax(-1) == digits.validation[1][:50]).mean() > 0.25
    assert classifier.model.optimizer.iterations.numpy() == 30  # the compiled optimizer: 3 epochs x 10 steps


def test_every_kind_of_input_feeds_the_same_batches(tmp_path):
    """A class folder, datasets of encoded bytes with indices or class names; uint8 arrays, [0, 1]
    floats, a batched dataset: each kind gives Keras the batches the preprocessor makes of it, what
    serving feeds the model for the same images."""
    images, labels = _images()
    classifier = _classifier()
    folder = _write_folder(tmp_path / "train", images, labels)
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    names = np.array(CLASSES)[labels]
    options = dict(batch_size=5, shuffle=False, verbose=0)
    from_folder, validation = _fed(classifier, folder, validation_data=folder, **options)
    assert [len(x) for x, _ in from_folder] == [5, 5, 2] and from_folder[0][0].shape[1:] == (8, 8, 3)
    served = classifier.prepare(pngs)["inputs"]  # what predict and the export feed the model
    _assert_same_batches(from_folder, [(served[i : i + 5], np.eye(3)[labels[i : i + 5]]) for i in (0, 5, 10)])
    _assert_same_batches(validation, from_folder)
    for x in (tf.data.Dataset.from_tensor_slices((pngs, labels)), tf.data.Dataset.from_tensor_slices((pngs, names))):
        _assert_same_batches(_fed(classifier, x, **options)[0], from_folder)
    arrays = np.stack([image[:6] for image in images])
    from_arrays, validation = _fed(classifier, arrays, labels, validation_data=(arrays, names), **options)
    as_pngs = tf.data.Dataset.from_tensor_slices(([tf.io.encode_png(a).numpy() for a in arrays], labels))
    _assert_same_batches(from_arrays, _fed(classifier, as_pngs, **options)[0])
    _assert_same_batches(validation, from_arrays)
    _assert_same_batches(_fed(classifier, arrays / np.float32(255), names, **options)[0], from_arrays, atol=1e-6)
    batched = tf.data.Dataset.from_tensor_slices((arrays, labels)).batch(4)  # unbatched, batched by batch_size
    _assert_same_batches(_fed(classifier, batched, **options)[0], from_arrays)
    # Shuffled (the default): the same images each epoch, in a seeded order.
    shuffled, _ = _fed(classifier, arrays, labels, batch_size=12, verbose=0)
    again, _ = _fed(classifier, arrays, labels, batch_size=12, verbose=0)
    order = shuffled[0][1].argmax(-1)
    np.testing.assert_array_equal(order, again[0][1].argmax(-1))
    assert sorted(order.tolist()) == sorted(labels.tolist()) and order.tolist() != labels.tolist()


def test_labels_and_images_it_cannot_use_are_named(tmp_path):
    images, labels = _images()
    classifier = _classifier()
    arrays = np.stack([image[:6] for image in images])
    folder = _write_folder(tmp_path / "train", images, labels)
    os.rename(os.path.join(folder, "emu"), os.path.join(folder, "ostrich"))
    cases = [
        ((folder,), {}, ValueError, r"the class folders of .*train\) are not among the classifier's class names: "
                                    r"\['ostrich'\]. Expected some of \['cat', 'dog', 'emu'\]"),
        ((arrays, ["cat"] * 11 + ["yak"]), {}, ValueError, r"Labels of x are not among .*: \['yak'\]"),
        ((arrays, labels + 1), {}, ValueError, r"class indices in \[0, 3\) \(3 classes\). Received: \[3\]"),
        ((arrays, labels[:5]), {}, ValueError, "one label per image: 12 images. Received labels of shape"),
        ((arrays,), {}, ValueError, "give its labels"),
        ((folder, labels), {}, ValueError, "its labels are its sub-folder names"),
        ((arrays / 100.0, labels), {}, ValueError, rf"pixels in \[0, 1\]. Received: values 0.0..{arrays.max() / 100}"),
        ((arrays.astype(np.int32) * 2, labels), {}, ValueError,
         f"Received: dtype int32, values 0..{int(arrays.max()) * 2}"),
        ((arrays[..., 0], labels), {}, ValueError, r"\(N, H, W, C\) with C of 1 to 4. Received: shape \(12, 6, 7\)"),
        (([b"png"], [0]), {}, TypeError, "folder path, an \\(N, H, W, C\\) image array or a tf.data.Dataset"),
        ((arrays, labels), dict(validation_data=(arrays, labels[:3])), ValueError,
         "validation_data needs one label per image"),
    ]
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            classifier.fit(*args, verbose=0, **kwargs)


JAX_FIT = """
import json, sys
import keras, numpy as np
from tests.tasks.test_image_classifier_fit import _classifier, _images, _write_folder
from pathlib import Path
out = Path(sys.argv[1])
images, labels = _images()
classifier = _classifier()
before = classifier.model.get_weights()
history = classifier.fit(_write_folder(out / "train", images, labels),
                         validation_data=(np.stack([i[:6] for i in images]), labels), epochs=2, batch_size=4,
                         steps_per_epoch=2, verbose=0)
changed = any(not np.array_equal(a, b) for a, b in zip(before, classifier.model.get_weights()))
optimizer = classifier.model.optimizer  # compile()'s default, as fit found the model uncompiled
defaults = [type(optimizer).__name__, float(optimizer.learning_rate), optimizer.global_clipnorm,
            optimizer.iterations.numpy().item()]
classifier.save(out / "fitted")
probabilities = classifier.predict([str(p) for p in sorted((out / "train").rglob("*.png"))])["probabilities"]
print(json.dumps(dict(backend=keras.backend.backend(), history=history.history, changed=changed, defaults=defaults,
                      probabilities=probabilities.tolist())))
"""


@pytest.mark.slow
def test_fit_on_the_jax_backend_saves_what_tensorflow_loads(tmp_path):
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", JAX_FIT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["backend"] == "jax" and answer["changed"]
    assert len(answer["history"]["val_loss"]) == 2 and np.isfinite(answer["history"]["loss"]).all()
    assert answer["defaults"] == ["AdamW", pytest.approx(5e-5), 1.0, 4]  # 2 epochs x steps_per_epoch=2
    # Here, on TensorFlow: the folder the JAX run saved answers as the JAX classifier did.
    loaded = ImageClassifier.load(tmp_path / "fitted")
    files = [str(p) for p in sorted((tmp_path / "train").rglob("*.png"))]
    np.testing.assert_allclose(loaded.predict(files)["probabilities"], answer["probabilities"], atol=1e-5)
