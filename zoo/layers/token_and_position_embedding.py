"""Token embedding plus positions, with a tied output projection.

Written here rather than using `keras_hub.layers.TokenAndPositionEmbedding`
because real translation checkpoints (the paper, Marian) need what that layer
lacks: sinusoidal positions in either layout, scaling token embeddings by
`sqrt(d_model)`, and one token matrix shared between encoder, decoder and
output projection. The token embedding is Keras core's `ReversibleEmbedding`,
whose reverse call is the tied projection.
"""

import math
import numbers

import keras
from keras import ops

from zoo.layers.position_embedding import PositionEmbedding
from zoo.layers.sinusoidal_position_encoding import LAYOUTS, SinusoidalPositionEncoding

POSITIONS = ("sinusoidal", "learned", "none")


def _clone(initializer):
    return keras.initializers.deserialize(keras.initializers.serialize(initializer))


@keras.saving.register_keras_serializable(package="zoo")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Embeds token ids and adds fixed or learned position vectors.

    Computes `E[ids] * s + P[start_index : start_index + T]`, with
    `s = sqrt(d_model)` if `scale_by_sqrt_dim` (Vaswani et al., 2017, 3.4;
    Marian), else 1; `P` is sinusoidal, learned or zero. `logits(hidden)`,
    the same as a call with `reverse=True`, is the tied output projection
    `hidden @ E^T` (through this layer's call, so functional models save).

    Args:
        vocab_size: int. Number of token ids `V`.
        d_model: int. Embedding width `D` (even for sinusoidal positions).
        max_length: int. Longest sequence accepted (`start_index + T`); the
            size of the learned position table.
        position: str. `"sinusoidal"`, `"learned"` or `"none"`.
            Defaults to `"sinusoidal"`.
        scale_by_sqrt_dim: bool. Multiply token embeddings (not positions)
            by `sqrt(d_model)`. Defaults to `False`.
        mask_zero: bool. Id 0 is padding: the output carries the Keras mask
            `ids != 0`. Defaults to `False`.
        sinusoid_layout: str. `"concat"` (`[sin | cos]`, the paper's common
            implementations and Marian) or `"interleave"` (keras-hub).
            Defaults to `"concat"`.
        embeddings_initializer: initializer for the token matrix and the
            learned position table. Defaults to `None`: normal, stddev
            `d_model**-0.5` (fairseq, tensor2tensor), so tied logits of a
            unit-variance `hidden` have unit variance, and token embeddings
            scaled by `sqrt(d_model)` match the sinusoids' unit amplitude.
        token_embedding: an existing `keras.layers.Embedding` (usually a
            `keras.layers.ReversibleEmbedding`) to share, e.g. between encoder
            and decoder. Its sizes and `mask_zero` must match; give it
            `reverse_dtype` under mixed precision, or `logits` run in float32.
            Defaults to `None`: create one. A config round trip copies it, so
            a model sharing one matrix re-links it in its own `from_config`.

    Call arguments:
        inputs: `(B, T)` integer token ids; `(B, T, D)` hidden states
            when `reverse=True`.
        start_index: int or scalar tensor. Position of the first token, for
            incremental decoding. Defaults to `0`.
        reverse: bool. Project hidden states to `(B, T, V)` logits with the
            transposed token matrix instead. Defaults to `False`.

    Returns:
        `(B, T, D)` embeddings in the compute dtype, or `(B, T, V)` logits.

    Example:
    >>> embed = TokenAndPositionEmbedding(vocab_size=10, d_model=8, max_length=6)
    >>> hidden = embed(keras.ops.array([[1, 2, 3]]))
    >>> tuple(hidden.shape), tuple(embed.logits(hidden).shape)
    ((1, 3, 8), (1, 3, 10))

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
        Press and Wolf, "Using the Output Embedding to Improve Language
        Models", 2017.
    """

    def __init__(
        self,
        vocab_size,
        d_model,
        max_length,
        position="sinusoidal",
        scale_by_sqrt_dim=False,
        mask_zero=False,
        sinusoid_layout="concat",
        embeddings_initializer=None,
        token_embedding=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        sizes = dict(vocab_size=vocab_size, d_model=d_model, max_length=max_length)
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}. Received: position={position!r}")
        if sinusoid_layout not in LAYOUTS:
            raise ValueError(
                f"sinusoid_layout must be one of {LAYOUTS}. Received: sinusoid_layout={sinusoid_layout!r}"
            )
        if position == "sinusoidal" and d_model % 2:
            raise ValueError(f"Sinusoidal positions need an even d_model. Received: d_model={d_model}")
        self.vocab_size = int(vocab_size)
        self.d_model = int(d_model)
        self.max_length = int(max_length)
        self.position = position
        self.scale_by_sqrt_dim = scale_by_sqrt_dim
        self.mask_zero = mask_zero
        self.sinusoid_layout = sinusoid_layout
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomNormal(stddev=self.d_model**-0.5)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self._shares_token_embedding = token_embedding is not None
        # Sublayers are made here, not in build(), so that `token_embedding`
        # can be handed to another layer as soon as this one exists.
        if token_embedding is None:
            token_embedding = keras.layers.ReversibleEmbedding(
                self.vocab_size,
                self.d_model,
                tie_weights=True,
                embeddings_initializer=_clone(self.embeddings_initializer),
                mask_zero=mask_zero,
                # Keras' Embedding turns autocasting off, so nested in this
                # layer its reverse matmul would run in float32.
                reverse_dtype=self.compute_dtype,
                dtype=self.dtype_policy,
                name="token_embedding",
            )
        else:
            self._check_shared(token_embedding)
        self.token_embedding = token_embedding
        self.position_embedding = None
        if position == "sinusoidal":
            self.position_embedding = SinusoidalPositionEncoding(
                layout=sinusoid_layout, dtype=self.dtype_policy, name="position_encoding"
            )
        elif position == "learned":
            initializer = _clone(self.embeddings_initializer)
            self.position_embedding = PositionEmbedding(
                self.max_length, initializer, dtype=self.dtype_policy, name="position_embedding"
            )

    def _check_shared(self, layer):
        if not isinstance(layer, keras.layers.Embedding):
            raise ValueError(
                "token_embedding must be a keras.layers.Embedding or ReversibleEmbedding. "
                f"Received: token_embedding={layer!r}"
            )
        got = (layer.input_dim, layer.output_dim, layer.mask_zero)
        want = (self.vocab_size, self.d_model, self.mask_zero)
        if got != want:
            raise ValueError(
                "token_embedding must match (vocab_size, d_model, mask_zero) = "
                f"{want}. Received: token_embedding with (input_dim, output_dim, mask_zero) = {got}"
            )

    def build(self, input_shape):
        # input_shape is (B, T) ids, or (B, T, D) when first called in reverse.
        if not self.token_embedding.built:
            self.token_embedding.build(tuple(input_shape)[:2])
        if self.position_embedding is not None:
            self.position_embedding.build((None, None, self.d_model))
        self.built = True

    def _check_length(self, length, start_index):
        # Symbolic calls trace call() too, so this catches them. Unknown
        # (None or JAX-symbolic) lengths pass.
        if not isinstance(length, int):
            return
        start = int(start_index) if isinstance(start_index, numbers.Integral) else 0
        if start + length > self.max_length:
            raise ValueError(
                f"TokenAndPositionEmbedding accepts at most max_length={self.max_length} "
                f"positions. Received: a sequence of length {length}"
                + (f" starting at start_index={start}" if start else "")
            )

    def call(self, inputs, start_index=0, reverse=False, few_rows=False):
        if reverse:
            return self._project_few_rows(inputs) if few_rows else self._project(inputs)
        if len(inputs.shape) != 2:
            raise ValueError(
                f"TokenAndPositionEmbedding expects token ids of shape (B, T). Received: inputs of shape "
                f"{tuple(inputs.shape)}"
            )
        self._check_length(inputs.shape[-1], start_index)
        tokens = ops.cast(self.token_embedding(inputs), self.compute_dtype)  # (B, T, D)
        if self.scale_by_sqrt_dim:
            tokens = tokens * ops.cast(math.sqrt(self.d_model), tokens.dtype)
        if self.position_embedding is not None:
            tokens = tokens + self.position_embedding(tokens, start_index=start_index)
        return tokens  # (B, T, D)

    def logits(self, hidden, few_rows=False):
        """Tied output projection: `(B, T, D)` hidden states to `(B, T, V)` logits.

        `few_rows=True` suits decoding steps (`B * T` small): it computes
        `(E h^T)^T` with the `(V, D)` table `E` as it is stored, where the
        default `h E^T` makes XLA copy the transposed table at every step
        (on CPU that copy took longer than the step's attention). With many
        rows (training) the default is the cheaper one.
        """
        return self(hidden, reverse=True, few_rows=few_rows)

    def _table(self, dtype):
        """The `(V, D)` token matrix in `dtype`; an int8-quantized table
        (`model.quantize("int8")`: int8 rows, one scale per row) is
        dequantized, as Keras' `embeddings` property does not."""
        embedding = self.token_embedding
        mode = getattr(embedding, "quantization_mode", None)
        if mode is None:
            return ops.cast(embedding.embeddings, dtype)
        if mode != "int8":
            raise ValueError(
                "TokenAndPositionEmbedding projects with a float or int8-quantized token table. "
                f"Received: a table quantized as {mode!r}"
            )
        scale = ops.cast(embedding.embeddings_scale, dtype)  # (V,)
        return ops.cast(embedding.embeddings, dtype) / scale[:, None]  # (V, D)

    def _project_few_rows(self, hidden):
        table = self._table(hidden.dtype)  # (V, D)
        flat = ops.reshape(hidden, (-1, self.d_model))  # (B*T, D)
        logits = ops.transpose(ops.matmul(table, ops.transpose(flat)))  # (B*T, V)
        return ops.reshape(logits, (ops.shape(hidden)[0], ops.shape(hidden)[1], self.vocab_size))

    def _project(self, hidden):
        if isinstance(self.token_embedding, keras.layers.ReversibleEmbedding):
            return self.token_embedding(hidden, reverse=True)  # (B, T, V)
        table = self._table(hidden.dtype)  # (V, D)
        return ops.matmul(hidden, ops.transpose(table))  # (B, T, V)

    def compute_output_spec(self, inputs, start_index=0, reverse=False, few_rows=False):
        # Shapes from the arguments, the dtype from a trace at length 1:
        # Keras' PyTorch backend traces unknown lengths as 83 and 89, which
        # a max_length may refuse.
        shape = tuple(inputs.shape)
        if not reverse:
            self._check_length(shape[-1], start_index)
        probe = keras.KerasTensor(tuple(1 if n is None else n for n in shape), dtype=inputs.dtype)
        traced = super().compute_output_spec(probe, start_index=start_index, reverse=reverse, few_rows=few_rows)
        out = shape[:-1] + (self.vocab_size,) if reverse else shape + (self.d_model,)  # (B, T, V) or (B, T, D)
        return keras.KerasTensor(out, dtype=traced.dtype)

    def compute_mask(self, inputs, mask=None):
        # Float inputs are hidden states of a reverse call: keep their mask.
        is_ids = not keras.backend.standardize_dtype(inputs.dtype).startswith(("float", "bfloat"))
        return ops.not_equal(inputs, 0) if self.mask_zero and is_ids else mask

    def get_config(self):
        config = super().get_config()
        shared = self.token_embedding if self._shares_token_embedding else None
        config.update(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            max_length=self.max_length,
            position=self.position,
            scale_by_sqrt_dim=self.scale_by_sqrt_dim,
            mask_zero=self.mask_zero,
            sinusoid_layout=self.sinusoid_layout,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
            token_embedding=None if shared is None else keras.saving.serialize_keras_object(shared),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("token_embedding") is not None:
            config["token_embedding"] = keras.saving.deserialize_keras_object(config["token_embedding"])
        return cls(**config)
