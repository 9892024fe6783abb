"""End to end: the ViT recipe trains, evaluates, exports, and the export serves."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from recipes import image_classification
from tests.helpers import run_without_zoo
from tests.recipes.parity import assert_mirrored_matches_single_device
from tests.tasks.conftest import run_fresh

FRESH = r"""
model = tf.saved_model.load(sys.argv[1])
images = [open(p, "rb").read() for p in sys.argv[2:]]
out = model.signatures["serving_default"](image_bytes=tf.constant(images))
def plain(value):  # bytes (labels, reasons) as text, at any depth
    return value.decode() if isinstance(value, bytes) else [plain(v) for v in value] if isinstance(value, list) else value
print(json.dumps({k: plain(v.numpy().tolist()) for k, v in out.items()}))
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
    for picture in ("confusion_matrix.png", "attention_maps.png", "attention_rollout.png"):
        assert os.path.getsize(os.path.join(out, picture)) > 5_000
    version = os.path.join(out, "export", "image_classifier", "1")
    assert os.path.exists(os.path.join(version, "assets.extra", "tf_serving_warmup_requests"))

    # Real encoded test images, written as files as a user would send them.
    from zoo.data.image_data import load_image_data

    images, labels = load_image_data("builtin").test  # 8x8 scans: the export resizes them
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
    assert served["reason"][:3] == ["", "", ""] and "not a decodable image" in served["reason"][3]

    # Same probabilities as the trained model on the decoded PNGs, resized to 32 (bilinear) and normalised
    # to [-1, 1] as in training.
    decoded = np.stack([tf.io.decode_png(tf.io.read_file(p)).numpy() for p in (paths[0], paths[2])])
    resized = tf.image.resize(decoded.astype("float32") / 255.0, (32, 32), antialias=True).numpy()
    expected = tf.nn.softmax(np.asarray(model((resized - 0.5) / 0.5), "float32")).numpy()
    np.testing.assert_allclose(np.array(served["probabilities"])[[0, 2]], expected, atol=1e-4)

    # The trained classifier is one task folder, <output>/model; in a fresh process it predicts as the export.
    folder = os.path.join(out, "model")
    assert not os.path.exists(os.path.join(out, "model.keras")) and os.path.exists(os.path.join(folder, "task.json"))
    loaded = json.loads(run_fresh(FRESH_CLASSIFIER, folder, *paths, bad))
    assert loaded["preprocessing"]["mean"] == [0.5] * 3 and loaded["preprocessing"]["image_size"] == [32, 32]
    np.testing.assert_allclose(loaded["probabilities"], served["probabilities"], atol=1e-5)
    assert loaded["top_k_labels"] == served["top_k_labels"] and loaded["valid"] == served["valid"]

    # classify reads the export or the task folder, with the same lines.
    lines, unreadable = image_classification.classify(version, [paths[0], bad])
    assert lines[1].endswith("\tinvalid image: not a decodable image (or truncated, or corrupt)")
    assert "\t" in lines[0] and unreadable == 0
    assert image_classification.classify(folder, [paths[0], bad]) == (lines, unreadable)

    # evaluate reads the task folder: the same model on the same test split gives the same metrics.
    image_classification.main(["evaluate", "--output", out])
    assert json.load(open(os.path.join(out, "metrics.json"))) == metrics


FRESH_CLASSIFIER = """
import json, sys, zoo
classifier = zoo.ImageClassifier.load(sys.argv[1])
out = classifier.predict(sys.argv[2:])
print(json.dumps(dict(preprocessing=classifier.preprocessor.get_config(), probabilities=out["probabilities"].tolist(),
                      top_k_labels=out["top_k_labels"].tolist(), valid=out["valid"].tolist())))
"""


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


def test_training_batches_are_what_the_saved_classifier_feeds_its_model(tmp_path):
    from zoo.preprocessing.image_preprocessor import DEFAULT_MEAN, DEFAULT_STD

    config = image_classification.ImageClassificationConfig(output=str(tmp_path), batch_size=8)
    data, batches = image_classification.load_run(config)
    images, _ = next(iter(batches["validation"]))  # in order, not augmented
    preprocessor = image_classification.image_preprocessor(config, data.class_names)
    assert (preprocessor.mean, preprocessor.std, preprocessor.image_size) == (DEFAULT_MEAN, DEFAULT_STD, (32, 32))
    assert preprocessor.class_names == tuple(data.class_names) and data.validation[0].shape[1:] == (8, 8, 3)
    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in data.validation[0][:8]])
    served, valid = preprocessor.prepare_bytes(pngs)  # the 8x8 scans upsampled as the export does
    assert valid.numpy().all()
    np.testing.assert_allclose(images, served, atol=1e-6)


