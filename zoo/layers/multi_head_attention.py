"""Multi-head attention: the one attention core every zoo layer calls.

Written here rather than subclassing `keras.layers.MultiHeadAttention`
because we need three things Keras core does not do together: a key/value
cache for incremental decoding (growing self-attention cache and static
cross-attention keys/values), rotary positions applied between projection
and caching, and the contract that a fully masked query row yields zeros.
Weight layout is Keras core's (`(D, H, K)` projection kernels, `(H, V, D)`
output kernel), so weights copy across one to one.

The attention product itself is computed by the kernel that
`zoo.layers.attention_kernels` picks for each call (cuDNN fused attention
on a GPU with JAX, fed padding as lengths and causality as a flag;
`keras.ops.dot_product_attention` elsewhere on JAX / PyTorch; two batched
matmuls on TensorFlow and whenever weights are returned or dropped out).
This layer describes the call (shapes, dtype, which masks) and builds a
mask tensor only for the kernels that take one.
"""

import math

import keras
from keras import ops

from zoo.layers import attention_compute, attention_kernels
from zoo.layers.attention_input_checks import check_attention_call, check_attention_inputs
from zoo.layers.rotary_embedding import RotaryEmbedding


def expand_attention_mask(mask):
    """Brings a user mask of rank 2, 3 or 4 to (B, H|1, T|1, S)."""
    rank = len(mask.shape)
    if rank == 2:
        return mask[:, None, None, :]
    if rank == 3:
        return mask[:, None, :, :]
    return mask


def _write_cache(cache, update, index):
    """Writes `update (B, T, H, K)` into `cache (B, S, H, K)` at positions `[index, index + T)`.

    Not `ops.slice_update`: on TensorFlow that lowers to
    `XlaDynamicUpdateSlice`, which only runs under XLA, and exported decoders
    must run in a stock TF Serving without it. One decoding step (`T = 1`)
    is a scatter of `B` rows (`TensorScatterUpdate`, a core op); a longer
    prefill selects positions with a `where`.
    """
    update = ops.cast(update, cache.dtype)
    if update.shape[1] == 1:
        batch = ops.shape(cache)[0]
        rows = ops.stack([ops.arange(batch), ops.full((batch,), index, "int32")], axis=1)  # (B, 2)
        return ops.scatter_update(cache, rows, update[:, 0])
    length = update.shape[1]
    positions = ops.arange(ops.shape(cache)[1])[None, :, None, None]  # (1, S, 1, 1)
    padded = ops.pad(update, [[0, 0], [0, cache.shape[1] - length], [0, 0], [0, 0]])
    inside = ops.logical_and(positions >= index, positions < index + length)
    return ops.where(inside, ops.roll(padded, index, axis=1), cache)


def merge_attention_masks(*masks):
    """Logical AND of boolean masks of any accepted rank; None when all are None."""
    merged = None
    for mask in masks:
        if mask is None:
            continue
        mask = expand_attention_mask(ops.cast(mask, "bool"))
        merged = mask if merged is None else ops.logical_and(merged, mask)
    return merged


def _check_mask_static(mask, batch, q_len, k_len, num_heads):
    """Raises a ValueError when a mask's rank or static shape cannot fit."""
    rank = len(mask.shape)
    if rank not in (2, 3, 4):
        raise ValueError(
            "attention_mask must have rank 2 (B, S), 3 (B, T, S) or 4 (B, H, T, S), "
            f"True = attend. Received: rank {rank}, shape {tuple(mask.shape)}"
        )
    full = (batch, num_heads, q_len, k_len)
    expected = {2: (batch, k_len), 3: (batch, q_len, k_len), 4: full}[rank]
    for got, want in zip(mask.shape, expected):
        if got is None or want is None or got == 1 or got == want:
            continue
        raise ValueError(
            f"attention_mask does not broadcast to the expected {expected} "
            f"(batch, heads, query length, key length = {full}). "
            f"Received: attention_mask of shape {tuple(mask.shape)}"
        )


