"""Attention rollout (Abnar & Zuidema, 2020) for the Vision Transformer.

Written here because neither Keras nor keras-hub ships it. Rollout follows
information through the residual stream: each block's attention, averaged
over heads, is mixed half-and-half with the identity (the residual path),

    A_l = (mean_h W_lh + I) / rows,   rows: each row renormalised to sum 1,

and the blocks compose by matrix products, `R = A_L ... A_2 A_1`: row `i` of
`R` says how much each input token contributes to token `i`'s output. The
map of an image is the row of what the head reads, over the patches:

- `pooling="token"`: the class token's row, `R[0, 1:]`;
- `pooling="gap"` (no class token; the head reads the mean of the patch
  tokens): the mean of the rows, `mean_i R[i, :]`, the same definition
  applied to the pooled output, since a mean of tokens mixes inputs by the
  mean of their rows.

Either way the row is renormalised to sum to 1 over the patches (the class
token's share of itself is dropped). Only the read row is needed, so it is
propagated from the last block down (`r <- r A_l`: `O(N^2)` per block, not
a product of `(N, N)` matrices).
"""

from keras import ops


def rollout_from_attention(attention_weights, num_prefix_tokens, grid_size):
    """Rolls out given per-block attention weights; see the module docstring.

    Args:
        attention_weights: list of `(B, H, N, N)` attention weights, first
            block first (rows: queries, summing to 1; columns: keys), with
            `N = num_prefix_tokens + grid_h * grid_w`.
        num_prefix_tokens: int. `1`: read the class token's row (token 0);
            `0`: read the mean of the rows (mean pooling).
        grid_size: tuple `(grid_h, grid_w)` of the patch grid (patches row
            by row after the prefix tokens).

    Returns:
        `(B, grid_h, grid_w)` float32 maps, non-negative, each summing to 1
        (all zeros if the read row puts no weight on any patch).

    Example:
    >>> import numpy as np
    >>> weights = np.full((1, 2, 5, 5), 0.2, "float32")  # uniform attention, 2 heads, class + 2x2
    >>> np.round(np.asarray(rollout_from_attention([weights], 1, (2, 2))), 3).tolist()
    [[[0.25, 0.25], [0.25, 0.25]]]
    """
    if not attention_weights:
        raise ValueError("attention_weights must hold one (B, H, N, N) tensor per block. Received: none")
    if num_prefix_tokens not in (0, 1):
        raise ValueError(f"num_prefix_tokens must be 0 or 1. Received: num_prefix_tokens={num_prefix_tokens!r}")
    rows, cols = grid_size
    n = attention_weights[0].shape[-1]
    if n != num_prefix_tokens + rows * cols:
        raise ValueError(
            f"The attention covers {n} tokens; {num_prefix_tokens} prefix token(s) and a {rows}x{cols} grid "
            f"make {num_prefix_tokens + rows * cols}. Received: weights of shape {tuple(attention_weights[0].shape)}"
        )
    identity = ops.eye(n, dtype="float32")
    mixed = []
    for weights in attention_weights:
        a = ops.mean(ops.cast(weights, "float32"), axis=1) + identity  # (B, N, N): heads averaged, residual added
        mixed.append(a / ops.sum(a, axis=-1, keepdims=True))
    last = mixed[-1]
    read = last[:, 0] if num_prefix_tokens else ops.mean(last, axis=1)  # (B, N): the row the head reads
    for a in reversed(mixed[:-1]):
        read = ops.einsum("bn,bnm->bm", read, a)  # (B, N)
    patches = read[:, num_prefix_tokens:]  # (B, P)
    total = ops.sum(patches, axis=-1, keepdims=True)
    patches = ops.where(total > 0, patches / ops.maximum(total, 1e-30), 0.0)
    return ops.reshape(patches, (-1, rows, cols))  # (B, grid_h, grid_w)


def attention_rollout(model, images):
    """Attention rollout maps of a `VisionTransformer` (inference mode).

    Args:
        model: `zoo.models.VisionTransformer`, either pooling (`"token"`:
            the class token's row; `"gap"`: the mean of the patch rows;
            see the module docstring).
        images: `(B, H, W, C)` images as the model takes them (normalised),
            any size the model accepts (positions are interpolated at another
            grid). All `B` images run at once; `zoo.ImageClassifier.attention_rollout`
            batches and preprocesses.

    Returns:
        `(B, H / patch_h, W / patch_w)` float32 maps, each non-negative and
        summing to 1 over the patches.

    Example:
    >>> from zoo.models import VisionTransformer
    >>> model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16,
    ...     num_encoder_layers=2, num_heads=2, d_ff=32)
    >>> maps = attention_rollout(model, ops.ones((2, 8, 12, 3)))  # a wider image: a 2x3 grid
    >>> tuple(maps.shape), round(float(ops.sum(maps[0])), 5)
    ((2, 2, 3), 1.0)

    References:
        Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
    """
    if not hasattr(model, "attention_maps") or not hasattr(model, "patch_embedding"):
        raise TypeError(
            f"attention_rollout takes a zoo.models.VisionTransformer. Received: {type(model).__name__}"
        )
    images = ops.convert_to_tensor(images)
    if len(images.shape) != 4:
        raise ValueError(f"images must be (B, H, W, C). Received: shape {tuple(images.shape)}")
    grid = model.patch_embedding.grid_size(images.shape)
    return rollout_from_attention(model.attention_maps(images), model.num_prefix_tokens, grid)