CLASSES = ["zero", "one", "two"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A small random classifier (16x16, top 2): its export and its task folder."""
    import zoo
    from zoo.preprocessing import ImagePreprocessor
    from zoo.models import VisionTransformer

    model = VisionTransformer(image_size=16, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32)
    classifier = zoo.ImageClassifier(model, ImagePreprocessor(16, (0.5,) * 3, (0.5,) * 3, CLASSES), top_k=2)
    base = tmp_path_factory.mktemp("tiny")
    return dict(export=classifier.export(str(base / "export")), task=classifier.save(base / "model"))


@pytest.mark.parametrize("kind", ["export", "task"])
def test_classify_goes_on_past_files_it_cannot_read(tiny_run, kind, tmp_path, capsys):
    good, text, missing = str(tmp_path / "a.png"), str(tmp_path / "notes.png"), str(tmp_path / "missing.png")
    tf.io.write_file(good, tf.io.encode_png(np.zeros((20, 20, 3), np.uint8)))
    open(text, "w").write("not an image")
    with pytest.raises(SystemExit) as exit_info:
        image_classification.main(["classify", "--model", tiny_run[kind], good, missing, text, str(tmp_path)])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [good, missing, text, str(tmp_path)]  # one per path, in order
    assert len(lines[0].split("\t")[1].split(", ")) == 2  # top-2 labels with scores
    assert lines[1] == f"{missing}\tcannot read: No such file or directory"
    assert lines[2] == f"{text}\tinvalid image: not a decodable image (or truncated, or corrupt)"
    assert lines[3] == f"{tmp_path}\tcannot read: Is a directory"
    assert err == "error: 2 of 4 image files could not be read (--verbose shows the traceback)\n"


def test_classify_prints_the_same_lines_for_the_task_folder_and_the_export(tiny_run, tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, (encode, shape) in enumerate([(tf.io.encode_png, (20, 20, 3)), (tf.io.encode_jpeg, (9, 31, 3))]):
        paths.append(str(tmp_path / f"image_{i}"))
        tf.io.write_file(paths[-1], encode(rng.integers(0, 256, shape, dtype=np.uint8)))
    by_export = image_classification.classify(tiny_run["export"], paths)
    assert image_classification.classify(tiny_run["task"], paths) == by_export
    labels = [part.rsplit(" ", 1)[0] for line in by_export[0] for part in line.split("\t")[1].split(", ")]
    assert set(labels) <= set(CLASSES)


def test_export_reads_the_task_folder_and_top_k_flag_overrides_it(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run["task"], run / "model")
    image = str(tmp_path / "a.png")
    tf.io.write_file(image, tf.io.encode_png(np.zeros((20, 20, 3), np.uint8)))
    image_classification.main(["export", "--output", str(run), "--top-k", "1"])
    assert capsys.readouterr().out.endswith(f"exported {run}/export/image_classifier/1\n")
    (line,), _ = image_classification.classify(str(run / "export" / "image_classifier" / "1"), [image])
    (saved,), _ = image_classification.classify(tiny_run["task"], [image])  # the task folder's top 2
    assert len(saved.split(", ")) == 2 and line == saved.split(", ")[0]
    # --quantize int8: the sibling model image_classifier_int8, same outputs' shapes, float export untouched.
    from zoo.export.quantization import read_quantization

    image_classification.main(["export", "--output", str(run), "--quantize", "int8", "--top-k", "1"])
    int8 = run / "export" / "image_classifier_int8" / "1"
    assert read_quantization(str(int8))["mode"] == "int8"
    assert sorted(os.listdir(run / "export")) == ["image_classifier", "image_classifier_int8"]
    (line,), _ = image_classification.classify(str(int8), [image])
    assert len(line.split(", ")) == 1
    with pytest.raises(SystemExit):
        image_classification.main(["export", "--output", str(run), "--quantize", "int4"])
    assert "invalid choice: 'int4' (choose from 'none', 'int8')" in capsys.readouterr().err


def test_classify_without_a_model_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        image_classification.main(["classify", "--model", str(tmp_path / "none"), "a.png"])
    assert capsys.readouterr().err.startswith(
        f"error: No task folder or SavedModel at {str(tmp_path / 'none')!r}. Expected a task folder such as "
        "runs/image_classification/model or an export directory such as "
        "runs/image_classification/export/image_classifier/1."
    )


def test_a_run_folder_from_before_task_folders_still_evaluates_exports_and_classifies(tmp_path, capsys):
    """What recipes/image_classification.py wrote before task folders: model.keras (here one saved by
    main), class_names.json and config.json; mean and std were the recipe's 0.5."""
    import shutil

    from tests.tasks.test_image_classifier import MAIN_VIT

    run = tmp_path / "old_run"
    run.mkdir()
    shutil.copy(MAIN_VIT, run / "model.keras")  # 8x8 images, 3 classes
    (run / "class_names.json").write_text(json.dumps(CLASSES))
    rng = np.random.default_rng(0)
    for name in CLASSES:  # a folder: dataset of 5 images per class
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(5):
            tf.io.write_file(str(tmp_path / "images" / name / f"{i}.png"),
                             tf.io.encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)))
    config = image_classification.ImageClassificationConfig(
        data=f"folder:{tmp_path / 'images'}", image_size=8, top_k=2, batch_size=2)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    image_classification.main(["evaluate", "--output", str(run)])
    metrics = json.load(open(run / "metrics.json"))
    assert metrics["test_images"] == 3 and 0.0 <= metrics["top1"] <= metrics["top2"] <= 1.0
    assert (run / "attention_maps.png").stat().st_size > 1_000
    image_classification.main(["export", "--output", str(run)])
    version = str(run / "export" / "image_classifier" / "1")
    paths = [str(tmp_path / "images" / name / "0.png") for name in CLASSES]
    by_export = image_classification.classify(version, paths)
    assert image_classification.classify(str(run), paths) == by_export  # the old folder, directly
    # The export normalised with the recipe's mean and std, 0.5.
    served = np.array([float(line.split("\t")[1].split(", ")[0].rsplit(" ", 1)[1]) for line in by_export[0]])
    model = __import__("keras").saving.load_model(run / "model.keras", compile=False)
    pixels = np.stack([tf.io.decode_png(tf.io.read_file(p)).numpy() for p in paths]).astype("float32") / 255.0
    np.testing.assert_allclose(served, tf.nn.softmax(model((pixels - 0.5) / 0.5)).numpy().max(axis=1), atol=2e-3)


