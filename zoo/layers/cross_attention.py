"""Cross-attention: decoder queries over encoder keys and values."""

import keras

from zoo.layers.attention_sublayer import AttentionSublayer, pack_results, unpack_results


@keras.saving.register_keras_serializable(package="zoo")
class CrossAttention(AttentionSublayer):
    """Decoder queries attend over the encoder output, inside Add & Norm.

    The connection between encoder and decoder: queries come from the
    target sequence, keys and values from the encoded source (`context`).
    Only the query side is normalised under pre-norm; the context arrives
    normalised by the encoder. For decoding, `compute_cache(context)`
    projects the source keys/values once; later calls pass that cache and
    skip the projections. Arguments as `AttentionSublayer`.

    Call arguments:
        x: `(B, T, D)` decoder states (queries).
        context: `(B, S, D)` encoder outputs. Optional when `cache` is given.
        context_mask: boolean `(B, S)` source padding mask, True = real token.
            Keras' implicit mask of `context` is used when not given.
        context_lengths: int `(B,)`. The source padding as lengths (right
            padding): positions from `context_lengths[b]` on are not
            attended; fused GPU kernels take it without a mask tensor.
        cache: `(key, value)` from `compute_cache`, each `(B, S, H, K)`.
        return_attention_scores: bool. Also return `(B, H, T, S)` weights.
        training: bool.

    Example:
    >>> layer = CrossAttention(num_heads=2, key_dim=4)
    >>> tuple(layer(keras.ops.ones((2, 3, 8)), keras.ops.ones((2, 5, 8))).shape)
    (2, 3, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.3.
        Bahdanau et al., "Neural Machine Translation by Jointly Learning to
        Align and Translate", 2015.
    """

    def build(self, x_shape, context_shape=None):
        super(AttentionSublayer, self).build(x_shape)  # Add & Norm only
        self.attention.build(x_shape, context_shape or x_shape)

    def compute_cache(self, context):
        """Source keys/values, computed once per source: `(key, value)`."""
        if not self.built:
            self.build((context.shape[0], None, context.shape[-1]), tuple(context.shape))
        return self.attention.compute_cache(context)

    def call(
        self,
        x,
        context=None,
        context_mask=None,
        cache=None,
        return_attention_scores=False,
        training=None,
        context_lengths=None,
    ):
        if context is None and cache is None:
            raise ValueError("CrossAttention needs `context` (encoder outputs) or a `cache` from compute_cache().")
        h = self._pre_norm(x)
        results = self.attention(
            h, context, attention_mask=context_mask,
            return_attention_scores=return_attention_scores, cache=cache, training=training,
            key_lengths=context_lengths,
        )
        out, scores, cache = unpack_results(results, return_attention_scores, cache is not None)
        return pack_results(self._add_and_norm(x, out, training), scores, cache, return_attention_scores)
