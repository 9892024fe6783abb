"""Transformer encoder block: self-attention then feed-forward."""

import keras

from zoo.layers.feed_forward import FeedForward
from zoo.layers.global_self_attention import GlobalSelfAttention


@keras.saving.register_keras_serializable(package="zoo")
class EncoderBlock(keras.layers.Layer):
    """One encoder layer: `GlobalSelfAttention` then `FeedForward`.

    Each sub-layer sits in Add & Norm, post-norm as in the paper and Marian
    or pre-norm as in ViT (`norm_first=True`).

    Args:
        d_model: int. Model width `D`.
        num_heads: int. Attention heads `H`; must divide `d_model`.
        d_ff: int. Feed-forward inner width.
        dropout: float. Residual dropout. Defaults to `0.0`.
        attention_dropout: float. Dropout on attention weights. Defaults to `0.0`.
        activation: str. Feed-forward activation. Defaults to `"relu"`.
        norm_first: bool. Pre-norm when True. Defaults to `False`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        use_bias: bool. Biases in attention and feed-forward. Defaults to `True`.
        qkv_bias: bool or None. Biases in the attention's query, key and
            value projections only (timm / HF ViT `qkv_bias`); None follows
            `use_bias`. Defaults to `None`.
        drop_path_rate: float. Stochastic depth rate. Defaults to `0.0`.
        use_rotary: bool. Rotary positions in self-attention. Defaults to `False`.
        kernel_initializer: Defaults to `"glorot_uniform"`.

    Call arguments:
        x: `(B, S, D)`.
        attention_mask: boolean `(B, S)` padding mask or `(B, S, S)`.
        lengths: int `(B,)`. Right padding as lengths (see
            `GlobalSelfAttention`); fused GPU kernels take it as such.
        return_attention_scores: bool. Also return `(B, H, S, S)` weights
            (`(B, H, num_queries, S)` with `num_queries`).
        training: bool.
        num_queries: int or None. Run the block for the first `num_queries`
            positions only (all positions still serve as keys and values);
            the `(B, num_queries, D)` output equals the first rows of the
            full one. Defaults to None (all positions).

    Example:
    >>> block = EncoderBlock(d_model=8, num_heads=2, d_ff=16)
    >>> tuple(block(keras.ops.ones((2, 5, 8))).shape)
    (2, 5, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.1.
        Dosovitskiy et al., "An Image is Worth 16x16 Words", 2021.
    """

    def __init__(
        self,
        d_model,
        num_heads,
        d_ff,
        dropout=0.0,
        attention_dropout=0.0,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        use_bias=True,
        qkv_bias=None,
        drop_path_rate=0.0,
        use_rotary=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(d_model, int) or not isinstance(num_heads, int) or num_heads <= 0 or d_model % num_heads:
            raise ValueError(
                f"num_heads must divide d_model. Received: d_model={d_model}, num_heads={num_heads}"
            )
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_bias = use_bias
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.use_rotary = use_rotary
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        self._create_attention()
        self.feed_forward = FeedForward(
            d_model,
            d_ff,
            activation=activation,
            use_bias=use_bias,
            **self._residual_args(),
            name="feed_forward",
        )

    def _create_attention(self):
        self.self_attention = GlobalSelfAttention(**self._attention_args(), name="self_attention")

    def _residual_args(self):
        return dict(
            dropout=self.dropout,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            drop_path_rate=self.drop_path_rate,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            dtype=self.dtype_policy,
        )

    def _attention_args(self, use_rotary=None):
        return dict(
            num_heads=self.num_heads,
            key_dim=self.d_model // self.num_heads,
            attention_dropout=self.attention_dropout,
            use_bias=self.use_bias,
            qkv_bias=self.qkv_bias,
            use_rotary=self.use_rotary if use_rotary is None else use_rotary,
            **self._residual_args(),
        )

    def build(self, input_shape):
        self.self_attention.build(input_shape)
        self.feed_forward.build(input_shape)

    def call(
        self, x, attention_mask=None, return_attention_scores=False, training=None, mask=None,
        num_queries=None, lengths=None,
    ):
        results = self.self_attention(
            x, attention_mask=attention_mask, return_attention_scores=return_attention_scores,
            training=training, mask=mask, num_queries=num_queries, lengths=lengths,
        )
        x, scores = results if return_attention_scores else (results, None)
        x = self.feed_forward(x, training=training)
        return (x, scores) if return_attention_scores else x

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model,
            num_heads=self.num_heads,
            d_ff=self.d_ff,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            activation=self.activation,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            use_bias=self.use_bias,
            qkv_bias=self.qkv_bias,
            drop_path_rate=self.drop_path_rate,
            use_rotary=self.use_rotary,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
