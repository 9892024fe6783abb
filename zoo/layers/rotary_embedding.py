"""Rotary position embedding (RoPE)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class RotaryEmbedding(keras.layers.Layer):
    """Rotates feature pairs by an angle proportional to the position.

    For position `p` and pair `j` of a `K`-wide vector (pairs are the two
    halves, `x[j]` with `x[j + K/2]`, the GPT-NeoX / keras-hub layout), the
    angle is `p * max_wavelength^(-2j/K) / scaling_factor`. Rotations keep
    norms, and the dot product of a rotated query at `p` and key at `p'`
    depends on `p - p'` only: relative positions for free, no weights.

    Args:
        max_wavelength: int. The base of the geometric angle progression.
            Defaults to `10000`.
        scaling_factor: float. Positions are divided by it (linear position
            interpolation for longer contexts). Defaults to `1.0`.

    Call arguments:
        inputs: `(B, T, ..., K)` tensor, sequence on axis 1, features last
            (`K` even). Usually per-head queries or keys `(B, T, H, K)`.
        start_index: int or scalar tensor. Position of the first token, for
            incremental decoding. Defaults to `0`.

    Example:
    >>> rope = RotaryEmbedding()
    >>> tuple(rope(keras.ops.ones((2, 5, 4, 8))).shape)
    (2, 5, 4, 8)

    References:
        Su et al., "RoFormer: Enhanced Transformer with Rotary Position
        Embedding", 2021.
    """

    def __init__(self, max_wavelength=10000, scaling_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        if max_wavelength <= 0 or scaling_factor <= 0:
            raise ValueError(
                "max_wavelength and scaling_factor must be positive. Received: "
                f"max_wavelength={max_wavelength}, scaling_factor={scaling_factor}"
            )
        self.max_wavelength = max_wavelength
        self.scaling_factor = scaling_factor
        self.supports_masking = True

    def call(self, inputs, start_index=0):
        dim = inputs.shape[-1]
        if dim is None or dim % 2:
            raise ValueError(
                f"RotaryEmbedding needs an even, known feature size. Received: inputs of shape {tuple(inputs.shape)}"
            )
        half = dim // 2
        inverse_freq = ops.power(
            float(self.max_wavelength), -ops.arange(half, dtype="float32") * 2.0 / dim
        )  # (K/2,)
        positions = ops.cast(ops.arange(ops.shape(inputs)[1]) + start_index, "float32")
        angles = ops.einsum("t,k->tk", positions / self.scaling_factor, inverse_freq)  # (T, K/2)
        angles = ops.concatenate([angles, angles], axis=-1)  # (T, K)
        # Broadcast (T, K) over every axis between sequence and features.
        angles = ops.reshape(angles, (1, -1) + (1,) * (len(inputs.shape) - 3) + (dim,))
        cos = ops.cast(ops.cos(angles), inputs.dtype)
        sin = ops.cast(ops.sin(angles), inputs.dtype)
        first, second = inputs[..., :half], inputs[..., half:]
        rotated_half = ops.concatenate([-second, first], axis=-1)
        return inputs * cos + rotated_half * sin

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_wavelength=self.max_wavelength, scaling_factor=self.scaling_factor)
        return config
