"""zoo.plots' image pictures: the confusion matrix counts, class-token attention, titled attention maps."""

import numpy as np
import pytest

from zoo.models import VisionTransformer
from zoo.plots import class_token_attention, plot_attention_maps, plot_confusion_matrix
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier


@pytest.fixture(scope="module")
def classifier():
    model = VisionTransformer(image_size=16, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1,
                              num_heads=2, d_ff=32)
    return ImageClassifier(model, ImagePreprocessor(16, (0.5,) * 3, (0.5,) * 3, ("zero", "one", "two")), top_k=2)


def test_confusion_matrix_counts_true_rows_and_predicted_columns(tmp_path):
    matrix = plot_confusion_matrix([0, 1, 1, 2, 2], [0, 1, 2, 2, 0], ["a", "b", "c"], str(tmp_path / "cm.png"))
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 1], [1, 0, 1]])
    assert (tmp_path / "cm.png").stat().st_size > 5_000


def test_class_token_attention_runs_the_classifiers_preprocessing(classifier):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    attention = class_token_attention(classifier, images)
    assert attention.shape == (2, 4, 4)  # (B, gh, gw)
    inputs = (images / 255.0 - 0.5) / 0.5  # the preprocessing's mean and std
    maps = np.asarray(classifier.model.attention_maps(inputs.astype("float32"))[-1])  # (B, H, N, N)
    np.testing.assert_allclose(attention, maps[:, :, 0, 1:].mean(axis=1).reshape(2, 4, 4), atol=1e-5)
    # Larger images are resized by the preprocessing, as predict does.
    assert class_token_attention(classifier, np.kron(images, np.ones((1, 2, 2, 1), np.uint8))).shape == (2, 4, 4)


def test_attention_plot_titles_true_and_predicted_labels(classifier, tmp_path):
    images = np.zeros((2, 16, 16, 3), np.uint8)
    path = str(tmp_path / "attention.png")
    attention, titles = plot_attention_maps(classifier, images, path, ["3", "8"], ["3", "5"])
    assert titles == ["true 3 / predicted 3", "true 8 / predicted 5"]
    assert attention.shape == (2, 4, 4) and (tmp_path / "attention.png").stat().st_size > 1000
