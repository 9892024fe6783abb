"""Pictures of a `zoo.ImageClassifier` at work: a confusion matrix and class-token attention maps."""

import numpy as np
from keras import ops
from matplotlib.figure import Figure

from zoo.layers.size_pair import size_pair


def plot_confusion_matrix(labels, predictions, class_names, path):
    """Counts of (true class, predicted class) as a heatmap with the numbers written in.

    Args:
        labels: int array `(N,)`. True class indices.
        predictions: int array `(N,)`. Predicted class indices.
        class_names: list of str. One per class.
        path: str. The PNG file to write.

    Returns:
        The `(classes, classes)` count matrix, rows true, columns predicted.
    """
    n = len(class_names)
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    size = max(4.0, 0.5 * n + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, matrix[i, j], ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_title(f"confusion matrix, accuracy {np.trace(matrix) / max(matrix.sum(), 1):.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return matrix


def class_token_attention(classifier, images):
    """The last layer's class-token attention over the patch grid, averaged over heads.

    Images go through `classifier.prepare` (its preprocessor's decoding,
    resize, crop, mean/std) as in `predict`. With mean pooling there is no
    class token; the mean attention each patch receives is used instead.

    Args:
        classifier: `zoo.ImageClassifier`.
        images: what `classifier.predict` takes, e.g. a uint8 array
            `(B, H, W, 3)` or encoded images.

    Returns:
        float array `(B, gh, gw)`: the patch grid's weights.
    """
    return _class_token_attention(classifier.model, classifier.prepare(images)["inputs"])


def _class_token_attention(model, inputs):
    maps = ops.convert_to_numpy(model.attention_maps(inputs)[-1])  # (B, H, N, N)
    prefix = 1 if model.pooling == "token" else 0
    weights = maps[:, :, 0, prefix:] if prefix else maps.mean(axis=2)
    weights = weights.mean(axis=1)  # (B, P)
    (height, width) = size_pair(model.image_size, "image_size")
    (patch_h, patch_w) = size_pair(model.patch_size, "patch_size")
    return weights.reshape(-1, height // patch_h, width // patch_w)


def plot_attention_maps(classifier, images, path, true_labels=None, predicted_labels=None):
    """Each image as the model sees it (resized, cropped), and its class-token attention drawn over it
    (`class_token_attention`).

    Args:
        classifier: `zoo.ImageClassifier`.
        images: what `classifier.predict` takes, e.g. a uint8 array
            `(B, H, W, 3)` or encoded images.
        path: str. The PNG file to write.
        true_labels: list of str or None. With `predicted_labels`, each
            column is titled "true X / predicted Y" (red when they differ).
        predicted_labels: list of str or None.

    Returns:
        The attention `(B, gh, gw)` and the titles.
    """
    prepared = classifier.prepare(images)
    attention = _class_token_attention(classifier.model, prepared["inputs"])
    count = len(attention)
    fig = Figure(figsize=(2.2 * count, 4.6))
    axes = fig.subplots(2, count, squeeze=False)
    titles = []
    for i in range(count):
        image = prepared["pixels"][i]
        axes[0, i].imshow(image)
        axes[1, i].imshow(image)
        axes[1, i].imshow(attention[i], cmap="inferno", alpha=0.6, vmin=0.0, vmax=max(attention[i].max(), 1e-9),
                          extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5),  # the image's own
                          interpolation="nearest")
        for ax in axes[:, i]:
            ax.axis("off")
        if true_labels is not None and predicted_labels is not None:
            true, predicted = true_labels[i], predicted_labels[i]
            titles.append(f"true {true} / predicted {predicted}")
            axes[0, i].set_title(titles[-1], fontsize=8, color="black" if true == predicted else "red")
    axes[1, 0].set_title("class-token attention, last layer", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return attention, titles