def test_an_export_of_the_other_task_is_named_in_one_line(tiny_run, tmp_path, capsys):
    """classify used to dump the PNG in TensorFlow's binding error; translate raised that error too."""
    from recipes import translation

    module = tf.Module()  # a SavedModel whose serving_default takes sentences, as a translator export's does
    module.serve = tf.function(lambda sentences: {"translations": sentences},
                               input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    strings = str(tmp_path / "strings" / "1")
    tf.saved_model.save(module, strings, signatures={"serving_default": module.serve})
    image = str(tmp_path / "a.png")
    tf.io.write_file(image, tf.io.encode_png(np.zeros((20, 20, 3), np.uint8)))
    with pytest.raises(SystemExit):
        image_classification.main(["classify", "--model", strings, image])
    assert capsys.readouterr().err == (
        f"error: {strings} is an export of another task: its serving_default takes sentences, not image_bytes. "
        "Expected an export such as runs/image_classification/export/image_classifier/1. "
        "(--verbose shows the traceback)\n"
    )
    with pytest.raises(SystemExit):
        translation.main(["translate", "--model", os.path.dirname(tiny_run["export"]), "Hello."])
    assert capsys.readouterr().err == (
        f"error: {tiny_run['export']} is an export of another task: its serving_default takes image_bytes, not "
        "sentences. Expected an export such as runs/translation/export/translator/1. (--verbose shows the traceback)\n"
    )
