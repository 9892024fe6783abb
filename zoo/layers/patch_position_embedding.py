"""Learned absolute positions for prefix tokens and a 2D patch grid."""

import math

import keras
from keras import ops

from zoo.layers.size_pair import size_pair

# Interpolations `keras.ops.image.resize` supports on every backend.
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos3", "lanczos5")


@keras.saving.register_keras_serializable(package="zoo")
class PatchPositionEmbedding(keras.layers.Layer):
    """Adds learned positions to `[prefix tokens; patch grid]`, any grid size.

    One table `embeddings` of shape `(num_prefix_tokens + gh * gw, D)`: the
    prefix (class token) positions first, then the `gh x gw` grid row by
    row. It is the layout of HF ViT `embeddings.position_embeddings` and timm
    `pos_embed` without their leading 1, so those checkpoints copy directly.

    At the trained grid the table is added as is. At another grid (a larger
    fine-tuning resolution, a non-square image) the grid part is reshaped to
    `(gh, gw, D)`, resized with `keras.ops.image.resize` (no antialiasing)
    and flattened again, while the prefix positions are kept unchanged, as
    timm `resample_abs_pos_embed` and HF `interpolate_pos_encoding` do.
    Resizing runs in float32; the result is cast to the compute dtype.
    On the TensorFlow backend `"bicubic"` has no XLA kernel: with
    `jit_compile=True` at a new grid, use `"bilinear"` or `resample()` the
    table once into a layer built for that grid. Bicubic also differs
    slightly between backends (and from PyTorch's, which uses `a = -0.75`).

    Args:
        grid_size: int or tuple of 2 ints. The trained patch grid `(gh, gw)`.
        num_prefix_tokens: int. Tokens before the patches (1 for a class
            token, 0 for none). Defaults to `1`.
        initializer: initializer for the table. Defaults to
            `RandomNormal(stddev=0.02)` (timm and HF ViT use a normal of
            standard deviation 0.02), a fresh seed per layer.
        interpolation: str. `"bicubic"`, `"bilinear"`, `"nearest"`,
            `"lanczos3"` or `"lanczos5"`. Defaults to `"bicubic"`.

    Call arguments:
        inputs: `(B, num_prefix_tokens + P, D)` tokens, static `P`.
        grid_size: tuple `(rows, cols)` of the incoming patch grid, with
            `rows * cols == P`. Defaults to the trained grid when `P` matches
            it, else to a square grid.

    Returns:
        `inputs` plus positions, same shape.

    Example:
    >>> pos = PatchPositionEmbedding(grid_size=14)
    >>> tuple(pos(keras.ops.ones((2, 1 + 14 * 14, 64))).shape)
    (2, 197, 64)
    >>> tuple(pos(keras.ops.ones((2, 1 + 24 * 24, 64))).shape)
    (2, 577, 64)
    >>> tuple(pos(keras.ops.ones((2, 1 + 12 * 16, 64)), grid_size=(12, 16)).shape)
    (2, 193, 64)

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
        Image Recognition at Scale", ICLR 2021 (section 3.2, fine-tuning at
        higher resolution).
        Touvron et al., "Training data-efficient image transformers &
        distillation through attention" (DeiT), ICML 2021.
    """

    def __init__(
        self,
        grid_size,
        num_prefix_tokens=1,
        initializer=None,
        interpolation="bicubic",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_prefix_tokens, int) or num_prefix_tokens < 0:
            raise ValueError(
                "num_prefix_tokens must be a non-negative int. "
                f"Received: num_prefix_tokens={num_prefix_tokens!r}"
            )
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.grid_size = size_pair(grid_size, "grid_size")
        self.num_prefix_tokens = num_prefix_tokens
        if initializer is None:
            # Built here, not as a default argument: an unseeded Keras
            # initializer draws its seed once, so a shared default would give
            # every layer the same table.
            initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.initializer = keras.initializers.get(initializer)
        self.interpolation = interpolation
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "PatchPositionEmbedding expects (B, num_prefix_tokens + P, D) inputs "
                f"with a known D. Received: inputs of shape {tuple(input_shape)}"
            )
        rows, cols = self.grid_size
        self.embeddings = self.add_weight(
            shape=(self.num_prefix_tokens + rows * cols, input_shape[-1]),
            initializer=self.initializer,
            name="embeddings",
            autocast=False,  # resized in float32, cast in call
        )
        self.built = True

    def _incoming_grid(self, shape, grid_size):
        """The patch grid of inputs of static `shape`, checked."""
        num_tokens = shape[1]
        num_patches = None if num_tokens is None else num_tokens - self.num_prefix_tokens
        if num_patches is None or num_patches <= 0:
            raise ValueError(
                f"Expected a static number of tokens: {self.num_prefix_tokens} prefix "
                f"token(s), then at least one patch. Received: inputs of shape {shape}"
            )
        if shape[-1] != self.embeddings.shape[-1]:
            raise ValueError(
                f"Expected inputs of width {self.embeddings.shape[-1]}, the width this "
                f"layer was built for. Received: inputs of shape {shape}"
            )
        if grid_size is not None:
            grid = size_pair(grid_size, "grid_size")
            if grid[0] * grid[1] != num_patches:
                raise ValueError(
                    f"grid_size holds {grid[0] * grid[1]} patches but the inputs carry "
                    f"{num_patches} after {self.num_prefix_tokens} prefix token(s). "
                    f"Received: grid_size={grid_size!r}, inputs of shape {shape}"
                )
            return grid
        if num_patches == self.grid_size[0] * self.grid_size[1]:
            return self.grid_size
        side = math.isqrt(num_patches)
        if side * side != num_patches:
            raise ValueError(
                f"Cannot infer the patch grid: {num_patches} patches is neither the "
                f"trained grid {self.grid_size} nor a square. Pass grid_size=(rows, cols). "
                f"Received: {num_patches} patches (inputs of shape {shape})"
            )
        return (side, side)

    def resample(self, grid_size):
        """The float32 table for another patch grid.

        Args:
            grid_size: int or tuple `(rows, cols)`, the new patch grid.

        Returns:
            `(num_prefix_tokens + rows * cols, D)`: the prefix positions
            unchanged, then the grid positions resized. Assign it to the
            `embeddings` of a layer built for `grid_size` to resample once,
            at load time, as timm does for checkpoints.
        """
        if not self.built:
            raise ValueError("resample() needs the built table: call or build the layer first.")
        grid = size_pair(grid_size, "grid_size")
        rows, cols = self.grid_size
        table = ops.convert_to_tensor(self.embeddings)
        prefix = table[: self.num_prefix_tokens]  # (num_prefix_tokens, D)
        patches = ops.reshape(table[self.num_prefix_tokens :], (1, rows, cols, -1))
        patches = ops.image.resize(
            patches,
            grid,
            interpolation=self.interpolation,
            data_format="channels_last",
        )  # (1, new rows, new cols, D)
        patches = ops.reshape(patches, (grid[0] * grid[1], -1))  # (P, D)
        return ops.concatenate([prefix, patches], axis=0)

    def call(self, inputs, grid_size=None):
        grid = self._incoming_grid(tuple(inputs.shape), grid_size)
        if grid == self.grid_size:
            table = ops.convert_to_tensor(self.embeddings)
        else:
            table = self.resample(grid)
        return inputs + ops.cast(table, self.compute_dtype)[None]  # (B, N, D)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            grid_size=self.grid_size,
            num_prefix_tokens=self.num_prefix_tokens,
            initializer=keras.initializers.serialize(self.initializer),
            interpolation=self.interpolation,
        )
        return config
