import keras
import numpy as np
import pytest
from keras import ops

from zoo.models.losses import SparseCrossentropyWithSmoothing


def _np(x):
    return float(ops.convert_to_numpy(x))


def test_equals_categorical_crossentropy_with_smoothing_on_one_hot():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 11)).astype("float32")
    labels = rng.integers(0, 11, size=(2, 5))
    ours = SparseCrossentropyWithSmoothing(0.1, reduction="sum_over_batch_size")(labels, logits)
    theirs = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        np.eye(11)[labels], logits
    )
    assert _np(ours) == pytest.approx(_np(theirs), rel=1e-5)


def test_padding_is_excluded_through_sample_weight():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 4, 7)).astype("float32")
    labels = np.array([[3, 5, 0, 0]])
    loss = SparseCrossentropyWithSmoothing(0.1)
    masked = loss(labels, logits, sample_weight=(labels != 0).astype("float32"))
    first_two = loss(labels[:, :2], logits[:, :2])
    assert _np(masked) == pytest.approx(_np(first_two), rel=1e-6)
    # Garbage logits at padded positions change nothing.
    logits[:, 2:] = 100.0
    assert _np(loss(labels, logits, sample_weight=(labels != 0).astype("float32"))) == pytest.approx(_np(masked))


def test_bad_smoothing():
    with pytest.raises(ValueError, match="Received: label_smoothing=1.5"):
        SparseCrossentropyWithSmoothing(1.5)
