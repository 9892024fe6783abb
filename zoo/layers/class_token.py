"""Learned class token prepended to a sequence of patch vectors."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class ClassToken(keras.layers.Layer):
    """Prepends one learned `D`-vector to every sequence.

    `[t; x_1; ...; x_P]` with `t` a `(1, 1, D)` weight shared across the
    batch: the `[class]` token of ViT, whose final state feeds the
    classification head. The weight has the layout of HF ViT
    `embeddings.cls_token` and timm `cls_token`, so it copies unchanged.
    An incoming Keras mask gets `True` for the new token.

    Args:
        initializer: initializer for the token. Defaults to `"zeros"`
            (as big_vision does).

    Call arguments:
        inputs: `(B, P, D)` patch vectors.

    Returns:
        `(B, P + 1, D)`, the token first.

    Example:
    >>> cls = ClassToken()
    >>> tuple(cls(keras.ops.ones((2, 196, 64))).shape)
    (2, 197, 64)

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
        Image Recognition at Scale", ICLR 2021.
        Touvron et al., "Training data-efficient image transformers &
        distillation through attention" (DeiT), ICML 2021.
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "ClassToken expects (B, P, D) inputs with a known D. "
                f"Received: inputs of shape {tuple(input_shape)}"
            )
        self.class_token = self.add_weight(
            shape=(1, 1, input_shape[-1]),
            initializer=self.initializer,
            name="class_token",
        )
        self.built = True

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        token = ops.cast(self.class_token, self.compute_dtype)  # (1, 1, D)
        token = ops.broadcast_to(token, (batch, 1, inputs.shape[-1]))  # (B, 1, D)
        return ops.concatenate([token, inputs], axis=1)  # (B, P + 1, D)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        mask = ops.cast(mask, "bool")
        return ops.concatenate([ops.ones_like(mask[:, :1]), mask], axis=1)  # (B, P + 1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(initializer=keras.initializers.serialize(self.initializer))
        return config
