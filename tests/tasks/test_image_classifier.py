"""zoo.ImageClassifier: predicts as its export does, saves and loads as one folder."""

import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.tasks.conftest import run_fresh
from zoo.models import VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier, Translator
from zoo.tasks.image_classifier_graph import classify_with_saved_model

CLASSES = ("cat", "dog", "bird")
MAIN_VIT = os.path.join(os.path.dirname(__file__), "..", "models", "data", "vit_saved_by_main.keras")


def _encode(pixels, fmt):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small classifier (timm-style resize and center crop) saved as a folder, and its export."""
    model = VisionTransformer(image_size=16, patch_size=8, num_classes=3, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32)
    prep = ImagePreprocessor(16, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), CLASSES, "bicubic", crop_pct=0.9)
    classifier = ImageClassifier(model, prep, top_k=2)
    base = tmp_path_factory.mktemp("classifier")
    return classifier.save(base / "classifier"), classifier.export(str(base / "serving"))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((20, 30, 3), (16, 16, 3), (40, 24, 3))]
    files = tmp_path_factory.mktemp("images")
    paths = []
    for i, (p, fmt) in enumerate(zip(pixels, ("PNG", "JPEG", "PNG"))):
        paths.append(files / f"image_{i}.{fmt.lower()}")
        paths[-1].write_bytes(_encode(p, fmt))
    return pixels, paths


def test_predict_gives_the_exports_numbers(saved, images):
    folder, path = saved
    pixels, paths = images
    encoded = [p.read_bytes() for p in paths]  # PNG, JPEG, PNG
    batch = encoded + [b"not an image", b""]
    expected = classify_with_saved_model(path, batch)
    classifier = ImageClassifier.load(folder)
    for inputs in (batch, [str(p) for p in paths] + batch[3:]):  # bytes, then paths
        out = classifier.predict(inputs)
        np.testing.assert_allclose(out["probabilities"], expected["probabilities"], atol=1e-5)
        np.testing.assert_allclose(out["top_k_scores"], expected["top_k_scores"], atol=1e-5)
        assert out["top_k_labels"].tolist() == [[label.decode() for label in row] for row in expected["top_k_labels"]]
        assert out["valid"].tolist() == [True, True, True, False, False]
        assert out["reason"].tolist() == [r.decode() for r in expected["reason"]]
    assert out["top_k_labels"][3].tolist() == ["", ""] and set(out["top_k_labels"][0]) <= set(CLASSES)
    assert out["reason"][0] == "" and out["reason"][3].startswith("not a decodable image")
    # PIL images and uint8 arrays are the PNG of their pixels; one image is a batch of one.
    png = classifier.predict([pixels[0], Image.fromarray(pixels[2]), pixels[2][..., :1]])
    np.testing.assert_allclose(png["probabilities"][:2], expected["probabilities"][[0, 2]], atol=1e-5)
    gray = classify_with_saved_model(path, [_encode(pixels[2][..., 0], "PNG")])
    np.testing.assert_allclose(png["probabilities"][2], gray["probabilities"][0], atol=1e-5)
    np.testing.assert_allclose(classifier.predict(pixels[0])["probabilities"], expected["probabilities"][:1], atol=1e-5)
    # Float pixels go through the export's classify_pixels signature.
    floats = pixels[1].astype("float32") / 255.0
    import tensorflow as tf

    raw = tf.saved_model.load(path).signatures["classify_pixels"](pixels=tf.constant(floats[None]))
    np.testing.assert_allclose(classifier.predict([floats])["probabilities"], raw["probabilities"].numpy(), atol=1e-5)
    empty = classifier.predict([])
    assert empty["probabilities"].shape == (0, 3) and empty["top_k_labels"].shape == (0, 2)
    assert classifier.predict(batch[:1], top_k=3)["top_k_labels"].shape == (1, 3)


def test_float_pixels_of_one_size_run_in_batches(saved):
    classifier = ImageClassifier.load(saved[0])
    rng = np.random.default_rng(2)
    small, large = rng.random((5, 16, 16, 3), np.float32), rng.random((2, 24, 20, 3), np.float32)
    mixed = [small[0], large[0], small[1], small[2], large[1], small[3], small[4]]
    one_by_one = np.concatenate([classifier.predict([image])["probabilities"] for image in mixed])
    for batch_size in (2, 32):
        out = classifier.predict(mixed, batch_size=batch_size)
        np.testing.assert_allclose(out["probabilities"], one_by_one, atol=1e-6)  # each row where it was
        assert out["valid"].all() and out["top_k_labels"].shape == (7, 2)
    # A NaN or an infinity makes its image invalid (not NaN scores marked valid); its batch is unharmed.
    spoiled = small.copy()
    spoiled[1, 3, 4, 0], spoiled[3, 0, 0, 2] = np.nan, -np.inf
    out = classifier.predict(spoiled)
    assert out["valid"].tolist() == [True, False, True, False, True] and np.isfinite(out["probabilities"]).all()
    assert out["reason"][1] == "pixels hold a NaN or an infinity" and not out["probabilities"][1].any()
    np.testing.assert_allclose(out["probabilities"][[0, 2, 4]], one_by_one[[0, 3, 6]], atol=1e-6)
    np.testing.assert_allclose(classifier.predict(small, batch_size=2)["probabilities"], one_by_one[[0, 2, 3, 5, 6]],
                               atol=1e-6)


def test_prepare_and_attention_rollout_preprocess_as_predict(saved, images):
    """`prepare` gives the very inputs predict feeds the model; the rollout runs on them."""
    from zoo.models import attention_rollout

    classifier = ImageClassifier.load(saved[0])
    pixels, paths = images
    floats = pixels[1].astype("float32") / 255.0
    batch = [str(paths[0]), paths[1].read_bytes(), b"not an image", floats]
    prepared = classifier.prepare(batch)
    assert prepared["inputs"].shape == (4, 16, 16, 3) and prepared["valid"].tolist() == [True, True, False, True]
    assert not prepared["inputs"][2].any() and not prepared["pixels"][2].any()
    logits = np.asarray(classifier.model(prepared["inputs"]))
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    expected = classifier.predict(batch)["probabilities"]
    np.testing.assert_allclose(softmax[[0, 1, 3]], expected[[0, 1, 3]], atol=1e-5)
    # pixels: the model's view before normalisation (resized, center-cropped), in [0, 1]
    mean, std = np.array((0.4, 0.5, 0.6)), np.array((0.2, 0.25, 0.3))
    np.testing.assert_allclose(prepared["pixels"][[0, 1, 3]], prepared["inputs"][[0, 1, 3]] * std + mean, atol=1e-5)
    assert prepared["pixels"].min() >= 0.0 and prepared["pixels"].max() <= 1.0

    good = batch[:2] + batch[3:]
    maps = classifier.attention_rollout(good, batch_size=2)
    assert maps.shape == (3, 2, 2)  # 16 px, 8 px patches
    direct = np.asarray(attention_rollout(classifier.model, prepared["inputs"][[0, 1, 3]]))
    np.testing.assert_allclose(maps, direct, atol=1e-6)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-6)
    assert classifier.attention_rollout([]).shape == (0, 2, 2)
    assert classifier.prepare([])["inputs"].shape == (0, 16, 16, 3)
    with pytest.raises(ValueError, match=r"Images \[2\] could not be decoded"):
        classifier.attention_rollout(batch)


def test_bad_inputs_are_named(saved, tmp_path):
    classifier = ImageClassifier.load(saved[0])
    with pytest.raises(FileNotFoundError, match=r"No image file at .*missing.png \(images\[1\]\)"):
        classifier.predict([b"not an image", str(tmp_path / "missing.png")])
    with pytest.raises(TypeError, match=r"file paths, encoded bytes, PIL images or arrays. Received: int at images\[0\]"):
        classifier.predict([3])
    with pytest.raises(ValueError, match=r"Received: shape \(2, 3, 5\)"):
        classifier.predict([np.zeros((2, 3, 5), np.uint8)])
    with pytest.raises(ValueError, match="dtype int64, values -1..-1 at images"):
        classifier.predict([np.full((2, 3, 3), -1)])
    with pytest.raises(ValueError, match="the model has 3. Received: 2 names"):
        ImageClassifier(classifier.model, classifier.preprocessor.replace(class_names=("a", "b")))


def test_round_trip_in_a_fresh_process(saved, images):
    folder, _ = saved
    classifier = ImageClassifier.load(folder)
    paths = [str(p) for p in images[1]]
    code = (
        "import json, sys, zoo\n"
        "c = zoo.ImageClassifier.load(sys.argv[1])\n"
        "out = c.predict(sys.argv[2:])\n"
        "print(json.dumps([c.preprocessor.get_config(), c.top_k, out['probabilities'].tolist()]))\n"
    )
    config, top_k, probabilities = json.loads(run_fresh(code, folder, *paths))
    assert config == classifier.preprocessor.get_config() and config["crop_pct"] == 0.9 and top_k == 2
    np.testing.assert_allclose(probabilities, classifier.predict(paths)["probabilities"], atol=1e-6)


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda f: (f / "model.keras").unlink(), FileNotFoundError, "not a complete ImageClassifier folder: missing model.keras"),
        (lambda f: (f / "task.json").write_text(json.dumps({"task": "ImageClassifier", "format_version": 1})),
         ValueError, "task.json has no preprocessing settings"),
        (lambda f: (f / "task.json").write_text(json.dumps({"task": "Translator", "format_version": 1})),
         ValueError, "holds a 'Translator' task; ImageClassifier.load reads"),
    ],
)
def test_corrupt_or_incomplete_folders_name_the_file(saved, tmp_path, edit, error, message):
    folder = tmp_path / "broken"
    shutil.copytree(saved[0], folder)
    edit(folder)
    with pytest.raises(error, match=message):
        ImageClassifier.load(folder)
    if "Translator" in message:
        with pytest.raises(FileNotFoundError, match="missing source_tokenizer/tokenizer.json, target_tokenizer/tokenizer.json"):
            Translator.load(folder)


def test_image_recipe_run_folder_loads_with_its_settings(tmp_path):
    """What recipes/image_classification.py wrote before task folders (model.keras, class_names.json,
    config.json; mean and std 0.5 in the recipe), with a model.keras saved by main."""
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(MAIN_VIT, folder / "model.keras")
    (folder / "class_names.json").write_text(json.dumps(list(CLASSES)))
    (folder / "config.json").write_text(json.dumps(dict(preset="vit_tiny_patch4_32", image_size=8, top_k=2)))
    classifier = ImageClassifier.load(folder)
    assert classifier.preprocessor == ImagePreprocessor(8, (0.5,) * 3, (0.5,) * 3, CLASSES)
    assert classifier.top_k == 2 and classifier.model.num_encoder_layers == 2
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    expected = classifier.model(((pixels / 255.0 - 0.5) / 0.5)[None].astype("float32"))
    out = classifier.predict([pixels])
    np.testing.assert_allclose(out["probabilities"][0], np.asarray(__import__("keras").ops.softmax(expected))[0], atol=1e-5)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="image classification run folder: missing config.json"):
        ImageClassifier.load(folder)
