"""Copy PyTorch-layout ViT tensors into a zoo `VisionTransformer`.

HF and timm store the same ViT in the same PyTorch layouts under different
names; the converters (`hf_vit`, `timm_vit`) name the tensors and this
module moves them into zoo's layers (layouts in `zoo.convert.torch_layout`;
besides those, the patch `Conv2d` weight `(D, C, ph, pw)` -> `(ph, pw, C,
D)` and positions `(1, N, D)` -> `(N, D)`). Every tensor of the checkpoint
must be used.
"""

from zoo.convert.torch_layout import attention, dense, expect, layer_norm

TARGET = "zoo's VisionTransformer"  # what the checkpoint goes into, for errors


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
