"""Transformer decoder block: causal self-attention, cross-attention, feed-forward."""

import keras

from zoo.layers import attention_cache
from zoo.layers.attention_sublayer import unpack_results
from zoo.layers.causal_self_attention import CausalSelfAttention
from zoo.layers.cross_attention import CrossAttention
from zoo.layers.encoder_block import EncoderBlock


@keras.saving.register_keras_serializable(package="zoo")
class DecoderBlock(EncoderBlock):
    """One decoder layer: `CausalSelfAttention`, `CrossAttention`, `FeedForward`.

    Takes the same arguments as `EncoderBlock` (it shares its configuration
    and feed-forward); rotary positions, when on, apply to self-attention
    only, since source and target positions are not comparable.

    Call arguments:
        x: `(B, T, D)` target states.
        context: `(B, S, D)` encoder outputs. Optional when `cache` is given.
        attention_mask: boolean `(B, T)` target padding mask.
        context_mask: boolean `(B, S)` source padding mask, True = real token.
        context_lengths: int `(B,)`. The source padding as lengths (right
            padding), which fused GPU kernels take without a mask tensor.
        cache: `(self_cache, cross_cache)` from `init_cache`.
        cache_index: int or scalar tensor, position of `x`'s first token.
        return_attention_scores: bool. Also return a dict with `"self"`
            `(B, H, T, T|S_max)` and `"cross"` `(B, H, T, S)` weights.
        training: bool.

    Returns:
        `(B, T, D)`; plus the scores dict if requested; plus the updated
        cache if one was given.

    Example:
    >>> block = DecoderBlock(d_model=8, num_heads=2, d_ff=16)
    >>> context = keras.ops.ones((1, 5, 8))
    >>> cache = block.init_cache(context, max_length=4)
    >>> out, cache = block(keras.ops.ones((1, 1, 8)), cache=cache, cache_index=0)
    >>> tuple(out.shape)
    (1, 1, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.1.
    """

    def _create_attention(self):
        self.causal_self_attention = CausalSelfAttention(**self._attention_args(), name="causal_self_attention")
        self.cross_attention = CrossAttention(**self._attention_args(use_rotary=False), name="cross_attention")

    def build(self, x_shape, context_shape=None):
        self.causal_self_attention.build(x_shape)
        self.cross_attention.build(x_shape, context_shape or x_shape)
        self.feed_forward.build(x_shape)

    def init_cache(self, context, max_length=None, beam_width=1):
        """The decoding cache of `context (B, S, D)` encoder outputs, for `B * beam_width` rows.

        With `max_length=None`, the growing cache of `attention_cache` (a
        dict; `decode_step` runs on it): self-attention keys/values that grow
        with the positions decoded, and cross-attention keys/values once per
        source, shared by its `beam_width` rows. With an int `max_length`,
        `(self_cache, cross_cache)` buffers of `max_length` positions for
        `call(..., cache=, cache_index=)` (the form a JAX loop needs: fixed
        shapes), repeated `beam_width` times per source.
        """
        if not self.built:
            self.build((context.shape[0], None, self.d_model), tuple(context.shape))
        if max_length is None:
            return attention_cache.init_layer_cache(
                self.causal_self_attention.attention, self.cross_attention.attention, context, beam_width
            )
        cross_cache = self.cross_attention.compute_cache(context)  # once per source
        if beam_width > 1:
            cross_cache = tuple(keras.ops.repeat(x, beam_width, axis=0) for x in cross_cache)
        batch = keras.ops.shape(context)[0] * beam_width
        self_cache = self.causal_self_attention.init_cache(batch, max_length, self.d_model)
        return self_cache, cross_cache

    def decode_step(self, x, cache, cache_index, context_mask=None):
        """`x (B*W, T, D)` at positions `[cache_index, cache_index + T)` through a growing cache.

        `cache` comes from `init_cache(context, max_length=None, beam_width=W)`;
        `context_mask` is the `(B, S)` (or beam-repeated `(B*W, S)`) source
        padding mask, True = real token. Returns `(output (B*W, T, D), cache)`.
        """
        self_layer, cross_layer = self.causal_self_attention, self.cross_attention
        h = self_layer._pre_norm(x)
        out, keys, values = attention_cache.self_attention_step(
            self_layer.attention, h, cache["self_keys"], cache["self_values"], cache_index
        )
        x = self_layer._add_and_norm(x, out)
        sources = keras.ops.shape(cache["cross_keys"])[0]
        if context_mask is None:
            context_mask = keras.ops.ones((sources, keras.ops.shape(cache["cross_keys"])[-1]), "bool")
        bias, row_ok = attention_cache.source_bias(context_mask, sources)
        out = attention_cache.cross_attention_step(
            cross_layer.attention, cross_layer._pre_norm(x), cache["cross_keys"], cache["cross_values"], bias, row_ok
        )
        x = cross_layer._add_and_norm(x, out)
        return self.feed_forward(x), dict(cache, self_keys=keys, self_values=values)

    def call(
        self,
        x,
        context=None,
        attention_mask=None,
        context_mask=None,
        cache=None,
        cache_index=None,
        return_attention_scores=False,
        training=None,
        context_lengths=None,
    ):
        self_cache, cross_cache = (None, None) if cache is None else cache
        if cache is not None and cache_index is None:
            raise ValueError("DecoderBlock: a cache needs a cache_index (the position of x's first token).")
        if cache is None and context is None:
            raise ValueError("DecoderBlock needs `context` (encoder outputs) unless a cache is given.")
        results = self.causal_self_attention(
            x, attention_mask=attention_mask, cache=self_cache, cache_index=cache_index,
            return_attention_scores=return_attention_scores, training=training,
        )
        x, self_scores, self_cache = unpack_results(results, return_attention_scores, self_cache is not None)
        results = self.cross_attention(
            x, context, context_mask=context_mask, cache=cross_cache,
            return_attention_scores=return_attention_scores, training=training,
            context_lengths=context_lengths,
        )
        x, cross_scores, cross_cache = unpack_results(results, return_attention_scores, cross_cache is not None)
        x = self.feed_forward(x, training=training)
        outputs = (x,)
        if return_attention_scores:
            outputs += ({"self": self_scores, "cross": cross_scores},)
        if cache is not None:
            outputs += ((self_cache, cross_cache),)
        return outputs[0] if len(outputs) == 1 else outputs
