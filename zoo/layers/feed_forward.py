"""Position-wise feed-forward network inside Add & Norm."""

import keras

from zoo.layers.residual_sublayer import ResidualSublayer

_ACTIVATIONS = ("relu", "gelu", "gelu_approximate", "swish", "silu")


@keras.saving.register_keras_serializable(package="zoo")
class FeedForward(ResidualSublayer):
    """Two dense layers applied to every position: `W_2 act(W_1 x + b_1) + b_2`.

    The Transformer's second sub-layer (section 3.3 of the paper), the
    "MLP" of ViT. Wrapped in Add & Norm like every sub-layer.

    Args:
        d_model: int. Input and output width `D`.
        d_ff: int. Inner width (2048 in the paper's base model, `4 D` in ViT).
        activation: str. `"relu"` (paper), `"gelu"` (exact erf GELU: ViT,
            BERT), `"gelu_approximate"` (tanh GELU), `"swish"`/`"silu"`
            (Marian). Defaults to `"relu"`.
        dropout: float. Dropout on the output, before the residual add.
            Defaults to `0.0`.
        activation_dropout: float. Dropout after the activation. Defaults to `0.0`.
        use_bias: bool. Defaults to `True`.
        norm_first: bool. Pre-norm (True) or post-norm (False). Defaults to `False`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        drop_path_rate: float. Stochastic depth rate. Defaults to `0.0`.
        kernel_initializer: Defaults to `"glorot_uniform"`.

    Call arguments:
        x: `(B, T, D)`.
        training: bool.

    Example:
    >>> ffn = FeedForward(d_model=8, d_ff=32, activation="gelu")
    >>> tuple(ffn(keras.ops.ones((2, 3, 8))).shape)
    (2, 3, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 3.3.
        Hendrycks and Gimpel, "Gaussian Error Linear Units", 2016.
    """

    def __init__(
        self,
        d_model,
        d_ff,
        activation="relu",
        dropout=0.0,
        activation_dropout=0.0,
        use_bias=True,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        drop_path_rate=0.0,
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
        for name, value in (("d_model", d_model), ("d_ff", d_ff)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}. Received: activation={activation!r}")
        self.d_model = d_model
        self.d_ff = d_ff
        self.activation = activation
        self.activation_dropout = activation_dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _activation_fn(self):
        if self.activation == "gelu":
            return lambda x: keras.activations.gelu(x, approximate=False)
        if self.activation == "gelu_approximate":
            return lambda x: keras.activations.gelu(x, approximate=True)
        return keras.activations.get("silu" if self.activation == "swish" else self.activation)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.d_model:
            raise ValueError(
                f"FeedForward expects inputs of width d_model={self.d_model}. "
                f"Received: input shape {tuple(input_shape)}"
            )
        super().build(input_shape)

        def dense(units, name):
            return keras.layers.Dense(
                units,
                use_bias=self.use_bias,
                kernel_initializer=keras.initializers.deserialize(
                    keras.initializers.serialize(self.kernel_initializer)
                ),
                dtype=self.dtype_policy,
                name=name,
            )

        self.intermediate_dense = dense(self.d_ff, "intermediate")
        self.output_dense = dense(self.d_model, "output")
        self.intermediate_dense.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.d_ff,))
        self.activation_dropout_layer = keras.layers.Dropout(self.activation_dropout, dtype=self.dtype_policy)
        self._act = self._activation_fn()

    def call(self, x, training=None):
        h = self.intermediate_dense(self._pre_norm(x))  # (B, T, F)
        h = self.activation_dropout_layer(self._act(h), training=training)
        return self._add_and_norm(x, self.output_dense(h), training)  # (B, T, D)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model,
            d_ff=self.d_ff,
            activation=self.activation,
            activation_dropout=self.activation_dropout,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
