"""Transformer decoder block: causal self-attention, cross-attention, feed-forward."""

import keras

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

    def init_cache(self, context, max_length):
        """`(self_cache, cross_cache)` for decoding up to `max_length` tokens."""
        batch = keras.ops.shape(context)[0]
        if not self.built:
            self.build((context.shape[0], None, self.d_model), tuple(context.shape))
        self_cache = self.causal_self_attention.init_cache(batch, max_length, self.d_model)
        return self_cache, self.cross_attention.compute_cache(context)

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
