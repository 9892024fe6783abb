"""Converted ViTs export through zoo.export and score images as the source library does."""

import importlib.util
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.convert.test_hf_vit import LABELS, _save_reference
from zoo.tasks import ImageClassifier
from zoo.tasks.image_classifier_graph import classify_with_saved_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "convert_vit.py")


def _tool():
    spec = importlib.util.spec_from_file_location("convert_vit", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_hf_tool_export_scores_like_vit_image_processor(tmp_path):
    """PNGs at the model's size: the export's decode, (identity) resize and normalisation
    against `ViTImageProcessor` + `ViTForImageClassification`."""
    reference = _save_reference(tmp_path / "hf")
    output = str(tmp_path / "vit")
    _, export_path = _tool().main(
        ["hf", str(tmp_path / "hf"), "--output", output, "--export", str(tmp_path / "serving"), "--top-k", "2"]
    )
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out = classify_with_saved_model(export_path, [_png(p) for p in pixels])

    processor = transformers.ViTImageProcessor.from_pretrained(tmp_path / "hf")
    inputs = processor(images=[Image.fromarray(p) for p in pixels], return_tensors="pt")
    with torch.no_grad():
        expected = _softmax(reference(**inputs).logits.numpy())
    assert out["valid"].all()
    # Decoded pixels differ from the processor's by float rounding (~2e-7), logits by ~1e-6 at this
    # size (the model parity bound is 1e-4), and softmax moves by at most half the largest logit change.
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    top = [[LABELS[i].encode() for i in row] for row in np.argsort(-expected, axis=1)[:, :2]]
    assert out["top_k_labels"].tolist() == top

    # The folder reloads as an ImageClassifier: the same model, preprocessing and scores.
    loaded = ImageClassifier.load(output)
    prep = loaded.preprocessor
    assert prep.class_names == tuple(LABELS.values()) and loaded.top_k == 2
    images = ((pixels / 255.0 - np.array(prep.mean)) / np.array(prep.std)).astype("float32")
    with torch.no_grad():
        hf_logits = reference(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).logits.numpy()
    assert np.abs(np.asarray(loaded.model(images)) - hf_logits).max() < 1e-4
    np.testing.assert_allclose(loaded.predict([_png(p) for p in pixels])["probabilities"], out["probabilities"], atol=1e-5)


def test_timm_export_scores_like_timm_transforms_at_crop_pct_one(tmp_path):
    timm = pytest.importorskip("timm")
    from tests.convert.test_timm_vit import _reference, _save_for_hf

    model = _reference()
    model.pretrained_cfg = dict(
        model.pretrained_cfg, input_size=(3, 32, 32), crop_pct=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    _save_for_hf(model, tmp_path / "timm")
    converted = ImageClassifier.from_timm(tmp_path / "timm")
    assert json.loads((tmp_path / "timm" / "config.json").read_text())["pretrained_cfg"]["crop_pct"] == 1.0
    path = converted.export(str(tmp_path / "serving"))
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = classify_with_saved_model(path, [_png(pixels)])

    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)  # resize 32 / crop_pct = 32, center crop 32: identity
    with torch.no_grad():
        expected = _softmax(model(transform(Image.fromarray(pixels))[None]).numpy())
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)


@pytest.mark.parametrize("shape", [(48, 40), (20, 24), (300, 200)])
def test_export_resize_matches_vit_image_processor_up_to_8_bit_rounding(tmp_path, shape):
    """Other sizes: the export's antialiased bilinear resize is HF's filter; HF rounds the resized
    image to 8 bits, so pixels differ by at most one grey level (before normalisation)."""
    import tensorflow as tf

    _save_reference(tmp_path / "hf")
    prep = ImageClassifier.from_hf(tmp_path / "hf").preprocessor  # what the export and predict run
    pixels = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = prep.prepare(tf.image.convert_image_dtype(pixels, tf.float32)).numpy()
    processor = transformers.ViTImageProcessor.from_pretrained(tmp_path / "hf")
    theirs = processor(images=Image.fromarray(pixels), return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    grey_level = (1 / 255) / np.array(prep.std)
    assert np.all(np.abs(ours - theirs) <= grey_level + 1e-5)
    assert np.abs(ours - theirs).mean() < 0.5 * grey_level.min()  # rounding, not another filter


# (40, 49) at 0.8: no resize (the short side is 32 / 0.8 already), a crop at a half-pixel offset.
# (45, 61): the long side 36 * 61 / 45 = 48.8 is truncated to 48, as torchvision does.
@pytest.mark.parametrize(
    "shape, crop_pct", [((45, 60), 0.875), ((45, 61), 0.875), ((70, 38), 0.9), ((32, 32), 0.875), ((40, 49), 0.8)]
)
def test_resize_and_center_crop_match_timms_eval_transform(shape, crop_pct):
    """timm resizes the shorter side to floor(32 / crop_pct) (bicubic, PIL) and takes the centre 32x32.
    Same geometry here; PIL resamples in 8 bits, so pixels differ by about one grey level."""
    timm = pytest.importorskip("timm")
    import tensorflow as tf

    from zoo.convert.timm_vit import preprocessor_from_timm

    cfg = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=crop_pct, interpolation="bicubic")
    prep = preprocessor_from_timm(cfg, None, 3, (32, 32))
    transform = timm.data.create_transform(input_size=(3, 32, 32), **cfg)
    pixels = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    pixels = np.clip(pixels.astype(float) * 0.5 + np.linspace(0, 127, shape[1])[None, :, None], 0, 255).astype(np.uint8)
    ours = prep.prepare(tf.image.convert_image_dtype(pixels, tf.float32)).numpy()
    theirs = transform(Image.fromarray(pixels)).numpy().transpose(1, 2, 0)
    grey_levels = np.abs(ours - theirs) * np.array(prep.std) * 255
    assert ours.shape == theirs.shape == (32, 32, 3)
    assert grey_levels.max() < 1.5 and grey_levels.mean() < 0.4, (grey_levels.max(), grey_levels.mean())


def test_timm_tool_from_a_bare_state_dict(tmp_path):
    pytest.importorskip("timm")
    from tests.convert.test_timm_vit import SMALL, _images, _max_diff, _reference

    reference = _reference()
    torch.save(reference.state_dict(), tmp_path / "vit.pth")
    (tmp_path / "cfg.json").write_text(json.dumps(dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])))
    output = str(tmp_path / "vit")
    _, export_path = _tool().main([
        "timm", str(tmp_path / "vit.pth"), "--architecture", "vit_tiny_patch16_224",
        "--model-args", json.dumps(SMALL), "--pretrained-cfg", str(tmp_path / "cfg.json"), "--output", output,
    ])
    assert export_path is None
    loaded = ImageClassifier.load(output)
    assert _max_diff(loaded.model, reference, _images()) < 1e-4
    prep = loaded.preprocessor
    assert prep.mean == (0.485, 0.456, 0.406) and prep.class_names == ("0", "1", "2", "3", "4")
