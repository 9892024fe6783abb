"""ImagePreprocessing: the one description of an image classifier's inputs, and its TF ops."""

import json

import numpy as np
import pytest
import tensorflow as tf

from zoo.data.image_preprocessing import ImagePreprocessing

NAMES = ("cat", "dog")


def _prep(**changes):
    return ImagePreprocessing(**dict(dict(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, class_names=NAMES), **changes))


def test_config_round_trips_through_json():
    prep = _prep(image_size=[24, 32], mean=[0.1, 0.2, 0.3], interpolation="bicubic", crop_pct=0.9, crop_mode="squash")
    config = json.loads(json.dumps(prep.get_config()))
    assert ImagePreprocessing.from_config(config) == prep
    assert prep.image_size == (24, 32) and prep.class_names == NAMES and prep.num_classes == 2
    with pytest.raises(ValueError, match=r"Unknown ImagePreprocessing fields \['size'\]"):
        ImagePreprocessing.from_config(dict(config, size=3))


def test_straight_resize_and_normalisation():
    pixels = np.random.default_rng(0).uniform(size=(2, 48, 40, 3)).astype("float32")
    prep = _prep()
    expected = (tf.image.resize(pixels, (32, 32), antialias=True).numpy() - 0.5) / 0.25
    np.testing.assert_allclose(prep.prepare(pixels).numpy(), expected, atol=1e-5)
    # At the model's size, the resize is the identity.
    same = pixels[:, :32, :32]
    np.testing.assert_allclose(prep.resize(same).numpy(), same, atol=1e-6)
    np.testing.assert_allclose(prep.normalize(np.ones((1, 3), "float32")).numpy(), [[2.0, 2.0, 2.0]])


@pytest.mark.parametrize("shape, top, left", [((40, 49), 4, 8), ((40, 51), 4, 10), ((47, 40), 8, 4)])
def test_center_crop_offsets_round_half_to_even(shape, top, left):
    """crop_pct 0.8 at 32: the short side must be 40, which these images have, so only the crop
    remains: its offsets are round((size - 32) / 2) with Python's (and torchvision's) rounding."""
    pixels = np.random.default_rng(1).uniform(size=(*shape, 3)).astype("float32")
    out = _prep(crop_pct=0.8).resize(pixels).numpy()
    np.testing.assert_allclose(out, pixels[top : top + 32, left : left + 32], atol=1e-6)


def test_center_mode_keeps_the_aspect_ratio_and_squash_does_not():
    # A 60 x 120 image, black in its left 54 columns (45%); crop_pct 0.5 at 16 (resize to 32, crop 16).
    pixels = np.ones((60, 120, 3), "float32")
    pixels[:, :54] = 0.0
    center = _prep(image_size=16, crop_pct=0.5, interpolation="nearest").resize(pixels).numpy()
    # center: 32 x 64, black up to column 28.8; the crop (columns 24..39) starts with 5 black columns.
    assert center.shape == (16, 16, 3) and (center[0, :, 0] == 0).sum() == 5
    assert np.all(center[:, :5] == 0) and np.all(center[:, 5:] == 1)
    # squash: 32 x 32, black up to column 14.4; the crop (columns 8..23) starts with 6.
    squash = _prep(image_size=16, crop_pct=0.5, crop_mode="squash", interpolation="nearest").resize(pixels).numpy()
    assert (squash[0, :, 0] == 0).sum() == 6
    batch = _prep(image_size=16, crop_pct=0.5).resize(np.stack([pixels] * 2))
    assert batch.shape == (2, 16, 16, 3)


def test_bicubic_overshoot_is_clipped_like_8_bit_images():
    pixels = np.zeros((64, 64, 3), "float32")
    pixels[::2] = 1.0  # stripes: bicubic overshoots
    out = _prep(interpolation="bicubic").resize(pixels).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(image_size=0), "image_size must be a positive int"),
        (dict(mean=(0.5,) * 3, std=(0.5,) * 2), "one value per channel"),
        (dict(std=(0.5, 0.0, 0.5)), "std must be positive"),
        (dict(class_names=()), "class_names must be non-empty single lines"),
        (dict(class_names=("a", "b\nc")), "non-empty single lines"),
        (dict(class_names="cats"), "sequence of names"),
        (dict(interpolation="area"), "interpolation must be one of"),
        (dict(crop_pct=1.5), r"crop_pct must be None or in \(0, 1\]"),
        (dict(crop_mode="border"), "crop_mode must be one of"),
        (dict(image_size=(32, 48), crop_pct=0.9), "needs a square image_size"),
    ],
)
def test_bad_values_name_what_was_received(changes, message):
    with pytest.raises(ValueError, match=message):
        _prep(**changes)
