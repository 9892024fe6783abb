"""The attention products of `attention_kernels.KERNELS`: the code each kernel runs.

`zoo.layers.attention_kernels` decides which kernel a `MultiHeadAttention`
call gets; this module computes it. `sequence_length_attention` is the one
function in `zoo/layers` that calls a backend's own attention (JAX's),
behind the backend check of the kernel choice (DESIGN.md); the other two
are `keras.ops`. Shapes: `q (B, T, H, K)`, `k (B, S, H, K)`,
`v (B, S, H, V)`; masks are boolean `(B|1, H|1, T, S)`, True = attend.
"""

import keras
from keras import ops


def sequence_length_attention(q, k, v, scale, choice, causal=False, key_lengths=None):
    """`jax.nn.dot_product_attention` fed lengths and `is_causal`, on padded lengths.

    `q (B, T, H, K)`, `k (B, S, H, K)`, `v (B, S, H, K)`; `key_lengths (B,)`:
    key positions from `key_lengths[b]` on are not attended. A row with no
    key (length 0) returns zeros: the kernel sees length 1 and the row is
    zeroed after, so no empty softmax ever runs and no NaN can reach the
    gradients. Returns `(B, T, H, K)`.
    """
    import jax.numpy as jnp
    from jax.nn import dot_product_attention

    batch, q_len, k_len = q.shape[0], q.shape[1], k.shape[1]
    k, v = k.astype(q.dtype), v.astype(q.dtype)
    if choice.query_length != q_len:
        q = jnp.pad(q, ((0, 0), (0, choice.query_length - q_len), (0, 0), (0, 0)))  # (B, Tp, H, K)
    if choice.key_length != k_len:
        pad = ((0, 0), (0, choice.key_length - k_len), (0, 0), (0, 0))
        k, v = jnp.pad(k, pad), jnp.pad(v, pad)  # (B, Sp, H, K)
    lengths = row_ok = None
    if key_lengths is not None:
        lengths = jnp.clip(jnp.asarray(key_lengths).astype("int32"), 0, k_len)  # (B,)
        row_ok = lengths > 0
        lengths = jnp.maximum(lengths, 1)
    elif choice.key_length != k_len and not causal:  # causal: padded keys follow every real query
        lengths = jnp.full((batch,), k_len, "int32")
    out = dot_product_attention(
        q, k, v, scale=scale, is_causal=causal, key_value_seq_lengths=lengths,
        implementation=choice.kernel,
    )  # (B, Tp, H, K)
    out = out[:, :q_len]
    if row_ok is not None:
        out = jnp.where(row_ok[:, None, None, None], out, jnp.zeros((), out.dtype))
    return out


def _large_negative(dtype):
    """A finite stand-in for -inf in `dtype`: float16's max is 65504, not 1e9."""
    return -45000.0 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def keras_attention(q, k, v, mask, scale):
    """`keras.ops.dot_product_attention` with `mask (B|1, H|1, T, S)` as a bias.

    The bias keeps the mask's own (smaller) shape; a fully masked row,
    which the kernel would average over all values, is zeroed.
    """
    bias = None
    if mask is not None:
        row_ok = ops.any(mask, axis=-1)[..., None]  # (B|1, H|1, T, 1): False = nothing to attend
        bias = ops.cast(ops.where(mask, 0.0, _large_negative(q.dtype)), q.dtype)  # (B|1, H|1, T, S)
    out = ops.dot_product_attention(q, k, v, bias=bias, scale=scale)  # (B, T, H, V)
    if mask is not None:
        out = out * ops.cast(ops.transpose(row_ok, (0, 2, 1, 3)), out.dtype)
    return out


def matmul_attention(q, k, v, mask, scale, return_scores=False, dropout=None):
    """Two batched matmuls in `(B, H, T, .)` layout; returns `(out (B, T, H, V), scores or None)`.

    TensorFlow has no fused kernel: its `dot_product_attention` is einsums
    plus a pass over the `(B, H, T, S)` logits for the scale and three for a
    boolean mask; this form scales the queries instead and adds the mask as
    a bias (1.2x faster forward + backward for the whole layer on CPU,
    BENCHMARKS.md). Scaling first also keeps float16 logits from
    overflowing. Softmax is float32; `dropout` (a callable) drops weights.
    """
    if mask is not None:
        row_ok = ops.any(mask, axis=-1)[..., None]  # (B|1, H|1, T, 1)
    q = ops.transpose(q * ops.cast(scale, q.dtype), (0, 2, 1, 3))  # (B, H, T, K)
    k = ops.transpose(k, (0, 2, 3, 1))  # (B, H, K, S)
    v = ops.transpose(v, (0, 2, 1, 3))  # (B, H, S, V)
    logits = ops.cast(ops.matmul(q, k), "float32")  # (B, H, T, S)
    if mask is not None:
        logits = logits + ops.where(mask, 0.0, -1e9)
    scores = ops.softmax(logits, axis=-1)  # float32 under any policy
    if mask is not None and return_scores:  # rows with nothing to attend: zeros
        scores = scores * ops.cast(row_ok, scores.dtype)
    dropped = dropout(scores) if dropout is not None else scores
    out = ops.matmul(ops.cast(dropped, v.dtype), v)  # (B, H, T, V)
    if mask is not None and not return_scores:
        out = out * ops.cast(row_ok, out.dtype)
    return ops.transpose(out, (0, 2, 1, 3)), (scores if return_scores else None)  # (B, T, H, V)
