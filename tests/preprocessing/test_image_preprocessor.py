"""ImagePreprocessor: the one path from images to an image classifier's inputs, and its TF ops."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.preprocessing import ImagePreprocessor

NAMES = ("cat", "dog")


def _prep(**changes):
    return ImagePreprocessor(**dict(dict(image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, class_names=NAMES), **changes))


def test_config_round_trips_through_json():
    prep = _prep(image_size=[24, 32], mean=[0.1, 0.2, 0.3], interpolation="bicubic", crop_pct=0.9, crop_mode="squash")
    config = json.loads(json.dumps(prep.get_config()))
    assert ImagePreprocessor.from_config(config) == prep
    assert prep.image_size == (24, 32) and prep.class_names == NAMES and prep.num_classes == 2
    with pytest.raises(ValueError, match=r"Unknown ImagePreprocessor fields \['size'\]"):
        ImagePreprocessor.from_config(dict(config, size=3))
    # Configs saved before the decoding limits were settings get the defaults.
    older = {k: v for k, v in config.items() if k not in ("max_bytes", "max_pixels")}
    assert ImagePreprocessor.from_config(older) == prep and prep.max_pixels == 64 * 2**20


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
        (dict(max_pixels=0), "max_pixels must be a positive int. Received: max_pixels=0"),
        (dict(max_bytes=1.5), "max_bytes must be a positive int. Received: max_bytes=1.5"),
    ],
)
def test_bad_values_name_what_was_received(changes, message):
    with pytest.raises(ValueError, match=message):
        _prep(**changes)


def _png(array):
    return tf.io.encode_png(array).numpy()


@pytest.mark.parametrize("changes", [dict(), dict(image_size=16, interpolation="bicubic", crop_pct=0.9)])
def test_a_training_batch_is_what_serving_feeds_the_model(changes):
    """The same images as uint8 arrays, as PNG bytes (a folder's files) and as a served request:
    one set of model inputs (decode or pixels, resize, crop, normalise), whatever their sizes."""
    prep = _prep(**changes)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)]
    served, valid = prep.prepare_bytes(tf.constant([_png(a) for a in arrays]))
    assert valid.numpy().all()
    from_arrays = tf.data.Dataset.from_tensor_slices((np.stack(arrays), [0, 1]))
    x, y = next(iter(prep.batches(from_arrays, batch_size=2)))
    np.testing.assert_allclose(x.numpy(), served.numpy(), atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), np.eye(2))  # one-hot float32
    assert x.dtype == y.dtype == tf.float32
    # Encoded images of different sizes batch together once resized.
    odd = [arrays[0], rng.integers(0, 256, (20, 13, 1), dtype=np.uint8)]
    from_bytes = tf.data.Dataset.from_tensor_slices(([_png(a) for a in odd], ["dog", "cat"]))
    x, y = next(iter(prep.batches(from_bytes, batch_size=2)))
    served, _ = prep.prepare_bytes(tf.constant([_png(a) for a in odd]))
    np.testing.assert_allclose(x.numpy(), served.numpy(), atol=1e-6)
    np.testing.assert_array_equal(y.numpy().argmax(-1), [1, 0])  # names to their indices
    # Float pixels in [0, 1] are what decoding makes of uint8.
    floats = tf.data.Dataset.from_tensor_slices((np.stack(arrays) / np.float32(255), [0, 1]))
    np.testing.assert_allclose(next(iter(prep.batches(floats, 2)))[0].numpy(),
                               next(iter(prep.batches(from_arrays, 2)))[0].numpy(), atol=1e-5)


def test_augmentation_runs_between_resize_and_normalisation():
    prep = _prep(image_size=4)
    images = np.full((6, 2, 2, 3), 255, np.uint8)
    seen = []

    def blackout(batch):
        seen.append(batch["images"])
        return {"images": tf.zeros_like(batch["images"]), "labels": batch["labels"] * 0.5}

    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(6) % 2))
    x, y = next(iter(prep.batches(ds, 6, augment=blackout)))
    assert seen[0].shape[1:] == (4, 4, 3)  # resized before augmenting
    np.testing.assert_allclose(x.numpy(), (0.0 - 0.5) / 0.25)  # normalised after
    assert float(tf.reduce_max(y)) == 0.5
    x, _ = next(iter(prep.batches(ds, 6)))
    np.testing.assert_allclose(x.numpy(), (1.0 - 0.5) / 0.25)
    # Keras preprocessing layers take the same dict, so a Pipeline plugs in as it is.
    pipeline = keras.layers.Pipeline([keras.layers.RandomFlip(seed=0), keras.layers.MixUp(seed=0)])
    x, y = next(iter(prep.batches(ds, 6, augment=lambda batch: pipeline(batch, training=True))))
    assert x.shape == (6, 4, 4, 3) and y.shape == (6, 2)
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_augmented_batches_stay_float32_under_mixed_precision(policy):
    """Keras layers compute in bfloat16/float16 under a mixed policy (the recipe's
    `--mixed-precision`, `auto` on a GPU); batches stay float32. The recipe's augmentation (MixUp
    and CutMix included) runs under such a policy."""
    from recipes.image_classification import ImageClassificationConfig, augmenter

    keras.config.set_dtype_policy(policy)
    try:
        images = np.random.default_rng(0).integers(0, 255, (8, 12, 12, 3), dtype=np.uint8)
        ds = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2))
        config = ImageClassificationConfig(rand_augment=True, random_flip=True, mixup_alpha=0.2, cutmix_alpha=0.2)
        x, y = next(iter(_prep(image_size=16).batches(ds, 4, augment=augmenter(config))))
    finally:
        keras.config.set_dtype_policy("float32")
    assert (x.dtype.name, y.dtype.name) == ("float32", "float32") and np.all(np.isfinite(x.numpy()))
    assert x.shape == (4, 16, 16, 3)
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, atol=1e-5)  # mixed one-hot labels still sum to 1


def test_labels_that_are_not_classes_fail_when_the_batch_is_made():
    prep = _prep()
    images = np.zeros((2, 4, 4, 3), np.uint8)
    for labels, message in ((["cat", "emu"], r"Labels must be class names \(cat, dog\). Received\] \[emu\]"),
                            ([0, 2], r"in \[0, 2\) \(2 class names\). Received\] \[2\]")):
        ds = prep.batches(tf.data.Dataset.from_tensor_slices((images, labels)), 2)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            next(iter(ds))
    with pytest.raises(ValueError, match="one image and one label at a time"):
        prep.batches(tf.data.Dataset.from_tensor_slices((images, [0, 1])).batch(2), 2)
    with pytest.raises(ValueError, match="must give \\(image, label\\) pairs"):
        prep.batches(tf.data.Dataset.from_tensor_slices(images), 2)
    with pytest.raises(ValueError, match="batch_size must be a positive int. Received: batch_size=0"):
        prep.batches(tf.data.Dataset.from_tensor_slices((images, [0, 1])), 0)
    with pytest.raises(TypeError, match="uint8 or float in \\[0, 1\\]. Received: dtype int64"):
        prep.pixels(np.zeros((2, 2, 3), np.int64))
