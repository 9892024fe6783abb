"""The cross-attention heatmap of a `zoo.Translator`: which source tokens each target token looked at."""

from matplotlib.figure import Figure


def plot_cross_attention(translator, sentence, path, layer=-1):
    """Translates `sentence` and draws one panel per head of a decoder layer's cross-attention.

    The weights are `translator.cross_attention(sentence, layer)`: those of
    the translation `translator.translate` gives (its beam width and length
    penalty), target tokens as rows, source tokens as columns.

    Args:
        translator: `zoo.Translator`.
        sentence: str. One sentence with at least one token.
        path: str. The PNG file to write.
        layer: int. The decoder layer, Python-indexed. Defaults to `-1` (the last).

    Returns:
        `(source_tokens, target_tokens, weights (H, T, S))`, as `cross_attention` gives them.
    """
    source_tokens, target_tokens, weights = translator.cross_attention(sentence, layer)
    heads = weights.shape[0]
    cols = min(4, heads)
    rows = -(-heads // cols)
    fig = Figure(figsize=(4 * cols, 4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.matshow(weights[h], cmap="viridis", vmin=0.0, aspect="auto")
        ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(target_tokens)), target_tokens, fontsize=7)
        ax.set_title(f"head {h + 1}", fontsize=9)
    layers = translator.model.num_decoder_layers
    fig.suptitle(f"cross-attention, decoder layer {layer % layers + 1} of {layers}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return source_tokens, target_tokens, weights
