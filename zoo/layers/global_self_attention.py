"""Encoder self-attention: every position attends to every other."""

import numbers

import keras
from zoo.layers.attention_sublayer import AttentionSublayer, pack_results, unpack_results
from zoo.layers.multi_head_attention import merge_attention_masks


def check_num_queries(num_queries, x, mask):
    """Raises a ValueError unless `num_queries` is a valid query prefix of `x`."""
    length = x.shape[1]
    valid = isinstance(num_queries, numbers.Integral) and not isinstance(num_queries, bool)
    if not valid or num_queries < 1 or (length is not None and num_queries > length):
        raise ValueError(
            "num_queries must be an int from 1 to the sequence length "
            f"{length}. Received: num_queries={num_queries!r}"
        )
    if mask is not None:
        # Keras would hand the (B, S) mask on to a (B, num_queries, D) output.
        raise ValueError(
            "num_queries cannot be combined with a Keras implicit mask on x; "
            "pass the padding mask as attention_mask instead. Received: a "
            f"mask of shape {tuple(mask.shape)} on x of shape {tuple(x.shape)}"
        )


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
        lengths: int `(B,)`. Right padding given as lengths: positions from
            `lengths[b]` on are not attended. Fused GPU kernels take it
            without a mask tensor (`MultiHeadAttention`'s `key_lengths`).
        return_attention_scores: bool. Also return `(B, H, S, S)` weights
            (`(B, H, num_queries, S)` with `num_queries`).
        training: bool.
        num_queries: int or None. Compute the output of the first
            `num_queries` positions only: they query, every position still
            gives keys and values. The `(B, num_queries, D)` result equals
            the first rows of the full output (in training, dropout is drawn
            for these rows only) at a fraction of the cost; a
            classifier that reads only its class token runs its last block
            this way. Defaults to None (all positions).

    Example:
    >>> layer = GlobalSelfAttention(num_heads=2, key_dim=4)
    >>> tuple(layer(keras.ops.ones((2, 6, 8))).shape)
    (2, 6, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.2.3.
    """

    def call(
        self, x, attention_mask=None, return_attention_scores=False, training=None, mask=None,
        num_queries=None, lengths=None,
    ):
        # Keras' implicit mask of x marks padded keys.
        attention_mask = merge_attention_masks(attention_mask, mask)
        h = queries = self._pre_norm(x)
        if num_queries is not None:
            check_num_queries(num_queries, x, mask)
            x, queries = x[:, :num_queries], h[:, :num_queries]
            if attention_mask is not None:  # rank 4 (B, H|1, T|1, S) after merging
                attention_mask = attention_mask[:, :, :num_queries]
        results = self.attention(
            queries, h, attention_mask=attention_mask,
            return_attention_scores=return_attention_scores, training=training, key_lengths=lengths,
        )
        out, scores, _ = unpack_results(results, return_attention_scores, False)
        return pack_results(self._add_and_norm(x, out, training), scores, None, return_attention_scores)
