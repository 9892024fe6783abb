"""Convolutional patch embedding: the stem of the Vision Transformer."""

import keras
from keras import ops

from zoo.layers.size_pair import size_pair


@keras.saving.register_keras_serializable(package="zoo")
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into non-overlapping patches and projects each to `D`.

    A `Conv2D` with kernel size and stride equal to the patch size computes
    `patch @ W + b` for every `ph x pw x C` patch, which is the linear
    projection of flattened patches of the ViT paper. Patches come out row by
    row (row-major over the patch grid), as timm and Hugging Face order them
    with `conv(x).flatten(2).transpose(1, 2)`.

    Weights import from other frameworks as they are: the kernel has the
    Keras layout `(ph, pw, C, D)`. A PyTorch (HF ViT `patch_embeddings.projection`,
    timm `patch_embed.proj`) weight of shape `(D, C, ph, pw)` becomes
    `weight.transpose(2, 3, 1, 0)`; a Flax / big_vision kernel is already
    `(ph, pw, C, D)`. The bias `(D,)` copies unchanged.

    Args:
        patch_size: int or tuple of 2 ints. Patch height and width `(ph, pw)`.
        d_model: int. Width `D` of each patch vector.
        use_bias: bool. Add a bias to the projection. Defaults to `True`.
        kernel_initializer: initializer for the projection kernel.
            Defaults to `"lecun_normal"` (the Flax default, as in big_vision).

    Call arguments:
        inputs: `(B, H, W, C)` images, channels last. `H` and `W` must be
            multiples of `ph` and `pw`.

    Returns:
        `(B, P, D)` patch vectors, `P = (H / ph) * (W / pw)`.

    Example:
    >>> embed = PatchEmbedding(patch_size=16, d_model=64)
    >>> tuple(embed(keras.ops.ones((2, 224, 224, 3))).shape)
    (2, 196, 64)
    >>> embed.grid_size((224, 224))
    (14, 14)

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
        Image Recognition at Scale", ICLR 2021.
        Touvron et al., "Training data-efficient image transformers &
        distillation through attention" (DeiT), ICML 2021.
    """

    def __init__(
        self,
        patch_size,
        d_model,
        use_bias=True,
        kernel_initializer="lecun_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(d_model, int) or d_model <= 0:
            raise ValueError(f"d_model must be a positive int. Received: d_model={d_model!r}")
        self.patch_size = size_pair(patch_size, "patch_size")
        self.d_model = d_model
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def grid_size(self, image_shape):
        """The patch grid `(H / ph, W / pw)` of an image shape.

        Args:
            image_shape: `(H, W)`, `(H, W, C)` or `(B, H, W, C)`. Unknown
                (`None`) sizes give `None` in the grid.

        Returns:
            tuple `(rows, cols)` of the patch grid.
        """
        shape = tuple(image_shape)
        if len(shape) not in (2, 3, 4):
            raise ValueError(
                "image_shape must be (H, W), (H, W, C) or (B, H, W, C). "
                f"Received: image_shape={shape}"
            )
        sizes = shape if len(shape) == 2 else shape[-3:-1]
        grid = []
        for size, patch in zip(sizes, self.patch_size):
            if size is not None and size % patch:
                raise ValueError(
                    "The image height and width must be multiples of the patch size. "
                    f"Received: image shape {shape}, patch_size={self.patch_size}"
                )
            grid.append(None if size is None else size // patch)
        return tuple(grid)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "PatchEmbedding expects (B, H, W, C) images. "
                f"Received: inputs of shape {tuple(input_shape)}"
            )
        self.grid_size(input_shape)
        self.projection = keras.layers.Conv2D(
            self.d_model,
            kernel_size=self.patch_size,
            strides=self.patch_size,
            padding="valid",
            data_format="channels_last",
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )
        self.projection.build(input_shape)
        self.built = True

    def call(self, inputs):
        rows, cols = self.grid_size(inputs.shape)
        x = self.projection(inputs)  # (B, H/ph, W/pw, D)
        if rows is not None and cols is not None:
            return ops.reshape(x, (-1, rows * cols, self.d_model))  # (B, P, D)
        return ops.reshape(x, (ops.shape(x)[0], -1, self.d_model))  # (B, P, D)

    def compute_output_shape(self, input_shape):
        rows, cols = self.grid_size(input_shape)
        num_patches = None if rows is None or cols is None else rows * cols
        return (input_shape[0], num_patches, self.d_model)

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            d_model=self.d_model,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
