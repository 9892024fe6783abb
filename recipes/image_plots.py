"""Pictures for the image recipe: a confusion matrix and class-token attention maps."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion_matrix(labels, predictions, class_names, path):
    """Counts of (true class, predicted class) as a heatmap with the numbers written in."""
    n = len(class_names)
    matrix = np.zeros((n, n), int)
    np.add.at(matrix, (labels, predictions), 1)
    size = max(4.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
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
    plt.close(fig)
    return matrix


def class_token_attention(model, inputs):
    """Last layer's class-token attention over the patch grid, averaged over heads: `(B, gh, gw)`.

    With mean pooling there is no class token; the mean attention each patch
    receives is drawn instead.
    """
    maps = np.asarray(model.attention_maps(inputs)[-1])  # (B, H, N, N)
    prefix = 1 if model.pooling == "token" else 0
    weights = maps[:, :, 0, prefix:] if prefix else maps.mean(axis=2)
    weights = weights.mean(axis=1)  # (B, P)
    grid = int(round(np.sqrt(weights.shape[-1])))
    return weights.reshape(-1, grid, weights.shape[-1] // grid)


def plot_attention_maps(model, images, inputs, path, true_labels=None, predicted_labels=None):
    """Each image next to its class-token attention, upsampled and drawn over it.

    With labels, each column is titled "true X / predicted Y" (red when they
    differ). Returns the attention `(B, gh, gw)` and the titles.
    """
    attention = class_token_attention(model, inputs)
    count = len(images)
    fig, axes = plt.subplots(2, count, figsize=(2.2 * count, 4.6), squeeze=False)
    titles = []
    for i in range(count):
        image = images[i]
        heat = np.kron(attention[i], np.ones((image.shape[0] // attention.shape[1], image.shape[1] // attention.shape[2])))
        axes[0, i].imshow(image)
        axes[1, i].imshow(image)
        axes[1, i].imshow(heat / max(heat.max(), 1e-9), cmap="inferno", alpha=0.6,
                          extent=(0, image.shape[1], image.shape[0], 0))
        for ax in axes[:, i]:
            ax.axis("off")
        if true_labels is not None and predicted_labels is not None:
            true, predicted = true_labels[i], predicted_labels[i]
            titles.append(f"true {true} / predicted {predicted}")
            axes[0, i].set_title(titles[-1], fontsize=8, color="black" if true == predicted else "red")
    axes[1, 0].set_title("class-token attention, last layer", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return attention, titles
