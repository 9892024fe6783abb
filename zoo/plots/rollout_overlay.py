"""Attention rollout drawn over images: one image, or a grid with true and predicted labels.

Matplotlib, through its object API (`matplotlib.figure.Figure`): no pyplot
state and no backend switch, so importing this module changes nothing and
the figures are freed when dropped. The maps come from
`zoo.models.attention_rollout`; an `zoo.ImageClassifier` (anything with its
`prepare`, `class_names` and `model`) preprocesses the images itself.
"""

import numpy as np
from keras import ops
from matplotlib.figure import Figure

from zoo.models.attention_rollout import attention_rollout

DPI = 100


def _display_pixels(image):
    """An image as `(H, W, 3)` floats in `[0, 1]` for `imshow`: uint8 divided by 255,
    floats outside `[0, 1]` (normalised model inputs) rescaled to their range."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"An image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). Received: shape {image.shape}")
    image = image[..., :3]
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        image = (image - low) / max(high - low, 1e-12)
    return image


def _title(true_label, predicted_label):
    lines = []
    if true_label is not None:
        lines.append(f"true: {true_label}")
    if predicted_label is not None:
        lines.append(f"predicted: {predicted_label}")
    return "\n".join(lines)


def _overlay(ax, image, rollout_map, title, color, alpha, interpolation, cmap):
    """Draws the image, then the map stretched over it (each patch's cell over its pixels)."""
    pixels = _display_pixels(image)
    rollout_map = np.asarray(rollout_map, np.float32)
    if rollout_map.ndim != 2:
        raise ValueError(f"A rollout map must be (grid_h, grid_w). Received: shape {rollout_map.shape}")
    height, width = pixels.shape[:2]
    extent = (0, width, height, 0)
    ax.imshow(pixels, extent=extent, interpolation="nearest")
    ax.imshow(rollout_map / max(float(rollout_map.max()), 1e-12), cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha,
              extent=extent, interpolation=interpolation)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9, color=color)


def plot_rollout(image, rollout_map, path, true_label=None, predicted_label=None, alpha=0.5,
                 interpolation="bilinear", cmap="inferno", size=3.0):
    """Writes a PNG of one image with its rollout map upsampled over it.

    Args:
        image: `(H, W[, C])` uint8 pixels, or floats (in `[0, 1]`, or any
            range: rescaled for display).
        rollout_map: `(grid_h, grid_w)` map (`zoo.models.attention_rollout`),
            stretched over the whole image (shown relative to its maximum).
        path: str. Where to write the PNG.
        true_label, predicted_label: str or None. Written in the title (in
            red when both are given and differ, else green).
        alpha: float. Opacity of the map. Defaults to `0.5`.
        interpolation: str. How matplotlib upsamples the map: `"bilinear"`
            (smooth) or `"nearest"` (one flat cell per patch). Defaults to `"bilinear"`.
        cmap: str. Matplotlib colour map. Defaults to `"inferno"`.
        size: float. Figure width and height in inches (at 100 dpi).
            Defaults to `3.0`.

    Returns:
        The `matplotlib.figure.Figure` (already written).

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "rollout.png")
    >>> fig = plot_rollout(np.zeros((32, 32, 3), "uint8"), np.eye(4) / 4, path, "7", "1")
    >>> fig.axes[0].get_title().splitlines(), os.path.getsize(path) > 0
    (['true: 7', 'predicted: 1'], True)
    """
    fig = Figure(figsize=(size, size + 0.4), dpi=DPI)
    ax = fig.add_subplot()
    wrong = true_label is not None and predicted_label is not None and str(true_label) != str(predicted_label)
    color = "tab:red" if wrong else "tab:green" if predicted_label is not None and true_label is not None else "black"
    _overlay(ax, image, rollout_map, _title(true_label, predicted_label), color, alpha, interpolation, cmap)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return fig


def pick_correct_and_wrong(true_labels, predicted_labels, count):
    """Indices of up to `count` examples, half of them (or as many as there are) misclassified,
    the rest correct, each group in its original order; the wrong ones first."""
    true_labels, predicted_labels = np.asarray(true_labels), np.asarray(predicted_labels)
    if true_labels.shape != predicted_labels.shape or true_labels.ndim != 1:
        raise ValueError(
            f"true_labels and predicted_labels must be two lists of the same length. "
            f"Received: shapes {true_labels.shape} and {predicted_labels.shape}"
        )
    wrong = np.flatnonzero(true_labels != predicted_labels)
    right = np.flatnonzero(true_labels == predicted_labels)
    num_wrong = min(len(wrong), max(count // 2, count - len(right)))
    return np.concatenate([wrong[:num_wrong], right[: count - num_wrong]]).astype(int)


def _label_names(labels, class_names, what):
    """Labels as names: ints index `class_names` (or print as they are), strings stay."""
    names = []
    for label in labels:
        if isinstance(label, (str, np.str_)):
            names.append(str(label))
        elif class_names is not None:
            if not 0 <= int(label) < len(class_names):
                raise ValueError(f"{what} {int(label)} is out of range for {len(class_names)} class names.")
            names.append(str(class_names[int(label)]))
        else:
            names.append(str(int(label)))
    return names


def _predict(model, inputs, batch_size):
    """Argmax class of each input, in batches."""
    classes = [np.zeros((0,), int)]
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start : start + batch_size], training=False)  # (b, num_classes)
        classes.append(np.argmax(np.asarray(ops.convert_to_numpy(logits)), axis=-1))
    return np.concatenate(classes)


