"""Growing decoder caches in the layout the attention matmuls read: a step that moves no cache.

`MultiHeadAttention`'s own cache (`init_cache(batch, max_length)`) is a
`(B, S_max, H, K)` buffer: every step writes a row into a copy of it,
transposes all of it for the matmuls, attends over all `S_max` positions
(masking the unwritten ones) and, in beam search, carries cross-attention
keys/values repeated once per beam. This module is the decoding fast path
`TransformerTranslator.decode_step` takes for the caches that
`init_cache(..., max_length=None)` builds:

- self-attention keys are kept as `(N, H, K, t)` and values as
  `(N, H, t, V)` (`N` = batch x beams, `t` = positions decoded so far), so
  that `q k` and `p v` are plain batched matmuls with nothing transposed;
  a step appends its keys/values (one concatenation), so it costs what it
  has decoded, not the longest translation allowed;
- cross-attention keys `(B, H, K, S)` and values `(B, H, S, V)` are
  computed once per source sentence and never repeated per beam: the `W`
  beams of a source are its `W` query rows (`(B, H, W, K)` queries);
- the source padding becomes one additive bias `(B, 1, 1, S)` per step.

Written here because neither Keras nor keras-hub has an encoder-decoder
cache that grows and is shared across beams (keras-hub's `CachedMultiHeadAttention`
takes a fixed `(B, 2, S_max, H, K)` buffer). The arithmetic is the matmul
kernel's (`attention_compute.matmul_attention`): queries scaled before the
product, float32 softmax, `-1e9` on masked keys, fully masked rows zeroed.

A growing cache changes shape at every step: in a `tf.while_loop` its
length axis (the one of size 0 when empty) needs a `None` shape invariant
(`zoo.decoding` sets it); JAX loops need fixed shapes and keep
`MultiHeadAttention`'s buffers.

Example:
>>> from zoo.layers import DecoderBlock
>>> block = DecoderBlock(d_model=8, num_heads=2, d_ff=16)
>>> context = keras.ops.ones((1, 5, 8))
>>> cache = block.init_cache(context, max_length=None, beam_width=3)
>>> out, cache = block.decode_step(keras.ops.ones((3, 1, 8)), cache, 0)
>>> tuple(cache["self_keys"].shape), tuple(cache["cross_keys"].shape)
((3, 2, 4, 1), (1, 2, 4, 5))
"""

import math
import warnings

import keras
from keras import ops

SELF_KEYS = ("self_keys", "self_values")


def is_growing(cache):
    """Whether a decoder layer's cache is this module's (a dict) rather than `(self_cache, cross_cache)`."""
    return isinstance(cache, dict)


def init_layer_cache(self_attention, cross_attention, context, beam_width):
    """Empty self-attention caches for `B * beam_width` rows and the source's cross keys/values.

    Args:
        self_attention: the block's `MultiHeadAttention` (causal self-attention).
        cross_attention: the block's cross-attention `MultiHeadAttention`.
        context: `(B, S, D)` encoder outputs.
        beam_width: int. Rows per source sentence `W`.

    Returns:
        dict: `self_keys (B*W, H, K, 0)`, `self_values (B*W, H, 0, V)`,
        `cross_keys (B, H, K, S)`, `cross_values (B, H, S, V)`.
    """
    rows = ops.shape(context)[0] * beam_width
    h, k = self_attention.num_heads, self_attention.key_dim
    v = self_attention.value_dim or k
    dtype = self_attention.compute_dtype
    keys, values = cross_attention.compute_cache(context)  # (B, S, H, K), (B, S, H, V)
    return {
        "self_keys": ops.zeros((rows, h, k, 0), dtype),
        "self_values": ops.zeros((rows, h, 0, v), dtype),
        "cross_keys": ops.transpose(keys, (0, 2, 3, 1)),  # (B, H, K, S)
        "cross_values": ops.transpose(values, (0, 2, 1, 3)),  # (B, H, S, V)
    }


def reorder(cache, rows):
    """Row `i` of the self-attention caches becomes row `rows[i]`; cross keys/values stay."""
    moved = {name: ops.take(cache[name], rows, axis=0) for name in SELF_KEYS}
    return dict(cache, **moved)


