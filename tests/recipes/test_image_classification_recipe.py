"""End to end: the ViT recipe trains, evaluates, exports, and the export serves."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from recipes import image_classification
from tests.helpers import run_without_zoo
from tests.recipes.parity import assert_mirrored_matches_single_device

FRESH = r"""
model = tf.saved_model.load(sys.argv[1])
images = [open(p, "rb").read() for p in sys.argv[2:]]
out = model.signatures["serving_default"](image_bytes=tf.constant(images))
print(json.dumps({k: v.numpy().tolist() for k, v in out.items() if k != "top_k_labels"}
                 | {"top_k_labels": [[l.decode() for l in row] for row in out["top_k_labels"].numpy()]}))
"""


@pytest.mark.slow
def test_train_evaluate_export_and_serve(tmp_path):
    out = str(tmp_path / "run")
    model = image_classification.main(
        ["train", "--output", out, "--epochs", "2", "--steps-per-epoch", "3", "--rand-augment", "true",
         "--mixup-alpha", "0.2"]
    )
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0 and metrics["test_images"] > 100
    for picture in ("confusion_matrix.png", "attention_maps.png"):
        assert os.path.getsize(os.path.join(out, picture)) > 5_000
    version = os.path.join(out, "export", "image_classifier", "1")
    assert os.path.exists(os.path.join(version, "assets.extra", "tf_serving_warmup_requests"))

    # Real encoded test images, written as files as a user would send them.
    from zoo.data.image_data import load_image_data

    images, labels = load_image_data("builtin", 32).test
    paths = []
    for i, encode in enumerate((tf.io.encode_png, tf.io.encode_jpeg, tf.io.encode_png)):
        path = str(tmp_path / f"digit_{i}.{'jpg' if encode is tf.io.encode_jpeg else 'png'}")
        tf.io.write_file(path, encode(images[i]))
        paths.append(path)
    bad = str(tmp_path / "notes.jpg")
    open(bad, "w").write("this is a text file, not a JPEG")
    served = run_without_zoo(FRESH, version, *paths, bad)
    assert served["valid"] == [True, True, True, False]
    assert served["top_k_labels"][3] == [""] * 5

    # Same probabilities as the in-process model on the decoded PNGs.
    decoded = np.stack([tf.io.decode_png(tf.io.read_file(p)).numpy() for p in (paths[0], paths[2])])
    inputs = np.asarray(image_classification.normalize(decoded.astype("float32") / 255.0))
    expected = tf.nn.softmax(np.asarray(model(inputs), dtype="float32")).numpy()
    np.testing.assert_allclose(np.array(served["probabilities"])[[0, 2]], expected, atol=1e-4)

    lines = image_classification.classify(version, [paths[0], bad])
    assert lines[1].endswith("invalid image") and "\t" in lines[0]


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_single_device():
    assert_mirrored_matches_single_device(
        """
        from recipes.image_classification import ImageClassificationConfig, build_model, compile_model

        rng = np.random.default_rng(0)
        images = rng.normal(size=(32, 32, 32, 3)).astype("float32")
        labels = np.eye(4)[rng.integers(0, 4, 32)].astype("float32")
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
        config = ImageClassificationConfig(epochs=2, warmup_epochs=1, dropout=0.0, drop_path_rate=0.0)

        def build():
            model = build_model(config, 4)
            compile_model(model, config, steps_per_epoch=4)
            return model
        """
    )
