"""Copy PyTorch-layout ViT tensors into a zoo `VisionTransformer`.

HF and timm store the same ViT in the same PyTorch layouts under different
names; the converters (`hf_vit`, `timm_vit`) name the tensors and this
module moves them into zoo's Keras layouts:
- `nn.Linear` weight `(out, in)` -> Dense kernel `(in, out)`;
- a query/key/value weight `(H * K, D)` -> EinsumDense kernel `(D, H, K)`,
  its bias `(H * K,)` -> `(H, K)` (heads are the leading part of the
  output index in both libraries);
- the attention output weight `(D, H * K)` -> `(H, K, D)`;
- the patch `Conv2d` weight `(D, C, ph, pw)` -> `(ph, pw, C, D)`;
- positions `(1, N, D)` -> `(N, D)`.
Every tensor is checked against the shape the model needs, and every
tensor of the checkpoint must be used.
"""

import numpy as np

from zoo.convert.checkpoint import CheckpointError


def to_numpy(value):
    """A NumPy array from a NumPy array or a PyTorch tensor (without importing torch)."""
    if hasattr(value, "detach"):  # a torch.Tensor; bfloat16 has no NumPy dtype
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


class Tensors:
    """A checkpoint's tensors, handed out by name; remembers which were used.

    Args:
        tensors: dict of str to arrays (NumPy or PyTorch).
        where: str. The checkpoint, for error messages.
    """

    def __init__(self, tensors, where):
        self._tensors = {name: to_numpy(value) for name, value in tensors.items()}
        self._used = set()
        self.where = where

    def __contains__(self, name):
        return name in self._tensors

    def names(self):
        return list(self._tensors)

    def take(self, name):
        if name not in self._tensors:
            raise CheckpointError(f"{self.where} has no tensor {name!r}, which this architecture needs.")
        self._used.add(name)
        return self._tensors[name].astype(np.float32)

    def ignore(self, prefix):
        """Marks the tensors under `prefix` as used: parts the source model never runs."""
        self._used.update(name for name in self._tensors if name.startswith(prefix))

    def shape(self, name):
        return self._tensors[name].shape if name in self._tensors else None

    def refuse(self, hints):
        """Raises a CheckpointError when a tensor name shows a part zoo lacks.

        `hints` are `(substring, explanation)` pairs.
        """
        for part, why in hints:
            found = [name for name in self._tensors if part in name]
            if found:
                raise CheckpointError(
                    f"{self.where} has {why}, which zoo's VisionTransformer cannot express "
                    f"(tensors {', '.join(sorted(found)[:4])}{', ...' if len(found) > 4 else ''})."
                )

    def check_all_used(self, hints=()):
        """Raises a CheckpointError naming the tensors no zoo weight took.

        `hints` are `(substring, explanation)` pairs: the first that occurs
        in a left-over name explains what the checkpoint has that zoo lacks.
        """
        left = sorted(set(self._tensors) - self._used)
        if not left:
            return
        reason = next((why for part, why in hints if any(part in name for name in left)), None)
        reason = f" ({reason})" if reason else ""
        shown = ", ".join(left[:8]) + (f", ... ({len(left)} in all)" if len(left) > 8 else "")
        raise CheckpointError(
            f"{self.where} holds tensors zoo's VisionTransformer has no place for{reason}: {shown}. "
            "Converting without them would give different logits."
        )


def _expect(tensors, name, shape):
    value = tensors.take(name)
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(
            f"Tensor {name!r} of {tensors.where} has shape {tuple(value.shape)}; the configuration "
            f"expects {tuple(shape)}."
        )
    return value


def _dense(layer, tensors, prefix):
    """`prefix.weight (out, in)` and `prefix.bias` into a Dense layer."""
    kernel_shape = tuple(layer.kernel.shape)
    weight = _expect(tensors, f"{prefix}.weight", kernel_shape[::-1])
    layer.kernel.assign(weight.T)
    if layer.use_bias:
        layer.bias.assign(_expect(tensors, f"{prefix}.bias", layer.bias.shape))


def _layer_norm(layer, tensors, prefix):
    layer.gamma.assign(_expect(tensors, f"{prefix}.weight", layer.gamma.shape))
    layer.beta.assign(_expect(tensors, f"{prefix}.bias", layer.beta.shape))


def _projection(layer, weight, bias, name, tensors):
    """A query/key/value weight `(H * K, D)` into an EinsumDense `(D, H, K)`."""
    d, h, k = layer.kernel.shape
    if tuple(weight.shape) != (h * k, d):
        raise CheckpointError(
            f"Tensor {name!r} of {tensors.where} has shape {tuple(weight.shape)}; the configuration "
            f"expects {(h * k, d)} ({h} heads of width {k}, model width {d})."
        )
    layer.kernel.assign(weight.T.reshape(d, h, k))
    if layer.bias is not None:
        if bias is None:
            raise CheckpointError(f"{tensors.where} has no bias for {name!r}, but qkv_bias is set.")
        layer.bias.assign(bias.reshape(h, k))
    elif bias is not None:
        raise CheckpointError(f"{tensors.where} has a bias for {name!r}, but qkv_bias is off.")


def _attention(attention, tensors, names):
    """Query, key, value (separate or one fused `qkv`) and output projections."""
    dense = (attention.query_dense, attention.key_dense, attention.value_dense)
    if "qkv" in names:
        d = dense[0].kernel.shape[0]
        weight = _expect(tensors, f"{names['qkv']}.weight", (3 * d, d))
        bias_name = f"{names['qkv']}.bias"
        bias = tensors.take(bias_name) if bias_name in tensors else None
        for i, layer in enumerate(dense):
            part_bias = None if bias is None else bias[i * d : (i + 1) * d]
            _projection(layer, weight[i * d : (i + 1) * d], part_bias, f"{names['qkv']}.weight", tensors)
    else:
        for layer, role in zip(dense, ("q", "k", "v")):
            bias_name = f"{names[role]}.bias"
            bias = tensors.take(bias_name) if bias_name in tensors else None
            _projection(layer, tensors.take(f"{names[role]}.weight"), bias, f"{names[role]}.weight", tensors)
    out = attention.output_dense
    h, k, d = out.kernel.shape
    weight = _expect(tensors, f"{names['o']}.weight", (d, h * k))
    out.kernel.assign(weight.T.reshape(h, k, d))
    out.bias.assign(_expect(tensors, f"{names['o']}.bias", out.bias.shape))


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
    weight = _expect(tensors, f"{names['patch']}.weight", (d, c, ph, pw))
    conv.kernel.assign(weight.transpose(2, 3, 1, 0))
    conv.bias.assign(_expect(tensors, f"{names['patch']}.bias", (d,)))
    if model.class_token is not None:
        model.class_token.class_token.assign(_expect(tensors, names["cls"], (1, 1, d)))
    table = model.position_embedding.embeddings
    model.position_embedding.embeddings.assign(_expect(tensors, names["pos"], (1, *table.shape))[0])
    for i, block in enumerate(model.encoder_blocks):
        block_names = {role: name.format(i=i) for role, name in names.items() if name and "{i}" in name}
        attention = block.self_attention
        _layer_norm(attention.layer_norm, tensors, block_names["norm1"])
        _attention(attention.attention, tensors, block_names)
        mlp = block.feed_forward
        _layer_norm(mlp.layer_norm, tensors, block_names["norm2"])
        _dense(mlp.intermediate_dense, tensors, block_names["fc1"])
        _dense(mlp.output_dense, tensors, block_names["fc2"])
    _layer_norm(model.encoder_norm, tensors, names["norm"])
    _dense(model.head, tensors, names["head"])
