"""The cross-attention heatmap: which source tokens each target token looked at."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _tokens(tokenizer, ids):
    return [tokenizer.vocabulary[i] for i in ids]


def plot_cross_attention(model, source_tokenizer, target_tokenizer, sentence, path, config, layer=-1):
    """Translates `sentence` greedily and draws one panel per head of `layer`'s cross-attention."""
    from zoo.decoding import generate

    source = source_tokenizer.tokenize(tf.constant([sentence]))[:, : config.max_length].to_tensor()
    generated = np.asarray(generate(model, source, config.max_length))[0]
    length = int(np.argmax(generated == model.end_token_id)) + 1 if model.end_token_id in generated else len(generated)
    target_in = np.concatenate([[model.start_token_id], generated[: length - 1]])[None].astype("int32")
    mask = model.source_padding_mask(source)
    _, scores = model.decode(target_in, model.encode(source, mask), mask, return_attention_scores=True)
    weights = np.asarray(scores[layer]["cross"])[0]  # (H, T, S)
    source_labels = _tokens(source_tokenizer, source.numpy()[0])
    target_labels = _tokens(target_tokenizer, generated[:length])
    heads = weights.shape[0]
    cols = min(4, heads)
    rows = -(-heads // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.matshow(weights[h], cmap="viridis", vmin=0.0, aspect="auto")
        ax.set_xticks(range(len(source_labels)), source_labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(target_labels)), target_labels, fontsize=7)
        ax.set_title(f"head {h + 1}", fontsize=9)
    fig.suptitle(f"cross-attention, decoder layer {layer % len(scores) + 1}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
