"""Fixed sinusoidal position encoding, in both layouts real checkpoints use.

Written here rather than using `keras_hub.layers.SinePositionEncoding`
because that layer has the interleaved layout only (sin at even features,
cos at odd), while the paper's common implementations and HF Marian
concatenate the halves (`[sin | cos]`). It also computes the angles in the
compute dtype, so positions lose precision under mixed precision; here they
are computed in float32 and cast at the end.
"""

import numbers

import keras
from keras import ops

LAYOUTS = ("concat", "interleave")


@keras.saving.register_keras_serializable(package="zoo")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Sine and cosine of the position at geometrically spaced frequencies.

    For position `p` and feature pair `j` in `0 .. D/2 - 1`, with
    `w_j = max_wavelength^(-2j / D)`, the encoding holds `sin(p * w_j)` and
    `cos(p * w_j)` (Vaswani et al., 2017, section 3.5). With
    `layout="concat"` the output is `[sin(p w_0) .. sin(p w_{D/2-1}) |
    cos(p w_0) .. cos(p w_{D/2-1})]` (the TF Transformer tutorial, HF
    Marian); with `layout="interleave"` feature `2j` is
    `sin(p w_j)` and feature `2j + 1` is `cos(p w_j)` (keras-hub). No weights.
    The caller adds the result to its embeddings.

    Args:
        max_wavelength: int. The base of the geometric wavelength
            progression. Defaults to `10000`.
        layout: str. `"concat"` (`[sin | cos]` halves) or `"interleave"`
            (sin at even features, cos at odd). Defaults to `"concat"`.

    Call arguments:
        inputs: `(B, T, D)` tensor (`D` even). Only its shape is used.
        start_index: int or scalar tensor. Position of the first token, for
            incremental decoding. Defaults to `0`.

    Returns:
        `(B, T, D)` encodings for positions `start_index .. start_index + T - 1`,
        in the layer's compute dtype.

    Example:
    >>> encoding = SinusoidalPositionEncoding()
    >>> x = keras.ops.zeros((2, 5, 8))
    >>> tuple((x + encoding(x)).shape)
    (2, 5, 8)

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
    """

    def __init__(self, max_wavelength=10000, layout="concat", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_wavelength, numbers.Real) or max_wavelength <= 0:
            raise ValueError(
                f"max_wavelength must be a positive number. Received: max_wavelength={max_wavelength!r}"
            )
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}. Received: layout={layout!r}")
        self.max_wavelength = max_wavelength
        self.layout = layout
        self.supports_masking = True  # a padding mask passes through unchanged
        self.built = True

    def _feature_size(self, input_shape):
        # Runs in call() and in compute_output_shape(), which Keras uses
        # instead of call() for symbolic inputs.
        dim = input_shape[-1]
        if not isinstance(dim, int) or dim % 2:
            raise ValueError(
                "SinusoidalPositionEncoding needs an even, known feature size D. "
                f"Received: inputs of shape {tuple(input_shape)}"
            )
        return dim

    def call(self, inputs, start_index=0):
        dim = self._feature_size(inputs.shape)
        shape = ops.shape(inputs)
        inverse_freq = ops.power(
            float(self.max_wavelength), -ops.arange(dim // 2, dtype="float32") * 2.0 / dim
        )  # (D/2,)
        positions = ops.cast(ops.arange(shape[-2]), "float32") + ops.cast(start_index, "float32")
        angles = positions[:, None] * inverse_freq[None, :]  # (T, D/2)
        sin, cos = ops.sin(angles), ops.cos(angles)
        if self.layout == "concat":
            encoding = ops.concatenate([sin, cos], axis=-1)  # (T, D)
        else:
            encoding = ops.reshape(ops.stack([sin, cos], axis=-1), (-1, dim))  # (T, D)
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)  # (B, T, D)

    def compute_output_shape(self, input_shape):
        self._feature_size(input_shape)
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_wavelength=self.max_wavelength, layout=self.layout)
        return config
