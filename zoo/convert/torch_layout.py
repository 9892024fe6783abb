"""PyTorch-layout tensors into zoo's Keras layers, every shape checked.

HF, timm and Marian store their Transformers in PyTorch layouts; the
converters name the tensors (`hf_vit`, `timm_vit`, `marian`) and this module
moves them into zoo's Keras layouts:
- `nn.Linear` weight `(out, in)` -> Dense kernel `(in, out)`;
- a query/key/value weight `(H * K, D)` -> EinsumDense kernel `(D, H, K)`,
  its bias `(H * K,)` -> `(H, K)` (heads are the leading part of the
  output index in both libraries);
- the attention output weight `(D, H * K)` -> `(H, K, D)`;
- LayerNorm weight and bias -> gamma and beta.
Every tensor is checked against the shape the model needs, and `Tensors`
remembers which were used, so a converter can insist that all were.
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
        target: str. The zoo model it goes into, for error messages.
    """

    def __init__(self, tensors, where, target):
        self._tensors = {name: to_numpy(value) for name, value in tensors.items()}
        self._used = set()
        self.where = where
        self.target = target

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
                    f"{self.where} has {why}, which {self.target} cannot express "
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
            f"{self.where} holds tensors {self.target} has no place for{reason}: {shown}. "
            "Converting without them would give different logits."
        )


def expect(tensors, name, shape):
    value = tensors.take(name)
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(
            f"Tensor {name!r} of {tensors.where} has shape {tuple(value.shape)}; the configuration "
            f"expects {tuple(shape)}."
        )
    return value


def dense(layer, tensors, prefix):
    """`prefix.weight (out, in)` and `prefix.bias` into a Dense layer."""
    kernel_shape = tuple(layer.kernel.shape)
    weight = expect(tensors, f"{prefix}.weight", kernel_shape[::-1])
    layer.kernel.assign(weight.T)
    if layer.use_bias:
        layer.bias.assign(expect(tensors, f"{prefix}.bias", layer.bias.shape))


def layer_norm(layer, tensors, prefix):
    layer.gamma.assign(expect(tensors, f"{prefix}.weight", layer.gamma.shape))
    layer.beta.assign(expect(tensors, f"{prefix}.bias", layer.beta.shape))


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


def attention(mha, tensors, names):
    """A zoo `MultiHeadAttention`'s query, key, value (separate, or one fused
    `qkv`) and output projections; `names` maps `q`, `k`, `v` (or `qkv`) and
    `o` to the tensors' prefixes."""
    projections = (mha.query_dense, mha.key_dense, mha.value_dense)
    if "qkv" in names:
        d = projections[0].kernel.shape[0]
        weight = expect(tensors, f"{names['qkv']}.weight", (3 * d, d))
        bias_name = f"{names['qkv']}.bias"
        bias = tensors.take(bias_name) if bias_name in tensors else None
        for i, layer in enumerate(projections):
            part_bias = None if bias is None else bias[i * d : (i + 1) * d]
            _projection(layer, weight[i * d : (i + 1) * d], part_bias, f"{names['qkv']}.weight", tensors)
    else:
        for layer, role in zip(projections, ("q", "k", "v")):
            bias_name = f"{names[role]}.bias"
            bias = tensors.take(bias_name) if bias_name in tensors else None
            _projection(layer, tensors.take(f"{names[role]}.weight"), bias, f"{names[role]}.weight", tensors)
    out = mha.output_dense
    h, k, d = out.kernel.shape
    weight = expect(tensors, f"{names['o']}.weight", (d, h * k))
    out.kernel.assign(weight.T.reshape(h, k, d))
    out.bias.assign(expect(tensors, f"{names['o']}.bias", out.bias.shape))


