"""Rollout overlays: the map lands on the right pixels, titles carry true and predicted labels."""

import numpy as np
import pytest
from PIL import Image

from zoo.models import VisionTransformer
from zoo.plots import pick_correct_and_wrong, plot_rollout, plot_rollout_grid
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier

CLASSES = ("cat", "dog", "bird")


def _brightness(png, fig, ax, x, y):
    """Mean RGB of the PNG pixel drawn at data point (x, y) of `ax`."""
    px, py = ax.transData.transform((x, y))  # display coordinates, origin bottom left
    return png[int(round(png.shape[0] - py)), int(round(px)), :3].mean()


def test_plot_rollout_puts_the_map_over_its_patch(tmp_path):
    image = np.zeros((32, 48, 3), np.uint8)  # black: only the map is seen
    heat = np.zeros((2, 3), np.float32)
    heat[1, 2] = 1.0  # bottom right patch
    path = tmp_path / "one.png"
    fig = plot_rollout(image, heat, str(path), true_label="cat", predicted_label="dog", alpha=0.9,
                       interpolation="nearest", size=3.0)
    png = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0
    assert png.shape[:2] == (340, 300)  # (3 + 0.4) x 3 inches at 100 dpi
    ax = fig.axes[0]
    assert ax.get_title() == "true: cat\npredicted: dog"
    assert ax.title.get_color() == "tab:red"  # wrong: red
    hot = _brightness(png, fig, ax, 40, 24)  # the centre of patch (1, 2): 16 px cells
    cold = [_brightness(png, fig, ax, 16 * c + 8, 16 * r + 8) for r, c in ((0, 0), (0, 2), (1, 0))]
    assert hot > max(cold) + 0.3, (hot, cold)


def test_plot_rollout_names_bad_maps(tmp_path):
    with pytest.raises(ValueError, match=r"A rollout map must be \(grid_h, grid_w\). Received: shape \(6,\)"):
        plot_rollout(np.zeros((8, 8, 3), np.uint8), np.ones(6), str(tmp_path / "x.png"))


def test_pick_correct_and_wrong():
    true = [0, 1, 2, 3, 4, 5, 6, 7]
    predicted = [0, 9, 2, 9, 4, 5, 9, 7]  # wrong at 1, 3, 6
    assert pick_correct_and_wrong(true, predicted, 4).tolist() == [1, 3, 0, 2]
    assert pick_correct_and_wrong(true, predicted, 8).tolist() == [1, 3, 6, 0, 2, 4, 5, 7]
    assert pick_correct_and_wrong(true, true, 3).tolist() == [0, 1, 2]  # none wrong: all correct
    assert pick_correct_and_wrong([0, 1, 2], [1, 2, 0], 2).tolist() == [0, 1]  # none right: all wrong
    with pytest.raises(ValueError, match=r"same length. Received: shapes \(3,\) and \(2,\)"):
        pick_correct_and_wrong([0, 1, 2], [0, 1], 2)


@pytest.fixture(scope="module")
def classifier():
    model = VisionTransformer(image_size=16, patch_size=8, num_classes=3, d_model=16, num_encoder_layers=2,
                              num_heads=2, d_ff=32)
    return ImageClassifier(model, ImagePreprocessor(16, (0.5,) * 3, (0.25,) * 3, CLASSES), top_k=2)


def _images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 20, 3), dtype=np.uint8) for _ in range(count)]


def test_grid_with_a_classifier(classifier, tmp_path):
    images = _images(5)
    predicted = classifier.predict(images)["top_k_labels"][:, 0].tolist()
    true = [predicted[0], "bird" if predicted[1] != "bird" else "cat", 0, 1, 2]  # names or indices
    path = tmp_path / "grid.png"
    fig = plot_rollout_grid(classifier, images, true, str(path), columns=3, interpolation="nearest")
    width, height = Image.open(path).size
    assert (width, height) == (720, 570)  # 3 columns x 2.4 in, 2 rows x 2.7 in + 0.3, at 100 dpi
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 5
    true_names = [true[0], true[1], "cat", "dog", "bird"]
    assert [ax.get_title() for ax in axes] == [f"true: {t}\npredicted: {p}" for t, p in zip(true_names, predicted)]
    assert axes[1].title.get_color() == "tab:red" and axes[0].title.get_color() == "tab:green"
    # Each overlay is that image's rollout (relative to its maximum) over the model's view of it.
    maps = classifier.attention_rollout(images)
    prepared = classifier.prepare(images)
    for ax, heat, pixels in zip(axes, maps, prepared["pixels"]):
        shown, overlay = ax.images
        np.testing.assert_allclose(np.asarray(overlay.get_array()), heat / heat.max(), atol=1e-6)
        np.testing.assert_allclose(np.asarray(shown.get_array()), pixels, atol=1e-6)


def test_grid_with_a_bare_model_picks_wrong_and_right(classifier, tmp_path):
    images = np.stack(_images(6, seed=1))[:, :16, :16]
    inputs = (images / 255.0 - 0.5) / 0.25
    true = [0, 1, 2, 0, 1, 2]
    predicted = [0, 2, 2, 1, 1, 2]  # wrong at 1 and 3
    fig = plot_rollout_grid(classifier.model, images, true, str(tmp_path / "g.png"), inputs=inputs,
                            class_names=CLASSES, predicted_labels=predicted, count=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        "true: dog\npredicted: bird", "true: cat\npredicted: dog",  # the wrong ones first
        "true: cat\npredicted: cat", "true: bird\npredicted: bird",
    ]
    from zoo.models import attention_rollout

    heat = np.asarray(attention_rollout(classifier.model, inputs[[1]].astype("float32")))[0]
    shown, overlay = [ax for ax in fig.axes if ax.get_title()][0].images  # image 1, the first wrong one
    np.testing.assert_allclose(np.asarray(overlay.get_array()), heat / heat.max(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(shown.get_array()), images[1] / 255.0, atol=1e-6)
    # Without predicted labels the model's own argmax is written.
    fig = plot_rollout_grid(classifier.model, images[:2], true[:2], str(tmp_path / "h.png"), inputs=inputs[:2])
    logits = np.asarray(classifier.model(inputs[:2].astype("float32")))
    assert [ax.get_title().split("predicted: ")[1] for ax in fig.axes if ax.get_title()] == [
        str(i) for i in logits.argmax(-1)
    ]


def test_grid_bad_arguments(classifier, tmp_path):
    path = str(tmp_path / "bad.png")
    with pytest.raises(TypeError, match="ImageClassifier or a zoo.models.VisionTransformer. Received: str"):
        plot_rollout_grid("model", _images(1), [0], path)
    with pytest.raises(ValueError, match="one label per image. Received: 1 for 2 images"):
        plot_rollout_grid(classifier, _images(2), [0], path)
    with pytest.raises(ValueError, match=r"Images \[1\] could not be decoded"):
        plot_rollout_grid(classifier, [_images(1)[0], b"not an image"], [0, 1], path)
    with pytest.raises(ValueError, match="true label 7 is out of range for 3 class names"):
        plot_rollout_grid(classifier, _images(1), [7], path)
