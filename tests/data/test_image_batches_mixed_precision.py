"""make_image_batches keeps its float32 contract when augmentation layers run
under a mixed-precision policy (the recipe's `--mixed-precision`, and `auto`
on a GPU): Keras layers compute in bfloat16/float16 there. And the recipe's
augmentation (MixUp and CutMix included) runs under such a policy."""

import keras
import numpy as np
import pytest

from zoo.data.image_data import make_image_batches


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_augmented_batches_stay_float32_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    pipeline = keras.layers.Pipeline([keras.layers.RandomTranslation(0.1, 0.1), keras.layers.RandomZoom(0.1)])
    x, y = next(iter(_batches(lambda batch: pipeline(batch, training=True))))
    assert (x.dtype.name, y.dtype.name) == ("float32", "float32")
    assert x.shape == (4, 16, 16, 3) and np.all(np.isfinite(x.numpy()))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_recipe_augmentation_runs_under_mixed_precision(policy):
    from recipes.image_classification import ImageClassificationConfig, augmenter

    keras.config.set_dtype_policy(policy)
    config = ImageClassificationConfig(rand_augment=True, random_flip=True, mixup_alpha=0.2, cutmix_alpha=0.2)
    x, y = next(iter(_batches(augmenter(config))))
    assert (x.dtype.name, y.dtype.name) == ("float32", "float32") and np.all(np.isfinite(x.numpy()))
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, atol=1e-5)  # mixed one-hot labels still sum to 1


def _batches(augment):
    images = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    return make_image_batches(images, np.arange(8) % 4, 4, 4, training=True, augment=augment)