def source_bias(source_mask, sources):
    """`(B, S)` (or beam-repeated `(B*W, S)`) True-for-real mask to `(B, 1, 1, S)` bias and `(B, 1, 1, 1)` rows-ok."""
    mask = ops.cast(source_mask, "bool")
    mask = ops.reshape(mask, (sources, -1, ops.shape(mask)[-1]))[:, 0]  # first beam's row of each source
    bias = ops.where(mask, 0.0, -1e9)[:, None, None, :]  # (B, 1, 1, S)
    row_ok = ops.any(mask, axis=-1)[:, None, None, None]  # (B, 1, 1, 1)
    return bias, row_ok


def _softmax_product(q, keys, values, bias=None, row_ok=None):
    """`softmax(q keys + bias) values` in float32 softmax; q `(.., M, K)`, keys `(.., K, t)`, values `(.., t, V)`."""
    logits = ops.cast(ops.matmul(q, keys), "float32")  # (.., M, t)
    if bias is not None:
        logits = logits + bias
    with warnings.catch_warnings():  # the first step attends to one key: Keras warns about a size-1 softmax
        warnings.filterwarnings("ignore", message="You are using a softmax over axis")
        scores = ops.softmax(logits, axis=-1)
    out = ops.matmul(ops.cast(scores, values.dtype), values)  # (.., M, V)
    if row_ok is not None:
        out = out * ops.cast(row_ok, out.dtype)
    return out


def self_attention_step(mha, h, keys, values, index):
    """Causal self-attention of `h (N, T, D)` at positions `[index, index + T)` over the growing cache.

    Returns `(output (N, T, D), keys (N, H, K, index + T), values (N, H, index + T, V))`.
    """
    scale = 1.0 / math.sqrt(mha.key_dim)
    q = mha.query_dense(h)  # (N, T, H, K)
    k = mha.key_dense(h)  # (N, T, H, K)
    v = mha.value_dense(h)  # (N, T, H, V)
    if mha.rotary is not None:
        q = mha.rotary(q, start_index=index)
        k = mha.rotary(k, start_index=index)
    keys = ops.concatenate([keys, ops.cast(ops.transpose(k, (0, 2, 3, 1)), keys.dtype)], axis=3)  # (N, H, K, t)
    values = ops.concatenate([values, ops.cast(ops.transpose(v, (0, 2, 1, 3)), values.dtype)], axis=2)  # (N, H, t, V)
    q = ops.transpose(q * ops.cast(scale, q.dtype), (0, 2, 1, 3))  # (N, H, T, K)
    length = h.shape[1]
    bias = None
    if length is None or length > 1:  # new tokens see each other causally; one token sees everything
        q_pos = ops.arange(ops.shape(h)[1])[:, None] + index  # (T, 1)
        k_pos = ops.arange(ops.shape(keys)[3])[None, :]  # (1, t)
        bias = ops.where(k_pos <= q_pos, 0.0, -1e9)[None, None]  # (1, 1, T, t)
    out = _softmax_product(q, keys, values, bias)  # (N, H, T, V)
    return mha.output_dense(ops.transpose(out, (0, 2, 1, 3))), keys, values  # (N, T, D)


def cross_attention_step(mha, h, keys, values, bias, row_ok):
    """Attention of `h (B*W, T, D)` over the source keys `(B, H, K, S)` / values `(B, H, S, V)`, shared by the W beams.

    Returns `(B*W, T, D)`.
    """
    scale = 1.0 / math.sqrt(mha.key_dim)
    sources = ops.shape(keys)[0]
    rows, length = ops.shape(h)[0], ops.shape(h)[1]
    q = mha.query_dense(h)  # (B*W, T, H, K)
    heads, key_dim = mha.num_heads, mha.key_dim
    q = ops.reshape(q * ops.cast(scale, q.dtype), (sources, -1, heads, key_dim))  # (B, W*T, H, K)
    q = ops.transpose(q, (0, 2, 1, 3))  # (B, H, W*T, K)
    out = _softmax_product(q, keys, values, bias, row_ok)  # (B, H, W*T, V)
    out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (rows, length, heads, mha.value_dim or key_dim))
    return mha.output_dense(out)  # (B*W, T, D)
