"""The Vision Transformer (ViT) image classifier."""

import keras
from keras import ops

from zoo.layers import ClassToken, EncoderBlock, PatchEmbedding, PatchPositionEmbedding, size_pair
from zoo.models.layout_maps import VISION_TRANSFORMER_RULES, build_layout_map
from zoo.models.presets import preset_config, preset_descriptions
from zoo.models.vision_transformer_presets import VISION_TRANSFORMER_PRESETS

_POOLINGS = ("token", "gap")
# Arguments renamed to `TransformerTranslator`'s words; `from_config` still
# reads the old names, so `.keras` files saved with them load.
_RENAMED = ("depth", "mlp_ratio")


def _json_size(value, name):
    """An int stays an int, a pair becomes a list: what JSON gives back."""
    pair = size_pair(value, name)
    return value if isinstance(value, int) else list(pair)


@keras.saving.register_keras_serializable(package="zoo")
class VisionTransformer(keras.Model):
    """Vision Transformer: images to class logits through a pre-norm encoder.

    Images are cut into patches and projected (`PatchEmbedding`), a learned
    class token is prepended (`pooling="token"`), learned positions are added
    (`PatchPositionEmbedding`), and `num_encoder_layers` pre-norm `EncoderBlock`s (exact
    GELU MLP) run over the tokens. A final LayerNorm (`encoder_norm`)
    normalises every token; the class token's output (`"token"`) or the mean
    of the patch tokens (`"gap"`) is pooled (with `"token"`, the last block
    computes the class token's output alone: see `features`), optionally passed through a
    `tanh` pre-logits layer, and projected to `num_classes` float32 logits.

    Stochastic depth grows linearly over the blocks, from 0 in the first to
    `drop_path_rate` in the last, as in DeiT and timm.

    Inputs may have another size than `image_size` (fine-tuning at a higher
    resolution): any height and width that are multiples of the patch size
    work, and the position table is interpolated to the new patch grid.

    Conventions, for importing HF and timm checkpoints (sublayer names are
    stable: `patch_embedding`, `class_token`, `position_embedding`,
    `encoder_{i}`, `encoder_norm`, `pre_logits`, `head`):
    - `"gap"` normalises the tokens, then averages them (big_vision
      `pool_type="gap"`; timm `global_pool="avg", fc_norm=False`, the
      `vit_*_gap_*` models). With `fc_norm=True` the same LayerNorm
      (`encoder_norm`) runs after the average instead (timm's default for
      `global_pool="avg"`, as MAE/BEiT fine-tuning).
    - `qkv_bias=False` removes only the query/key/value biases; the
      attention output projection and the MLP keep theirs, as timm's and
      HF's `qkv_bias`.
    - `zoo.ImageClassifier.from_hf(path)` and `zoo.ImageClassifier.from_timm(...)`
      import checkpoints (see `zoo.convert`).
    - The images come normalised (e.g. `(x - mean) / std` or `[-1, 1]`);
      preprocessing lives in `zoo.preprocessing.ImagePreprocessor`, which
      `zoo.ImageClassifier` keeps and saves next to the model.

    The architecture is described in `TransformerTranslator`'s words:
    `d_model`, `num_heads`, `d_ff`, `num_encoder_layers`. Configs saved
    with the earlier `depth` and `mlp_ratio` still load (`from_config`).

    Args:
        image_size: int or tuple of 2 ints. Training resolution `(H, W)`;
            fixes the size of the position table. Defaults to `224`.
        patch_size: int or tuple of 2 ints. Must divide `image_size`.
            Defaults to `16`.
        num_classes: int. Number of output logits. Defaults to `1000`.
        d_model: int. Token width `D`. Defaults to `768`.
        num_encoder_layers: int. Number of encoder blocks. Defaults to `12`.
        num_heads: int. Attention heads `H`; must divide `d_model`.
            Defaults to `12`.
        d_ff: int. Width of each block's MLP (`4 * d_model` in the paper).
            Defaults to `3072`.
        dropout: float. Dropout after the position embedding and on each
            residual branch. Defaults to `0.0`.
        attention_dropout: float. Dropout on attention weights. Defaults to `0.0`.
        drop_path_rate: float. Stochastic depth rate of the last block.
            Defaults to `0.0`.
        qkv_bias: bool. Biases in the query, key and value projections
            (see above). Defaults to `True`.
        layer_norm_epsilon: float. Defaults to `1e-6`.
        pooling: str. `"token"` (class token) or `"gap"` (mean of the patch
            tokens, no class token). Defaults to `"token"`.
        representation_size: int or None. Width of a `tanh` pre-logits layer
            before the head (the paper's ImageNet-21k pre-training); None for
            none. Defaults to `None`.
        num_channels: int. Image channels `C`. Defaults to `3`.
        fc_norm: bool. Apply `encoder_norm` after pooling instead of to
            every token before it (timm `fc_norm`); only changes `"gap"`,
            since a per-token norm commutes with picking the class token.
            Defaults to `False`.

    Call arguments:
        images: `(B, H, W, C)` float images, `H` and `W` static multiples of
            the patch size.
        training: bool. Enables dropout and stochastic depth.

    Returns:
        `(B, num_classes)` float32 logits.

    Example:
    >>> model = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=1)
    >>> images = keras.ops.zeros((2, 32, 32, 3))
    >>> tuple(model(images).shape)
    (2, 10)
    >>> tuple(model.patch_tokens(images).shape)  # class token + 8 * 8 patches
    (2, 65, 192)

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
        Image Recognition at Scale", ICLR 2021.
        Touvron et al., "Training data-efficient image transformers &
        distillation through attention" (DeiT), ICML 2021.
        Steiner et al., "How to train your ViT? Data, Augmentation, and
        Regularization in Vision Transformers", TMLR 2022 (arXiv 2021).
    """

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_classes=1000,
        d_model=768,
        num_encoder_layers=12,
        num_heads=12,
        d_ff=3072,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        qkv_bias=True,
        layer_norm_epsilon=1e-6,
        pooling="token",
        representation_size=None,
        num_channels=3,
        fc_norm=False,
        **kwargs,
    ):
        old = [name for name in _RENAMED if name in kwargs]
        if old:
            raise ValueError(
                "VisionTransformer takes num_encoder_layers (was depth) and d_ff (was mlp_ratio; "
                "d_ff = int(d_model * mlp_ratio)); only from_config reads the old names. "
                f"Received: {', '.join(f'{k}={kwargs[k]!r}' for k in old)}"
            )
        super().__init__(**kwargs)
        image_hw = size_pair(image_size, "image_size")
        patch_hw = size_pair(patch_size, "patch_size")
        if image_hw[0] % patch_hw[0] or image_hw[1] % patch_hw[1]:
            raise ValueError(
                "image_size must be a multiple of patch_size. "
                f"Received: image_size={image_size!r}, patch_size={patch_size!r}"
            )
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}. Received: pooling={pooling!r}")
        positive = dict(
            num_classes=num_classes, d_model=d_model, num_encoder_layers=num_encoder_layers, d_ff=d_ff,
            num_channels=num_channels,
        )
        for name, value in positive.items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
        if not isinstance(num_heads, int) or num_heads <= 0 or d_model % num_heads:
            raise ValueError(
                f"num_heads must divide d_model. Received: d_model={d_model}, num_heads={num_heads!r}"
            )
        for name, flag in (("qkv_bias", qkv_bias), ("fc_norm", fc_norm)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be a bool. Received: {name}={flag!r}")
        if representation_size is not None and (
            not isinstance(representation_size, int) or representation_size <= 0
        ):
            raise ValueError(
                "representation_size must be None or a positive int. "
                f"Received: representation_size={representation_size!r}"
            )
        rates = dict(dropout=dropout, attention_dropout=attention_dropout, drop_path_rate=drop_path_rate)
        for name, rate in rates.items():
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1). Received: {name}={rate!r}")
        self.image_size = _json_size(image_size, "image_size")
        self.patch_size = _json_size(patch_size, "patch_size")
        self.num_classes = num_classes
        self.d_model = d_model
        self.num_encoder_layers = num_encoder_layers
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.qkv_bias = qkv_bias
        self.layer_norm_epsilon = layer_norm_epsilon
        self.pooling = pooling
        self.representation_size = representation_size
        self.num_channels = num_channels
        self.fc_norm = fc_norm

        dtype = self.dtype_policy
        self.grid_size = (image_hw[0] // patch_hw[0], image_hw[1] // patch_hw[1])
        self.num_prefix_tokens = 1 if pooling == "token" else 0
        self.patch_embedding = PatchEmbedding(patch_hw, d_model, dtype=dtype, name="patch_embedding")
        self.class_token = ClassToken(dtype=dtype, name="class_token") if pooling == "token" else None
        self.position_embedding = PatchPositionEmbedding(
            self.grid_size, num_prefix_tokens=self.num_prefix_tokens, dtype=dtype, name="position_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")
        drop_path_rates = self.block_drop_path_rates()
        self.encoder_blocks = [
            EncoderBlock(
                d_model=d_model,
                num_heads=num_heads,
                d_ff=d_ff,
                dropout=dropout,
                attention_dropout=attention_dropout,
                activation="gelu",  # exact (erf) GELU, as the paper, timm and HF
                norm_first=True,
                layer_norm_epsilon=layer_norm_epsilon,
                use_bias=True,
                qkv_bias=qkv_bias,
                drop_path_rate=drop_path_rates[i],
                dtype=dtype,
                name=f"encoder_{i}",
            )
            for i in range(num_encoder_layers)
        ]
        self.encoder_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="encoder_norm"
        )
        self.pre_logits = None
        if representation_size is not None:
            self.pre_logits = keras.layers.Dense(
                representation_size, activation="tanh", dtype=dtype, name="pre_logits"
            )
        self.head = keras.layers.Dense(
            num_classes,
            # timm's default head init; a fresh initializer per model.
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=dtype,
            name="head",
        )
        self.build()

    def block_drop_path_rates(self):
        """Stochastic depth rate of each block: `linspace(0, drop_path_rate, num_encoder_layers)`."""
        n = self.num_encoder_layers
        if n == 1:
            return [0.0]
        return [self.drop_path_rate * i / (n - 1) for i in range(n)]

    def build(self, input_shape=None):
        rows, cols = self.grid_size
        num_patches = rows * cols
        patches = (None, num_patches, self.d_model)
        tokens = (None, self.num_prefix_tokens + num_patches, self.d_model)
        image_hw = size_pair(self.image_size, "image_size")
        self.patch_embedding.build((None, *image_hw, self.num_channels))
        if self.class_token is not None:
            self.class_token.build(patches)
        self.position_embedding.build(tokens)
        for block in self.encoder_blocks:
            block.build(tokens)
        self.encoder_norm.build(tokens)
        features = self.d_model
        if self.pre_logits is not None:
            self.pre_logits.build((None, self.d_model))
            features = self.representation_size
        self.head.build((None, features))
        self.built = True

    # -- the forward pass, in pieces ---------------------------------------
    def _embed(self, images, training=None):
        """`(B, H, W, C)` images to `(B, N, D)` tokens with positions."""
        grid = self.patch_embedding.grid_size(images.shape)
        x = self.patch_embedding(images)  # (B, P, D)
        if self.class_token is not None:
            x = self.class_token(x)  # (B, 1 + P, D)
        x = self.position_embedding(x, grid_size=None if None in grid else grid)
        return self.embedding_dropout(x, training=training)

    def _encode(self, images, return_attention_scores=False, training=None, num_queries=None):
        """Tokens `(B, N, D)` after the encoder (and its norm unless `fc_norm`),
        and each block's attention weights when asked. With `num_queries`
        the last block runs for the first `num_queries` tokens only, and the
        result is `(B, num_queries, D)`."""
        x = self._embed(images, training=training)
        scores = []
        for i, block in enumerate(self.encoder_blocks):
            last = i == len(self.encoder_blocks) - 1
            out = block(
                x, return_attention_scores=return_attention_scores, training=training,
                num_queries=num_queries if last else None,
            )
            x, layer_scores = out if return_attention_scores else (out, None)
            scores.append(layer_scores)
        if self.fc_norm:
            return x, scores  # normalised after pooling
        return self.encoder_norm(x), scores  # (B, N, D)

    def patch_tokens(self, images, training=None):
        """The final tokens `(B, N, D)`: `N = 1 + P` with a class token
        (first), `N = P` for `"gap"`; patches row by row. Normalised by
        `encoder_norm` unless `fc_norm` (then it runs after pooling)."""
        return self._encode(images, training=training)[0]

    def attention_maps(self, images):
        """Per-block attention weights, a list of `num_encoder_layers` float32 `(B, H, N, N)`
        tensors (inference mode), for visualisation."""
        return self._encode(images, return_attention_scores=True, training=False)[1]

    def _pool(self, tokens):
        if self.pooling == "token":
            pooled = tokens[:, 0]  # (B, D)
        else:
            pooled = ops.mean(tokens, axis=1)  # (B, D)
        return self.encoder_norm(pooled) if self.fc_norm else pooled

    def features(self, images, training=None):
        """What the head reads: the pooled tokens `(B, D)`, after the
        pre-logits layer when there is one (`(B, representation_size)`).

        With `"token"` pooling only the class token's output is read, so the
        last block runs for the class token alone (`num_queries=1`): the
        patch tokens still give it keys and values, but their own attention
        rows, output projections and MLPs in that block are skipped. The
        logits and gradients are the same (in training, dropout is drawn
        for the computed rows only); ViT-Ti/4 at 32 px does 14% fewer FLOPs,
        ViT-B/16 at 224 7% (`bench/flops.py` counts them). So this does not
        go through `patch_tokens`: a subclass that overrides `patch_tokens`
        should override `features` too."""
        num_queries = self.num_prefix_tokens if self.pooling == "token" else None
        tokens, _ = self._encode(images, training=training, num_queries=num_queries)
        x = self._pool(tokens)
        return x if self.pre_logits is None else self.pre_logits(x)

    def call(self, images, training=None):
        logits = self.head(self.features(images, training=training))  # (B, num_classes)
        return ops.cast(logits, "float32")

    @classmethod
    def layout_map(cls, device_mesh, model_dim="model", data_dim="data"):
        """A `keras.distribution.LayoutMap` for `ModelParallel` training (Megatron-style).

        Attention query/key/value, feed-forward `intermediate` and
        `pre_logits` kernels are split over `model_dim` by their output,
        the attention output, feed-forward `output` and head kernels by
        their input, the patch projection and positions by `d_model`; the
        rest is replicated (`zoo.models.layout_maps`). Build the model under
        `keras.distribution.ModelParallel(layout_map=..., batch_dim_name=data_dim)`.
        The model axis must divide `num_heads`, `d_model`, `d_ff` (and
        `representation_size`).

        Args:
            device_mesh: `keras.distribution.DeviceMesh` with both axes.
            model_dim: str. Mesh axis the weights are split over. Defaults to `"model"`.
            data_dim: str. Mesh axis the batch is split over. Defaults to `"data"`.

        Example:
        >>> devices = keras.distribution.list_devices()[:1]
        >>> mesh = keras.distribution.DeviceMesh((1, 1), ("data", "model"), devices)
        >>> layouts = VisionTransformer.layout_map(mesh)
        >>> layouts["vision_transformer/encoder_0/feed_forward/output/kernel"].axes
        ('model', None)
        """
        return build_layout_map(VISION_TRANSFORMER_RULES, device_mesh, model_dim, data_dim)

    # -- presets and config ----------------------------------------------
    @classmethod
    def presets(cls):
        """`{name: description}` of the built-in presets."""
        return preset_descriptions(VISION_TRANSFORMER_PRESETS)

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds preset `name` (randomly initialised); `overrides` replace
        config entries, e.g. `num_classes=10` for a new task."""
        return cls(**preset_config(VISION_TRANSFORMER_PRESETS, name, overrides, cls.__name__))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                name: getattr(self, name)
                for name in (
                    "image_size", "patch_size", "num_classes", "d_model", "num_encoder_layers",
                    "num_heads", "d_ff", "dropout", "attention_dropout",
                    "drop_path_rate", "qkv_bias", "layer_norm_epsilon", "pooling",
                    "representation_size", "num_channels", "fc_norm",
                )
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Builds the model of a config; `depth` and `mlp_ratio` (the names
        of configs saved before they became `num_encoder_layers` and `d_ff`)
        are read too."""
        config = dict(config)
        if "depth" in config:
            config["num_encoder_layers"] = config.pop("depth")
        if "mlp_ratio" in config:
            config["d_ff"] = int(config.get("d_model", 768) * config.pop("mlp_ratio"))
        return super().from_config(config)
