"""Learned absolute position embedding.

Same computation and weight layout (`(sequence_length, D)` table named
`embeddings`) as `keras_hub.layers.PositionEmbedding`; written here so that a
sequence longer than the table is a clear error instead of a silent clamp
(keras-hub's `ops.slice` past the end clamps on JAX), and so that the lookup
also traces with an unknown length on JAX (a gather of `T` rows, not a slice).
"""

import numbers

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class PositionEmbedding(keras.layers.Layer):
    """A trained vector per position, looked up by the token's index.

    Returns rows `start_index .. start_index + T - 1` of a
    `(sequence_length, D)` table, broadcast to the input's shape, for the
    caller to add to its token embeddings (BERT, GPT-2, ViT). The table is
    created in `build` from the input's last dimension.

    Args:
        sequence_length: int. Number of positions the table holds: the
            longest sequence the layer accepts.
        initializer: initializer for the table. Defaults to `"glorot_uniform"`.

    Call arguments:
        inputs: `(B, T, D)` tensor. Only its shape is used.
        start_index: int or scalar tensor. Position of the first token, for
            incremental decoding. Defaults to `0`. A python int is checked
            against the table length; a tensor is not (it may be traced):
            rows past the end are NaN on JAX, an error or zeros on TensorFlow.

    Returns:
        `(B, T, D)` embeddings, in the layer's compute dtype.

    Example:
    >>> embedding = PositionEmbedding(sequence_length=16)
    >>> x = keras.ops.zeros((2, 5, 8))
    >>> tuple((x + embedding(x)).shape)
    (2, 5, 8)

    References:
        Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers
        for Language Understanding", 2019.
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        is_int = isinstance(sequence_length, numbers.Integral) and not isinstance(sequence_length, bool)
        if not is_int or sequence_length <= 0:
            raise ValueError(
                f"sequence_length must be a positive int. Received: sequence_length={sequence_length!r}"
            )
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True  # a padding mask passes through unchanged

    def build(self, inputs_shape):
        dim = inputs_shape[-1]
        if dim is None:
            raise ValueError(
                "PositionEmbedding needs a known feature size D. "
                f"Received: inputs of shape {tuple(inputs_shape)}"
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, dim),
            initializer=self.initializer,
            trainable=True,
        )  # (sequence_length, D)
        self.built = True

    def _check_length(self, length, start_index):
        # Runs in call() and in compute_output_shape(), which Keras uses
        # instead of call() for symbolic inputs. Unknown lengths pass.
        if not isinstance(length, int):
            return
        start = int(start_index) if isinstance(start_index, numbers.Integral) else 0
        if start + length > self.sequence_length:
            raise ValueError(
                f"PositionEmbedding holds {self.sequence_length} positions (sequence_length="
                f"{self.sequence_length}). Received: a sequence of length {length}"
                + (f" starting at start_index={start}" if start else "")
            )

    def call(self, inputs, start_index=0):
        self._check_length(inputs.shape[-2], start_index)
        shape = ops.shape(inputs)
        table = ops.cast(self.embeddings, self.compute_dtype)  # (sequence_length, D)
        positions = ops.arange(shape[-2]) + ops.cast(start_index, "int32")  # (T,)
        rows = ops.take(table, positions, axis=0)  # (T, D)
        return ops.broadcast_to(rows, shape)  # (B, T, D)

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape[-2], 0)
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            sequence_length=self.sequence_length,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