@keras.saving.register_keras_serializable(package="zoo")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with masks and a KV cache.

    Computes `softmax(Q K^T / sqrt(K)) V` per head, with `Q = query W_Q`,
    `K = key W_K`, `V = value W_V`, then concatenates heads and projects with
    `W_O` (Vaswani et al., 2017, section 3.2). Masks are boolean, True means
    "may attend"; a padding mask, a causal mask, Keras' implicit masks and the
    cache's "not yet written" positions are all combined with a logical AND.
    A query row with no key to attend to returns zeros, never NaN. Softmax
    runs in float32 whatever the compute dtype. The kernel is chosen per
    call (`zoo.layers.attention_kernels`): cuDNN fused attention on a GPU
    with JAX when the masks are causal and/or right padding given as
    `key_lengths`; `last_kernel` says which ran, and
    `attention_kernel(name)` forces one.

    Args:
        num_heads: int. Number of heads `H`.
        key_dim: int. Per-head width `K` of queries and keys.
        value_dim: int. Per-head width of values. Defaults to `key_dim`.
        dropout: float. Dropout rate on the attention weights. Defaults to `0.0`.
        use_bias: bool. Biases in the four projections. Defaults to `True`.
        qkv_bias: bool or None. Biases in the query, key and value
            projections only (the output projection follows `use_bias`), as
            timm's and HF ViT's `qkv_bias`. None follows `use_bias`.
            Defaults to `None`.
        output_dim: int. Width of the output projection. Defaults to the
            query's last dimension.
        use_rotary: bool. Rotate queries and keys by their positions (RoPE)
            before the dot product. Defaults to `False`.
        rotary_max_wavelength: int. RoPE base wavelength. Defaults to `10000`.
        kernel_initializer: initializer for projection kernels.
            Defaults to `"glorot_uniform"`.
        bias_initializer: initializer for projection biases.
            Defaults to `"zeros"`.

    Call arguments:
        query: `(B, T, D)` queries.
        value: `(B, S, D)` values (and keys, unless `key` is given).
        key: `(B, S, D)` keys. Defaults to `value`.
        attention_mask: boolean `(B, S)`, `(B, T, S)` or `(B, H, T, S)`.
        use_causal_mask: bool. Query `t` attends only to keys at positions
            `<= t` (its absolute position when decoding with a cache).
        return_attention_scores: bool. Also return the `(B, H, T, S)` weights.
        cache: `(key, value)` tuple of `(B, S_max, H, K)` tensors.
            With `cache_index`, a self-attention cache: this call's keys and
            values are written at `cache_index` and attention runs over the
            positions written so far. Without `cache_index`, static
            cross-attention keys/values from `compute_cache` (the key/value
            projections are skipped).
        cache_index: int or scalar tensor, position of the first query token.
        training: bool. Enables attention dropout.
        key_lengths: int `(B,)`. Right padding of the keys: positions from
            `key_lengths[b]` on are not attended (ANDed with other masks).
            The same as the mask `arange(S) < key_lengths`, but fused
            kernels take it without a mask tensor.

    Returns:
        `output (B, T, D)`; then `scores (B, H, T, S)` if requested; then the
        updated cache if a cache was passed.

    Example:
    >>> mha = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = keras.ops.ones((1, 3, 8))
    >>> tuple(mha(x, x, use_causal_mask=True).shape)
    (1, 3, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
        Su et al., "RoFormer: Enhanced Transformer with Rotary Position
        Embedding", 2021.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        qkv_bias=None,
        output_dim=None,
        use_rotary=False,
        rotary_max_wavelength=10000,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.qkv_bias = qkv_bias
        self.output_dim = output_dim
        self.use_rotary = use_rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _projection(self, name, equation, output_shape, bias_axes, use_bias):
        return keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if use_bias else None,
            # A fresh initializer per projection, as Keras core does.
            kernel_initializer=keras.initializers.deserialize(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        check_attention_inputs({"query": query_shape, "value": value_shape, "key": key_shape})
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        h, k = self.num_heads, self.key_dim
        v = self.value_dim or self.key_dim
        out = self.output_dim or query_shape[-1]
        qkv_bias = self.use_bias if self.qkv_bias is None else self.qkv_bias
        self.query_dense = self._projection("query", "btd,dhk->bthk", (None, h, k), "hk", qkv_bias)
        self.key_dense = self._projection("key", "bsd,dhk->bshk", (None, h, k), "hk", qkv_bias)
        self.value_dense = self._projection("value", "bsd,dhk->bshk", (None, h, v), "hk", qkv_bias)
        self.output_dense = self._projection(
            "attention_output", "bthv,hvd->btd", (None, out), "d", self.use_bias
        )
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((query_shape[0], query_shape[1], h, v))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.rotary = (
            RotaryEmbedding(self.rotary_max_wavelength, dtype=self.dtype_policy)
            if self.use_rotary
            else None
        )
        self.built = True

    # -- cache -----------------------------------------------------------
    def compute_cache(self, value, key=None):
        """Static cross-attention cache: `(key, value)`, each `(B, S, H, K)`.

        Computed once per source sentence; pass it back as `cache` with no
        `cache_index` and the key/value projections are skipped.
        """
        key = value if key is None else key
        if not self.built:
            self.build(value.shape, value.shape, key.shape)
        return self.key_dense(key), self.value_dense(value)

    def init_cache(self, batch_size, max_length):
        """Empty self-attention cache for `max_length` positions."""
        v = self.value_dim or self.key_dim
        dtype = self.compute_dtype
        return (
            ops.zeros((batch_size, max_length, self.num_heads, self.key_dim), dtype),
            ops.zeros((batch_size, max_length, self.num_heads, v), dtype),
        )

    # -- masks -----------------------------------------------------------
    def _combined_mask(self, q_len, k_len, masks):
        """Boolean (B|1, H|1, T, S) mask from `MaskParts`, or None when everything attends."""
        query_mask, value_mask, key_mask = masks.implicit
        cache_index = masks.cache_index
        parts = []
        if query_mask is not None:
            parts.append(ops.cast(query_mask, "bool")[:, None, :, None])
        # Implicit key/value masks describe this call's inputs, so they do not
        # apply to a cache (static or growing).
        if cache_index is None:
            for m in (value_mask, key_mask):
                if m is not None:
                    parts.append(ops.cast(m, "bool")[:, None, None, :])
        if masks.attention_mask is not None:
            parts.append(expand_attention_mask(ops.cast(masks.attention_mask, "bool")))
        if masks.key_lengths is not None:
            inside = ops.arange(k_len)[None, :] < ops.cast(masks.key_lengths, "int32")[:, None]  # (B, S)
            parts.append(inside[:, None, None, :])
        if masks.use_causal_mask or cache_index is not None:
            offset = 0 if cache_index is None else cache_index
            q_pos = ops.expand_dims(ops.arange(q_len) + offset, 1)  # (T, 1)
            k_pos = ops.expand_dims(ops.arange(k_len), 0)  # (1, S)
            if masks.use_causal_mask:
                allowed = k_pos <= q_pos
            else:  # cache positions not yet written are never attended
                allowed = ops.logical_and(k_pos < offset + q_len, q_pos >= 0)
            parts.append(allowed[None, None, :, :])
        if not parts:
            return None
        mask = parts[0]
        for m in parts[1:]:
            mask = ops.logical_and(mask, m)
        return mask

    # -- attention -------------------------------------------------------
    @property
    def last_kernel(self):
        """The `attention_kernels.KernelChoice` of the latest call, or None.

        Set when a call runs or is traced (under `jit`, once per
        compilation): which kernel computed the attention, why, and why each
        other kernel could not.
        """
        return getattr(self, "_last_kernel", None)

    def _attend(self, q, k, v, masks, cached, return_scores, training):
        """softmax(q k^T / sqrt(K)) v; q (B,T,H,K), k (B,S,H,K), v (B,S,H,V).

        Returns `(out (B, T, H, V), scores (B, H, T, S) or None)`.
        """
        scale = 1.0 / math.sqrt(self.key_dim)
        use_dropout = bool(training) and self.dropout > 0.0
        call = attention_kernels.describe_call(q, k, v, masks.kind(), cached, return_scores, use_dropout)
        choice = attention_kernels.choose_kernel(call, heads=q.shape[2])
        self._last_kernel = choice
        if choice.kernel in ("cudnn", "xla"):
            out = attention_compute.sequence_length_attention(
                q, k, v, scale, choice, causal=masks.use_causal_mask, key_lengths=masks.key_lengths
            )
            return out, None
        mask = self._combined_mask(ops.shape(q)[1], ops.shape(k)[1], masks)
        if choice.kernel == "keras":
            return attention_compute.keras_attention(q, k, v, mask, scale), None
        dropout = (lambda scores: self.dropout_layer(scores, training=training)) if use_dropout else None
        return attention_compute.matmul_attention(q, k, v, mask, scale, return_scores, dropout)

    def call(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        cache=None,
        cache_index=None,
        training=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        key_lengths=None,
    ):
        # query_mask / value_mask / key_mask are filled in by Keras from the
        # inputs' implicit masks (e.g. an Embedding with mask_zero=True).
        check_attention_call(self, query, value, key, cache, cache_index)
        key = value if key is None else key
        start = 0 if cache_index is None else cache_index
        q = self.query_dense(query)  # (B, T, H, K)
        if self.rotary is not None:
            q = self.rotary(q, start_index=start)
        if cache is not None and cache_index is None:
            k, v = cache  # static cross-attention keys/values
            new_cache = cache
        else:
            k = self.key_dense(key)  # (B, S, H, K)
            v = self.value_dense(value)  # (B, S, H, V)
            if self.rotary is not None:
                k = self.rotary(k, start_index=start)
            if cache is not None:
                k = _write_cache(cache[0], k, cache_index)  # (B, S, H, K)
                v = _write_cache(cache[1], v, cache_index)  # (B, S, H, V)
                new_cache = (k, v)
        if attention_mask is not None:
            _check_mask_static(attention_mask, query.shape[0], q.shape[1], k.shape[1], self.num_heads)
        if key_lengths is not None:
            key_lengths = attention_kernels.check_key_lengths(key_lengths, query.shape[0])
        masks = attention_kernels.MaskParts(
            attention_mask, (query_mask, value_mask, key_mask), use_causal_mask, cache_index, key_lengths
        )
        out, scores = self._attend(q, k, v, masks, cache is not None, return_attention_scores, training)
        output = self.output_dense(out)  # (B, T, D)
        results = (output,)
        if return_attention_scores:
            results += (scores,)
        if cache is not None:
            results += (new_cache,)
        return results[0] if len(results) == 1 else results

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return tuple(query_shape[:-1]) + (self.output_dim or query_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            value_dim=self.value_dim,
            dropout=self.dropout,
            use_bias=self.use_bias,
            qkv_bias=self.qkv_bias,
            output_dim=self.output_dim,
            use_rotary=self.use_rotary,
            rotary_max_wavelength=self.rotary_max_wavelength,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config
