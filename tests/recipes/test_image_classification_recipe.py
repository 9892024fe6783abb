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
        ["train", "--output", out, "--epochs", "2", "--steps-per-epoch", "3", "--rand-augment",
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

    lines, unreadable = image_classification.classify(version, [paths[0], bad])
    assert lines[1].endswith("invalid image") and "\t" in lines[0] and unreadable == 0


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


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from zoo.export.image_classifier import export_image_classifier
    from zoo.models import VisionTransformer

    model = VisionTransformer(image_size=16, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1, num_heads=2)
    base = str(tmp_path_factory.mktemp("export"))
    return model, export_image_classifier(model, ["zero", "one", "two"], base, top_k=2)


def test_classify_goes_on_past_files_it_cannot_read(tiny_export, tmp_path, capsys):
    _, version = tiny_export
    good, text, missing = str(tmp_path / "a.png"), str(tmp_path / "notes.png"), str(tmp_path / "missing.png")
    tf.io.write_file(good, tf.io.encode_png(np.zeros((20, 20, 3), np.uint8)))
    open(text, "w").write("not an image")
    with pytest.raises(SystemExit) as exit_info:
        image_classification.main(["classify", "--model", version, good, missing, text, str(tmp_path)])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [good, missing, text, str(tmp_path)]  # one per path, in order
    assert len(lines[0].split("\t")[1].split(", ")) == 2  # top-2 labels with scores
    assert lines[1] == f"{missing}\tcannot read: No such file or directory"
    assert lines[2] == f"{text}\tinvalid image" and lines[3] == f"{tmp_path}\tcannot read: Is a directory"
    assert err == "error: 2 of 4 image files could not be read (--verbose shows the traceback)\n"


def test_attention_plot_titles_true_and_predicted_labels(tiny_export, tmp_path):
    from recipes.image_plots import plot_attention_maps

    model, _ = tiny_export
    images = np.zeros((2, 16, 16, 3), np.uint8)
    inputs = np.zeros((2, 16, 16, 3), np.float32)
    path = str(tmp_path / "attention.png")
    attention, titles = plot_attention_maps(model, images, inputs, path, ["3", "8"], ["3", "5"])
    assert titles == ["true 3 / predicted 3", "true 8 / predicted 5"]
    assert attention.shape == (2, 4, 4) and os.path.getsize(path) > 1000
