"""The shared base of the three Transformer attention sub-layers."""

import keras

from zoo.layers.multi_head_attention import MultiHeadAttention
from zoo.layers.residual_sublayer import ResidualSublayer


def unpack_results(results, has_scores, has_cache):
    """Splits an attention call's results into (output, scores, cache)."""
    if not isinstance(results, tuple):
        return results, None, None
    results = list(results)
    output = results.pop(0)
    scores = results.pop(0) if has_scores else None
    cache = results.pop(0) if has_cache else None
    return output, scores, cache


def pack_results(output, scores, cache, has_scores):
    """The inverse of `unpack_results`: output [, scores] [, cache]."""
    results = (output,)
    if has_scores:
        results += (scores,)
    if cache is not None:
        results += (cache,)
    return results[0] if len(results) == 1 else results


@keras.saving.register_keras_serializable(package="zoo")
class AttentionSublayer(ResidualSublayer):
    """`MultiHeadAttention` inside Add & Norm; base of the three attention sub-layers.

    Holds the attention arguments and builds `self.attention`; the
    subclasses (`GlobalSelfAttention`, `CausalSelfAttention`,
    `CrossAttention`) differ only in what they attend to and how they mask.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Per-head width of queries and keys.
        value_dim: int. Per-head width of values. Defaults to `key_dim`.
        dropout: float. Dropout on the sub-layer output. Defaults to `0.0`.
        attention_dropout: float. Dropout on attention weights. Defaults to `0.0`.
        use_bias: bool. Biases in the attention projections. Defaults to `True`.
        qkv_bias: bool or None. Biases in the query, key and value
            projections only; None follows `use_bias`. Defaults to `None`.
        norm_first: bool. Pre-norm (True) or post-norm (False). Defaults to `False`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        drop_path_rate: float. Stochastic depth rate. Defaults to `0.0`.
        use_rotary: bool. Rotary positions on queries and keys. Defaults to `False`.
        kernel_initializer: initializer for the projection kernels.
            Defaults to `"glorot_uniform"`.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        attention_dropout=0.0,
        use_bias=True,
        qkv_bias=None,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        drop_path_rate=0.0,
        use_rotary=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(
            dropout=dropout,
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            drop_path_rate=drop_path_rate,
            **kwargs,
        )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.attention_dropout = attention_dropout
        self.use_bias = use_bias
        self.qkv_bias = qkv_bias
        self.use_rotary = use_rotary
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        # Built here so argument errors surface at construction.
        self.attention = MultiHeadAttention(
            num_heads=num_heads,
            key_dim=key_dim,
            value_dim=value_dim,
            dropout=attention_dropout,
            use_bias=use_bias,
            qkv_bias=qkv_bias,
            use_rotary=use_rotary,
            kernel_initializer=kernel_initializer,
            dtype=self.dtype_policy,
            name="attention",
        )

    def build(self, x_shape):
        super().build(x_shape)
        self.attention.build(x_shape, x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            value_dim=self.value_dim,
            attention_dropout=self.attention_dropout,
            use_bias=self.use_bias,
            qkv_bias=self.qkv_bias,
            use_rotary=self.use_rotary,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
