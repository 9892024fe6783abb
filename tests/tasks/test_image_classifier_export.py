"""ImageClassifier.export: image bytes in, labels out, as TF Serving runs it (formats, bad images, assets, audit)."""

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from zoo.export import audit_saved_model, read_warmup_requests
from zoo.models import VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier
from zoo.tasks.image_classifier_graph import classify_with_saved_model

CLASSES = ["cat", "dog", "bird"]
PREPROCESSING = ImagePreprocessor(32, (0.5,) * 3, (0.5,) * 3, CLASSES)


def _encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _huge_png_header(width=100_000, height=100_000):
    """A PNG whose header claims 10 gigapixels (the body is a stub)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=1, num_classes=3)
    base = str(tmp_path_factory.mktemp("export"))
    path = ImageClassifier(model, PREPROCESSING, top_k=2).export(base)
    return model, path


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    return {
        "png": _encode(rgb, "PNG"),
        "jpeg": _encode(rgb, "JPEG"),
        "bmp": _encode(rgb, "BMP"),
        "gif": _encode(rgb, "GIF"),
        "gray_png": _encode(rgb[..., 0], "PNG"),
        "rgba_png": _encode(np.dstack([rgb, np.full((40, 56), 128, np.uint8)]), "PNG"),
        "large_png": _encode(rng.integers(0, 255, (1200, 900, 3), dtype=np.uint8), "PNG"),
    }


def test_formats_sizes_and_channels_all_classify(exported, images):
    _, path = exported
    out = classify_with_saved_model(path, list(images.values()))
    assert out["valid"].tolist() == [True] * len(images)
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, atol=1e-5)
    assert out["probabilities"].shape == (len(images), 3) and out["top_k_scores"].shape == (len(images), 2)
    assert set(out["top_k_labels"].ravel().tolist()) <= {c.encode() for c in CLASSES}
    # The same pixels through PNG, BMP and RGBA-with-alpha-dropped PNG classify alike.
    np.testing.assert_allclose(out["probabilities"][0], out["probabilities"][2], atol=1e-6)
    np.testing.assert_allclose(out["probabilities"][0], out["probabilities"][5], atol=1e-6)


def test_bad_images_get_the_invalid_output_and_spare_the_rest(exported, images):
    _, path = exported
    jpeg = images["jpeg"]
    bad = {
        "empty": b"",
        "text renamed .jpg": b"This is a text file with a .jpg name.",
        "truncated png": images["png"][:60],
        "truncated jpeg header only": jpeg[:200],
        "huge header": _huge_png_header(),
        "random bytes": np.random.default_rng(1).integers(0, 255, 500, dtype=np.uint8).tobytes(),
    }
    batch = [images["png"], *bad.values(), images["jpeg"]]
    out = classify_with_saved_model(path, batch)
    assert out["valid"].tolist() == [True] + [False] * len(bad) + [True], dict(zip(["png", *bad, "jpeg"], out["valid"]))
    assert np.all(out["probabilities"][1:-1] == 0) and np.all(out["top_k_labels"][1:-1] == b"")
    alone = classify_with_saved_model(path, [images["png"], images["jpeg"]])
    np.testing.assert_allclose(out["probabilities"][[0, -1]], alone["probabilities"], atol=1e-6)
    # A JPEG cut short after most of its data is recovered, not rejected.
    recovered = classify_with_saved_model(path, [jpeg[: int(len(jpeg) * 0.9)]])
    assert recovered["valid"].tolist() == [True]
    assert classify_with_saved_model(path, [])["valid"].shape == (0,)


def test_pixel_signature_matches_the_model(exported):
    model, path = exported
    loaded = tf.saved_model.load(path)
    pixels = np.random.default_rng(2).uniform(size=(2, 32, 32, 3)).astype("float32")
    out = loaded.signatures["classify_pixels"](pixels=tf.constant(pixels))
    expected = tf.nn.softmax(np.asarray(model((pixels - 0.5) / 0.5), "float32")).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


def test_assets_warmup_audit_and_cli(exported):
    _, path = exported
    assert open(os.path.join(path, "assets", "class_names.txt")).read().split() == CLASSES
    requests = read_warmup_requests(path)
    out = classify_with_saved_model(path, list(requests[0][1]["image_bytes"]))
    assert out["valid"].tolist() == [True, True, False]
    assert not [op for op in audit_saved_model(path) if op.startswith("Xla")]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for needle in ("inputs['image_bytes']", "outputs['top_k_labels']", "outputs['probabilities']", "DT_STRING"):
        assert needle in shown.stdout


def test_class_names_must_match_the_model(exported, tmp_path):
    model, _ = exported
    with pytest.raises(ValueError, match="the model has 3. Received: 2 names"):
        ImageClassifier(model, PREPROCESSING.replace(class_names=("a", "b")))
    with pytest.raises(TypeError, match="preprocessor must be a zoo.preprocessing.ImagePreprocessor. Received: list"):
        ImageClassifier(model, CLASSES)
    with pytest.raises(ValueError, match=r"one of \('int8',\). Received: quantize='int4'"):
        ImageClassifier(model, PREPROCESSING).export(str(tmp_path), quantize="int4")
    assert not os.listdir(tmp_path)
