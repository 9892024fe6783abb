"""Decoder (masked) self-attention: position i sees positions <= i only."""

import keras

from zoo.layers.attention_sublayer import AttentionSublayer, pack_results, unpack_results


@keras.saving.register_keras_serializable(package="zoo")
class CausalSelfAttention(AttentionSublayer):
    """Causal self-attention inside Add & Norm, with a growing key/value cache.

    The decoder's first sub-layer: a causal mask keeps position `i` from
    seeing positions after it, so training on whole targets matches
    generating one token at a time. With a cache, each call writes its
    keys/values at `cache_index` and attends over everything written so far.
    Arguments as `AttentionSublayer`.

    Call arguments:
        x: `(B, T, D)` target sequence (or the `T` new tokens when caching).
        attention_mask: optional boolean padding mask `(B, T)` / `(B, T, S)`.
        cache: `(key, value)` tuple from `init_cache`, each `(B, S_max, H, K)`.
        cache_index: int or scalar tensor, position of the first token of `x`.
        return_attention_scores: bool.
        training: bool.

    Returns:
        `(B, T, D)`; plus scores if requested; plus the updated cache if given.

    Example:
    >>> layer = CausalSelfAttention(num_heads=2, key_dim=4)
    >>> cache = layer.init_cache(batch_size=1, max_length=8, d_model=8)
    >>> out, cache = layer(keras.ops.ones((1, 1, 8)), cache=cache, cache_index=0)
    >>> tuple(out.shape)
    (1, 1, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.3.
    """

    def init_cache(self, batch_size, max_length, d_model):
        """Zeroed `(key, value)` cache for `max_length` positions."""
        if not self.built:
            self.build((batch_size, None, d_model))
        return self.attention.init_cache(batch_size, max_length)

    def call(
        self,
        x,
        attention_mask=None,
        cache=None,
        cache_index=None,
        return_attention_scores=False,
        training=None,
    ):
        if cache is not None and cache_index is None:
            raise ValueError("CausalSelfAttention: a cache needs a cache_index (the position of x's first token).")
        h = self._pre_norm(x)
        results = self.attention(
            h, h, attention_mask=attention_mask, use_causal_mask=True,
            return_attention_scores=return_attention_scores,
            cache=cache, cache_index=cache_index, training=training,
        )
        out, scores, cache = unpack_results(results, return_attention_scores, cache is not None)
        return pack_results(self._add_and_norm(x, out, training), scores, cache, return_attention_scores)
