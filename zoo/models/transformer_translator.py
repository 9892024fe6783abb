"""The encoder-decoder Transformer for machine translation."""

import keras
from keras import ops

from zoo.layers import DecoderBlock, EncoderBlock, TokenAndPositionEmbedding, attention_cache
from zoo.models.layout_maps import TRANSLATOR_RULES, build_layout_map
from zoo.models.presets import preset_config, preset_descriptions
from zoo.models.transformer_translator_presets import TRANSFORMER_TRANSLATOR_PRESETS


@keras.saving.register_keras_serializable(package="zoo")
class TransformerTranslator(keras.Model):
    """Encoder-decoder Transformer mapping source token ids to target logits.

    Source and target ids are embedded (`TokenAndPositionEmbedding`), the
    encoder stack (`EncoderBlock`s) reads the source, and the decoder stack
    (`DecoderBlock`s) reads the target shifted right while attending to the
    encoder output; a projection gives next-token logits over the target
    vocabulary. Pre-norm models get a final LayerNorm on both stacks.

    For decoding, `encode()` runs once per batch of sources, `init_cache()`
    prepares the decoder's key/value caches (cross-attention keys/values
    computed once), and `decode_step()` feeds new target tokens through the
    caches; `zoo.decoding` drives these.

    Args:
        source_vocab_size: int. Source vocabulary size.
        target_vocab_size: int. Target vocabulary size.
        num_encoder_layers: int. Defaults to `6`.
        num_decoder_layers: int. Defaults to `6`.
        d_model: int. Model width. Defaults to `512`.
        num_heads: int. Attention heads; must divide `d_model`. Defaults to `8`.
        d_ff: int. Feed-forward width. Defaults to `2048`.
        dropout: float. Embedding and residual dropout. Defaults to `0.1`.
        attention_dropout: float. Dropout on attention weights. Defaults to `0.0`.
        activation: str. `"relu"`, `"gelu"`, `"swish"`. Defaults to `"relu"`.
        norm_first: bool. Pre-norm blocks (and final norms). Defaults to `False`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        max_length: int. Longest source or target, in tokens. Defaults to `256`.
        position: str. `"sinusoidal"` or `"learned"`. Defaults to `"sinusoidal"`.
        sinusoid_layout: str. `"concat"` or `"interleave"`. Defaults to `"concat"`.
        scale_embeddings: bool. Multiply token embeddings by `sqrt(d_model)`.
            Defaults to `True`.
        share_embeddings: bool. One token matrix for source and target (needs
            equal vocabulary sizes, as with a joint vocabulary). Defaults to `False`.
        tie_output_embeddings: bool. The output projection is the target token
            matrix transposed. Defaults to `True`.
        output_bias: bool. Add a learned bias to the logits (Marian's
            `final_logits_bias`). Defaults to `False`.
        pad_token_id: int. Padding id. Sources are right-padded with it (as
            the tokenizers pad): a source's length is its number of
            non-padding tokens, and later positions are not attended.
            Defaults to `0`.
        start_token_id: int. First decoder input token. Defaults to `2`.
        end_token_id: int. Ends a translation. Defaults to `3`.

    Call arguments:
        inputs: dict with `"source_ids"` `(B, S)` and `"target_ids"` `(B, T)`
            (the decoder input: target shifted right behind the start token).
        training: bool.

    Returns:
        `(B, T, target_vocab_size)` float32 logits.

    Example:
    >>> model = TransformerTranslator.from_preset(
    ...     "transformer_tiny", source_vocab_size=50, target_vocab_size=60,
    ...     num_encoder_layers=1, num_decoder_layers=1)
    >>> ids = keras.ops.ones((2, 7), "int32")
    >>> tuple(model({"source_ids": ids, "target_ids": ids[:, :5]}).shape)
    (2, 5, 60)

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
        Junczys-Dowmunt et al., "Marian: Fast Neural Machine Translation in
        C++", 2018.
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        num_encoder_layers=6,
        num_decoder_layers=6,
        d_model=512,
        num_heads=8,
        d_ff=2048,
        dropout=0.1,
        attention_dropout=0.0,
        activation="relu",
        norm_first=False,
        layer_norm_epsilon=1e-5,
        max_length=256,
        position="sinusoidal",
        sinusoid_layout="concat",
        scale_embeddings=True,
        share_embeddings=False,
        tie_output_embeddings=True,
        output_bias=False,
        pad_token_id=0,
        start_token_id=2,
        end_token_id=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError(
                "share_embeddings needs one vocabulary for source and target. Received: "
                f"source_vocab_size={source_vocab_size}, target_vocab_size={target_vocab_size}"
            )
        for name in ("pad_token_id", "start_token_id", "end_token_id"):
            value = locals()[name]
            if not 0 <= value < target_vocab_size:
                raise ValueError(
                    f"{name} must be a target token id in [0, {target_vocab_size}). Received: {name}={value}"
                )
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_ff = d_ff
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.max_length = max_length
        self.position = position
        self.sinusoid_layout = sinusoid_layout
        self.scale_embeddings = scale_embeddings
        self.share_embeddings = share_embeddings
        self.tie_output_embeddings = tie_output_embeddings
        self.output_bias = output_bias
        self.pad_token_id = pad_token_id
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id

        dtype = self.dtype_policy
        embedding = dict(
            d_model=d_model,
            max_length=max_length,
            position=position,
            scale_by_sqrt_dim=scale_embeddings,
            sinusoid_layout=sinusoid_layout,
            dtype=dtype,
        )
        self.source_embedding = TokenAndPositionEmbedding(source_vocab_size, **embedding, name="source_embedding")
        self.target_embedding = TokenAndPositionEmbedding(
            target_vocab_size,
            **embedding,
            token_embedding=self.source_embedding.token_embedding if share_embeddings else None,
            name="target_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype)
        block = dict(
            d_model=d_model,
            num_heads=num_heads,
            d_ff=d_ff,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            norm_first=norm_first,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
        )
        self.encoder_blocks = [EncoderBlock(**block, name=f"encoder_{i}") for i in range(num_encoder_layers)]
        self.decoder_blocks = [DecoderBlock(**block, name=f"decoder_{i}") for i in range(num_decoder_layers)]
        self.encoder_norm = self.decoder_norm = None
        if norm_first:
            norm = dict(epsilon=layer_norm_epsilon, dtype=dtype)
            self.encoder_norm = keras.layers.LayerNormalization(**norm, name="encoder_norm")
            self.decoder_norm = keras.layers.LayerNormalization(**norm, name="decoder_norm")
        self.output_projection = None
        if not tie_output_embeddings:
            self.output_projection = keras.layers.Dense(
                target_vocab_size, use_bias=output_bias, dtype=dtype, name="output_projection"
            )
        self.build()

    def build(self, input_shape=None):
        hidden = (None, None, self.d_model)
        self.source_embedding.build((None, None))
        self.target_embedding.build((None, None))
        for block in self.encoder_blocks:
            block.build(hidden)
        for block in self.decoder_blocks:
            block.build(hidden, hidden)
        for norm in (self.encoder_norm, self.decoder_norm):
            if norm is not None:
                norm.build(hidden)
        if self.output_projection is not None:
            self.output_projection.build(hidden)
        self.logits_bias = None
        if self.output_bias and self.tie_output_embeddings:
            self.logits_bias = self.add_weight(
                shape=(self.target_vocab_size,), initializer="zeros", name="logits_bias"
            )
        self.built = True

    # -- the three pieces decoding needs ---------------------------------
    def source_padding_mask(self, source_ids):
        """`(B, S)` boolean, True at real (non-padding) source tokens."""
        return ops.not_equal(source_ids, self.pad_token_id)

    def source_lengths(self, source_ids):
        """`(B,)` int32: the number of non-padding tokens of each right-padded source."""
        return ops.sum(ops.cast(self.source_padding_mask(source_ids), "int32"), axis=-1)

    def encode(self, source_ids, source_mask=None, training=None, source_lengths=None):
        """Source ids `(B, S)` to encoder outputs `(B, S, D)`.

        The padding is `source_mask` or `source_lengths` when given, else
        `source_lengths(source_ids)` (lengths let fused GPU kernels skip it).
        """
        if source_mask is None and source_lengths is None:
            source_lengths = self.source_lengths(source_ids)
        x = self.embedding_dropout(self.source_embedding(source_ids), training=training)
        for block in self.encoder_blocks:
            x = block(x, attention_mask=source_mask, lengths=source_lengths, training=training)
        return x if self.encoder_norm is None else self.encoder_norm(x)

    def _logits(self, x, few_rows=False):
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        if self.output_projection is not None:
            logits = self.output_projection(x)
        else:
            logits = self.target_embedding.logits(x, few_rows=few_rows)
        logits = ops.cast(logits, "float32")  # (B, T, V), float32 for the loss
        if self.logits_bias is not None:
            logits = logits + self.logits_bias
        return logits

    def decode(
        self, target_ids, encoder_outputs, source_mask, return_attention_scores=False, training=None,
        source_lengths=None,
    ):
        """Full decoder pass: `(B, T)` target ids to `(B, T, V)` logits.

        The source padding is `source_mask` `(B, S)` and/or `source_lengths` `(B,)`.

        With `return_attention_scores`, also returns the per-layer list of
        `{"self": (B, H, T, T), "cross": (B, H, T, S)}` attention weights.
        """
        x = self.embedding_dropout(self.target_embedding(target_ids), training=training)
        scores = []
        for block in self.decoder_blocks:
            out = block(
                x, encoder_outputs, context_mask=source_mask, context_lengths=source_lengths,
                return_attention_scores=return_attention_scores, training=training,
            )
            x, layer_scores = out if return_attention_scores else (out, None)
            scores.append(layer_scores)
        logits = self._logits(x)
        return (logits, scores) if return_attention_scores else logits

    def init_cache(self, encoder_outputs, max_length=None, beam_width=1):
        """Per-layer decoding caches of `encoder_outputs (B, S, D)`, for `B * beam_width` rows.

        `max_length=None` gives the growing caches `decode_step` runs
        fastest on (`zoo.layers.attention_cache`: self-attention keys/values
        that grow with the positions decoded, cross-attention keys/values
        once per source, shared by its beams); an int gives
        `(self_cache, cross_cache)` buffers of `max_length` positions (fixed
        shapes, for JAX loops), repeated `beam_width` times per source.
        """
        return tuple(block.init_cache(encoder_outputs, max_length, beam_width) for block in self.decoder_blocks)

    def reorder_cache(self, cache, indices):
        """The cache of beam search's chosen beams: row `i` of the result is
        row `indices[i]`. Only the self-attention caches move (one gather
        each): the cross-attention keys/values are the same for every beam
        of a source (beam search picks parents within a source), so they stay."""
        take = lambda x: ops.take(x, indices, axis=0)  # noqa: E731
        return tuple(
            attention_cache.reorder(layer, indices) if attention_cache.is_growing(layer)
            else (keras.tree.map_structure(take, layer[0]), layer[1])
            for layer in cache
        )

    def decode_step(self, target_ids, source_mask, cache, cache_index):
        """Feeds `(B, T_new)` target tokens at `cache_index` through the caches.

        Returns `(logits (B, T_new, V), updated cache)`; the encoder outputs
        live in the cache as cross-attention keys/values. With growing caches
        (`init_cache(..., max_length=None, beam_width=W)`), the rows are
        `B * W` and `source_mask` is `(B, S)` or repeated to `(B * W, S)`.
        """
        x = self.target_embedding(target_ids, start_index=cache_index)
        new_cache = []
        growing = all(attention_cache.is_growing(layer_cache) for layer_cache in cache)
        for block, layer_cache in zip(self.decoder_blocks, cache):
            if attention_cache.is_growing(layer_cache):
                x, layer_cache = block.decode_step(x, layer_cache, cache_index, source_mask)
            else:
                x, layer_cache = block(x, context_mask=source_mask, cache=layer_cache, cache_index=cache_index)
            new_cache.append(layer_cache)
        if not growing:
            return self._logits(x, few_rows=True), tuple(new_cache)
        # Growing caches run in TensorFlow graphs without XLA, where grappler
        # folds the table's transpose into the MatMul: `(N, D) x (V, D)^T`
        # gives the `(N, V)` rows directly (no transpose of the logits; the
        # transposed-table copy `few_rows` avoids is XLA's).
        rows = self._logits(ops.reshape(x, (-1, self.d_model)))  # (N * T, V)
        return ops.reshape(rows, (ops.shape(x)[0], ops.shape(x)[1], self.target_vocab_size)), tuple(new_cache)

    def call(self, inputs, training=None):
        source_ids, target_ids = inputs["source_ids"], inputs["target_ids"]
        # Right padding as lengths: fused attention kernels skip it without a mask.
        lengths = self.source_lengths(source_ids)
        encoder_outputs = self.encode(source_ids, source_lengths=lengths, training=training)
        return self.decode(target_ids, encoder_outputs, None, source_lengths=lengths, training=training)

    @classmethod
    def layout_map(cls, device_mesh, model_dim="model", data_dim="data"):
        """A `keras.distribution.LayoutMap` for `ModelParallel` training (Megatron-style).

        Attention query/key/value and feed-forward `intermediate` kernels
        are split over `model_dim` by their output (heads, `d_ff`), the
        attention output and feed-forward `output` kernels by their input,
        embedding tables by `d_model`; the rest is replicated (see
        `zoo.models.layout_maps`). Build the model under
        `keras.distribution.ModelParallel(layout_map=..., batch_dim_name=data_dim)`.
        The model axis must divide `num_heads`, `d_model` and `d_ff`.

        Args:
            device_mesh: `keras.distribution.DeviceMesh` with both axes.
            model_dim: str. Mesh axis the weights are split over. Defaults to `"model"`.
            data_dim: str. Mesh axis the batch is split over. Defaults to `"data"`.

        Example:
        >>> devices = keras.distribution.list_devices()[:1]
        >>> mesh = keras.distribution.DeviceMesh((1, 1), ("data", "model"), devices)
        >>> layouts = TransformerTranslator.layout_map(mesh)
        >>> layouts["transformer_translator/encoder_0/self_attention/attention/query/kernel"].axes
        (None, 'model', None)
        """
        return build_layout_map(TRANSLATOR_RULES, device_mesh, model_dim, data_dim)

    # -- presets and config ----------------------------------------------
    @classmethod
    def presets(cls):
        """`{name: description}` of the built-in presets."""
        return preset_descriptions(TRANSFORMER_TRANSLATOR_PRESETS)

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds preset `name`; `overrides` replace config entries.

        The presets fix the architecture; pass the vocabulary sizes of your
        tokenizers as `source_vocab_size=` and `target_vocab_size=`.
        """
        config = preset_config(TRANSFORMER_TRANSLATOR_PRESETS, name, overrides, cls.__name__)
        missing = [k for k in ("source_vocab_size", "target_vocab_size") if k not in config]
        if missing:
            raise ValueError(
                f"Preset {name!r} fixes the architecture only; pass {', '.join(missing)} "
                "(the sizes of your tokenizers' vocabularies)."
            )
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                name: getattr(self, name)
                for name in (
                    "source_vocab_size", "target_vocab_size", "num_encoder_layers",
                    "num_decoder_layers", "d_model", "num_heads", "d_ff", "dropout",
                    "attention_dropout", "activation", "norm_first", "layer_norm_epsilon",
                    "max_length", "position", "sinusoid_layout", "scale_embeddings",
                    "share_embeddings", "tie_output_embeddings", "output_bias",
                    "pad_token_id", "start_token_id", "end_token_id",
                )
            }
        )
        return config
