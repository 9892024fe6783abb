"""Encoder self-attention: every position attends to every other."""

import keras
from zoo.layers.attention_sublayer import AttentionSublayer, pack_results, unpack_results
from zoo.layers.multi_head_attention import merge_attention_masks


@keras.saving.register_keras_serializable(package="zoo")
class GlobalSelfAttention(AttentionSublayer):
    """Self-attention over the whole sequence, inside Add & Norm.

    The encoder's sub-layer: `x` is query, key and value, and every
    position sees every non-padded position. Arguments as
    `AttentionSublayer`.

    Call arguments:
        x: `(B, S, D)` sequence.
        attention_mask: boolean `(B, S)` padding mask or `(B, S, S)` mask,
            True = attend. Keras' implicit mask of `x` is used too.
        return_attention_scores: bool. Also return `(B, H, S, S)` weights.
        training: bool.

    Example:
    >>> layer = GlobalSelfAttention(num_heads=2, key_dim=4)
    >>> tuple(layer(keras.ops.ones((2, 6, 8))).shape)
    (2, 6, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.3.
    """

    def call(self, x, attention_mask=None, return_attention_scores=False, training=None, mask=None):
        # Keras' implicit mask of x marks padded keys.
        attention_mask = merge_attention_masks(attention_mask, mask)
        h = self._pre_norm(x)
        results = self.attention(
            h, h, attention_mask=attention_mask,
            return_attention_scores=return_attention_scores, training=training,
        )
        out, scores, _ = unpack_results(results, return_attention_scores, False)
        return pack_results(self._add_and_norm(x, out, training), scores, None, return_attention_scores)
