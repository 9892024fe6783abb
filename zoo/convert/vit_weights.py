"""Copy PyTorch-layout ViT tensors into a zoo `VisionTransformer`.

HF and timm store the same ViT in the same PyTorch layouts under different
names; the converters (`hf_vit`, `timm_vit`) name the tensors and this
module moves them into zoo's layers (layouts in `zoo.convert.torch_layout`;
besides those, the patch `Conv2d` weight `(D, C, ph, pw)` -> `(ph, pw, C,
D)` and positions `(1, N, D)` -> `(N, D)`). Every tensor of the checkpoint
must be used. Also what both converters share: sizes, class names and the
`ImagePreprocessor`, each with a `CheckpointError` naming the checkpoint.
"""

from zoo.convert.checkpoint import CheckpointError
from zoo.convert.torch_layout import attention, dense, expect, layer_norm
from zoo.preprocessing.image_preprocessor import ImagePreprocessor
from zoo.layers import size_pair

TARGET = "zoo's VisionTransformer"  # what the checkpoint goes into, for errors


def checkpoint_size(value, name, where):
    """`size_pair`, with a CheckpointError naming the checkpoint."""
    try:
        return list(size_pair(value, name))
    except ValueError as error:
        raise CheckpointError(f"{where}: {error}") from None


def checkpoint_preprocessor(where, **fields):
    """An `ImagePreprocessor`, with a CheckpointError naming the checkpoint if a value is wrong."""
    try:
        return ImagePreprocessor(**fields)
    except ValueError as error:
        raise CheckpointError(f"{where}: {error}") from None


def class_names_from_mapping(mapping, num_classes, what):
    """Class names from `{index: name}` (JSON keys are strings) or a list.

    Raises a CheckpointError unless every index `0 .. num_classes - 1` is named.
    """
    if isinstance(mapping, (list, tuple)):
        names = [str(n) for n in mapping]
    else:
        try:
            by_index = {int(k): str(v) for k, v in mapping.items()}
        except (AttributeError, ValueError):
            raise CheckpointError(
                f"{what} must map class indices to names. Received: {str(mapping)[:200]}"
            ) from None
        names = [by_index.get(i) for i in range(num_classes)]
        if None in names or len(by_index) != num_classes:
            names = None
    if names is None or len(names) != num_classes:
        count = len(mapping) if hasattr(mapping, "__len__") else "?"
        raise CheckpointError(
            f"{what} must name each of the {num_classes} classes (indices 0 to {num_classes - 1}). "
            f"Received: {count} entries"
        )
    return names


def load_vit_weights(model, tensors, names):
    """Copies a checkpoint into a built `VisionTransformer`.

    Args:
        model: a `zoo.models.VisionTransformer` built for the checkpoint.
        tensors: `Tensors` of the checkpoint.
        names: dict of the source prefixes: `patch`, `cls` (None without a
            class token), `pos`, `norm`, `head`, and per block (with `{i}`)
            `norm1`, `norm2`, `fc1`, `fc2`, `o` and either `qkv` or `q`,
            `k`, `v`.
    """
    conv = model.patch_embedding.projection
    ph, pw, c, d = conv.kernel.shape
    weight = expect(tensors, f"{names['patch']}.weight", (d, c, ph, pw))
    conv.kernel.assign(weight.transpose(2, 3, 1, 0))
    conv.bias.assign(expect(tensors, f"{names['patch']}.bias", (d,)))
    if model.class_token is not None:
        model.class_token.class_token.assign(expect(tensors, names["cls"], (1, 1, d)))
    table = model.position_embedding.embeddings
    model.position_embedding.embeddings.assign(expect(tensors, names["pos"], (1, *table.shape))[0])
    for i, block in enumerate(model.encoder_blocks):
        block_names = {role: name.format(i=i) for role, name in names.items() if name and "{i}" in name}
        sublayer = block.self_attention
        layer_norm(sublayer.layer_norm, tensors, block_names["norm1"])
        attention(sublayer.attention, tensors, block_names)
        mlp = block.feed_forward
        layer_norm(mlp.layer_norm, tensors, block_names["norm2"])
        dense(mlp.intermediate_dense, tensors, block_names["fc1"])
        dense(mlp.output_dense, tensors, block_names["fc2"])
    layer_norm(model.encoder_norm, tensors, names["norm"])
    dense(model.head, tensors, names["head"])