def _model_inputs(classifier_or_model, images, inputs, class_names, batch_size):
    """`(model, model inputs, display pixels, class names)` for a classifier or a bare model."""
    if all(hasattr(classifier_or_model, name) for name in ("prepare", "class_names", "model")):
        prepared = classifier_or_model.prepare(images, batch_size=batch_size)
        bad = np.flatnonzero(~prepared["valid"]).tolist()
        if bad:
            raise ValueError(f"Images {bad} could not be decoded; the rollout grid needs decodable images.")
        names = class_names if class_names is not None else classifier_or_model.class_names
        return classifier_or_model.model, prepared["inputs"], prepared["pixels"], names
    if hasattr(classifier_or_model, "attention_maps"):
        images = np.asarray(images)
        inputs = images if inputs is None else np.asarray(inputs)
        if len(inputs) != len(images):
            raise ValueError(
                f"inputs must hold one model input per image. Received: {len(inputs)} for {len(images)} images"
            )
        return classifier_or_model, inputs.astype(np.float32), images, class_names
    raise TypeError(
        "plot_rollout_grid takes a zoo.ImageClassifier or a zoo.models.VisionTransformer. "
        f"Received: {type(classifier_or_model).__name__}"
    )


def plot_rollout_grid(classifier_or_model, images, true_labels, path, inputs=None, class_names=None,
                      predicted_labels=None, count=None, columns=4, batch_size=32, alpha=0.5,
                      interpolation="bilinear", cmap="inferno"):
    """Writes a PNG grid of images with their attention rollout, true and predicted labels in each title.

    Args:
        classifier_or_model: a `zoo.ImageClassifier` (then `images` are
            anything its `predict` takes, preprocessed by it, and shown as
            the model sees them: resized and cropped), or a
            `zoo.models.VisionTransformer` (then `images` are the pictures
            to show, `(N, H, W, C)` uint8 or floats, and `inputs` what the
            model reads).
        images: the images (see above).
        true_labels: `N` class indices or names.
        path: str. Where to write the PNG.
        inputs: `(N, H, W, C)` normalised model inputs, for a bare model
            only; None: `images` are the inputs. Defaults to `None`.
        class_names: sequence of str, naming the indices. Defaults to the
            classifier's; for a bare model, None prints indices.
        predicted_labels: `N` predicted indices or names, if already
            computed; None: the model's argmax. Defaults to `None`.
        count: int or None. Draw only this many, a mix of misclassified and
            correct ones (`pick_correct_and_wrong`; predictions for all `N`
            are needed, rollouts only for the drawn ones). None: all.
            Defaults to `None`.
        columns: int. Images per row. Defaults to `4`.
        batch_size: int. Images per model call. Defaults to `32`.
        alpha, interpolation, cmap: as `plot_rollout`.

    Returns:
        The `matplotlib.figure.Figure` (already written); its axes' titles
        are `"true: <name>\\npredicted: <name>"`, red when they differ.

    The image recipe's evaluation, with a bare model, 8 of its test images
    (misclassified ones first) out of all of them:
    `plot_rollout_grid(model, images, labels, "rollout.png", inputs=normalised,
    class_names=names, predicted_labels=top1, count=8)`.
    """
    if len(true_labels) != len(images):
        raise ValueError(
            f"true_labels must hold one label per image. Received: {len(true_labels)} for {len(images)} images"
        )
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be a positive int. Received: columns={columns!r}")
    model, inputs, pixels, class_names = _model_inputs(classifier_or_model, images, inputs, class_names, batch_size)
    predicted = _predict(model, inputs, batch_size) if predicted_labels is None else list(predicted_labels)
    if len(predicted) != len(inputs):
        raise ValueError(
            f"predicted_labels must hold one label per image. Received: {len(predicted)} for {len(inputs)} images"
        )
    true_names = _label_names(true_labels, class_names, "true label")
    predicted_names = _label_names(predicted, class_names, "predicted label")
    chosen = np.arange(len(inputs))
    if count is not None and count < len(inputs):
        chosen = pick_correct_and_wrong(true_names, predicted_names, count)
    if not len(chosen):
        raise ValueError("plot_rollout_grid needs at least one image. Received: none")
    maps = np.concatenate([
        np.asarray(ops.convert_to_numpy(attention_rollout(model, inputs[chosen[i : i + batch_size]])))
        for i in range(0, len(chosen), batch_size)
    ])
    columns = min(columns, len(chosen))
    rows = -(-len(chosen) // columns)
    fig = Figure(figsize=(2.4 * columns, 2.7 * rows + 0.3), dpi=DPI)
    for slot, index in enumerate(chosen):
        ax = fig.add_subplot(rows, columns, slot + 1)
        wrong = true_names[index] != predicted_names[index]
        _overlay(ax, pixels[index], maps[slot], _title(true_names[index], predicted_names[index]),
                 "tab:red" if wrong else "tab:green", alpha, interpolation, cmap)
    fig.suptitle("attention rollout", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return fig
