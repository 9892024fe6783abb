"""Add & Norm: the residual wrapper shared by every Transformer sub-layer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class ResidualSublayer(keras.layers.Layer):
    """Base class for a sub-layer wrapped in a residual connection and LayerNorm.

    Post-norm (the paper, Marian): `LayerNorm(x + Dropout(f(x)))`.
    Pre-norm (ViT, Model Garden, GPT-2): `x + Dropout(f(LayerNorm(x)))`.
    With `drop_path_rate > 0` the whole branch `f` is also dropped per example
    during training (stochastic depth), scaled to keep its expectation.

    Subclasses implement `call()` as `self._add_and_norm(x, f(self._pre_norm(x)))`
    and create their own weights in `build()` after calling `super().build()`.

    Args:
        dropout: float. Dropout on the branch output before the residual add.
            Defaults to `0.0`.
        norm_first: bool. Pre-norm when True, post-norm when False.
            Defaults to `False`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        drop_path_rate: float. Stochastic depth rate. Defaults to `0.0`.

    References:
        Vaswani et al., "Attention Is All You Need", 2017 (post-norm).
        Xiong et al., "On Layer Normalization in the Transformer
        Architecture", 2020 (pre-norm).
        Huang et al., "Deep Networks with Stochastic Depth", 2016.
    """

    def __init__(self, dropout=0.0, norm_first=False, layer_norm_epsilon=1e-5, drop_path_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, rate in (("dropout", dropout), ("drop_path_rate", drop_path_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1). Received: {name}={rate}")
        self.dropout = dropout
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.drop_path_rate = drop_path_rate
        self.supports_masking = True
        self._drop_path_seed = keras.random.SeedGenerator() if drop_path_rate > 0 else None

    def build(self, input_shape):
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.layer_norm.build(input_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def _pre_norm(self, x):
        return self.layer_norm(x) if self.norm_first else x

    def _add_and_norm(self, x, branch, training=None):
        branch = self.dropout_layer(branch, training=training)
        if self._drop_path_seed is not None and training:
            keep = 1.0 - self.drop_path_rate
            shape = (ops.shape(branch)[0],) + (1,) * (len(branch.shape) - 1)
            alive = keras.random.uniform(shape, seed=self._drop_path_seed) < keep
            branch = branch * ops.cast(alive, branch.dtype) / ops.cast(keep, branch.dtype)
        out = x + branch
        return out if self.norm_first else self.layer_norm(out)

    def get_config(self):
        config = super().get_config()
        config.update(
            dropout=self.dropout,
            norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            drop_path_rate=self.drop_path_rate,
        )
        return config
