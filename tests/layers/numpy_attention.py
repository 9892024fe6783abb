"""NumPy references for attention and layer norm, read from a layer's own weights (test helper)."""

import numpy as np
from keras import ops


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), "float64")


def layer_norm(x, layer=None, epsilon=1e-5):
    """`(x - mean) / sqrt(var + eps)`, times `layer.gamma` plus `layer.beta` when a Keras LayerNormalization is given."""
    if layer is not None:
        epsilon = layer.epsilon
    out = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + epsilon)
    if layer is not None:
        out = out * to_numpy(layer.gamma) + to_numpy(layer.beta)
    return out


def rope(x, start, max_wavelength):
    """Rotary positions on `(B, T, H, K)`, GPT-NeoX layout (feature j pairs with j + K/2), from the formula."""
    half = x.shape[-1] // 2
    positions = np.arange(x.shape[1]) + start  # (T,)
    angles = positions[:, None] * max_wavelength ** (-2.0 * np.arange(half) / x.shape[-1])  # (T, K/2)
    cos, sin = np.cos(angles)[None, :, None, :], np.sin(angles)[None, :, None, :]
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def attention(mha, query, value, key=None, mask=None, rotary_start=(0, 0)):
    """`softmax(Q K^T / sqrt(K) + mask) V W_O + b` with a `zoo.layers.MultiHeadAttention`'s weights.

    `mask`: boolean, broadcastable to `(B, T, S)`, True = attend. Returns
    `(output (B, T, D), weights (B, H, T, S))`.
    """
    key = value if key is None else key

    def project(dense, x):
        out = np.einsum("bsd,dhk->bshk", x, to_numpy(dense.kernel))
        return out + to_numpy(dense.bias) if dense.bias is not None else out

    q, k, v = project(mha.query_dense, query), project(mha.key_dense, key), project(mha.value_dense, value)
    if mha.use_rotary:
        q = rope(q, rotary_start[0], mha.rotary_max_wavelength)
        k = rope(k, rotary_start[1], mha.rotary_max_wavelength)
    logits = np.einsum("bthk,bshk->bhts", q, k) / np.sqrt(mha.key_dim)
    if mask is not None:
        logits = np.where(np.asarray(mask)[:, None], logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhts,bshv->bthv", weights, v)
    out = np.einsum("bthv,hvd->btd", out, to_numpy(mha.output_dense.kernel))
    if mha.output_dense.bias is not None:
        out = out + to_numpy(mha.output_dense.bias)
    return out, weights
