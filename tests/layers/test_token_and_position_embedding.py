import math

import keras
import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import SinusoidalPositionEncoding, TokenAndPositionEmbedding

B, T, V, D, L = 2, 6, 20, 8, 10


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _ids(pad=True):
    ids = np.random.default_rng(0).integers(1, V, size=(B, T)).astype("int32")
    if pad:
        ids[1, 4:] = 0
    return ids


@pytest.mark.parametrize(
    "options",
    [
        dict(position="sinusoidal", scale_by_sqrt_dim=True, mask_zero=True),
        dict(position="learned", embeddings_initializer="glorot_uniform"),
        dict(position="none", sinusoid_layout="interleave"),
    ],
)
def test_generic_layer_checks(options, tmp_path):
    run_layer_test(
        TokenAndPositionEmbedding,
        dict(vocab_size=V, d_model=D, max_length=L, **options),
        dict(inputs=_ids()),
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


def test_generic_layer_checks_with_given_token_embedding(tmp_path):
    shared = keras.layers.ReversibleEmbedding(V, D, name="shared_tokens")
    run_layer_test(
        TokenAndPositionEmbedding,
        dict(vocab_size=V, d_model=D, max_length=L, token_embedding=shared),
        dict(inputs=_ids()),
        call_kwargs=dict(start_index=2),
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("layout", ["concat", "interleave"])
def test_sqrt_scaling_equals_hand_computation(layout):
    layer = TokenAndPositionEmbedding(V, D, L, scale_by_sqrt_dim=True, sinusoid_layout=layout)
    ids = _ids()
    out = _np(layer(ids, start_index=3))
    table = _np(layer.token_embedding.embeddings)  # (V, D)
    positions = _np(SinusoidalPositionEncoding(layout=layout)(np.zeros((1, L, D), "float32")))[0]
    expected = table[ids] * math.sqrt(D) + positions[3 : 3 + T]
    np.testing.assert_allclose(out, expected, atol=1e-5)
    unscaled = TokenAndPositionEmbedding(V, D, L, position="none")
    np.testing.assert_allclose(_np(unscaled(ids)), _np(unscaled.token_embedding.embeddings)[ids], atol=0)


def test_learned_positions_are_table_rows():
    layer = TokenAndPositionEmbedding(V, D, L, position="learned")
    ids = _ids()
    out = _np(layer(ids, start_index=L - T))
    expected = _np(layer.token_embedding.embeddings)[ids] + _np(layer.position_embedding.embeddings)[L - T :]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_default_initializer_is_normal_with_stddev_inverse_sqrt_d_model():
    layer = TokenAndPositionEmbedding(1000, 64, L, position="none")
    layer.build((B, T))
    assert abs(_np(layer.token_embedding.embeddings).std() - 64**-0.5) < 0.01


def test_mask_zero_gives_the_keras_mask():
    ids = _ids()
    layer = TokenAndPositionEmbedding(V, D, L, mask_zero=True)
    np.testing.assert_array_equal(_np(layer.compute_mask(ids)), ids != 0)
    out = layer(ids)
    np.testing.assert_array_equal(_np(out._keras_mask), ids != 0)
    inputs = keras.Input((T,), dtype="int32")
    symbolic = layer(inputs)
    assert symbolic._keras_mask is not None
    assert TokenAndPositionEmbedding(V, D, L).compute_mask(ids) is None


def test_shared_token_embedding_is_one_variable():
    encoder = TokenAndPositionEmbedding(V, D, L, name="source")
    decoder = TokenAndPositionEmbedding(V, D, L, position="learned", token_embedding=encoder.token_embedding)
    source = keras.Input((T,), dtype="int32")
    target = keras.Input((T,), dtype="int32")
    hidden = encoder(source) + decoder(target)
    model = keras.Model([source, target], decoder.logits(hidden))
    assert decoder.token_embedding is encoder.token_embedding
    token_vars = [w for w in model.trainable_weights if tuple(w.shape) == (V, D)]
    assert len(token_vars) == 1
    # One shared matrix plus the decoder's learned positions.
    assert len(model.trainable_weights) == 2
    before = _np(encoder.token_embedding.embeddings).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit([_ids(), _ids()], np.ones((B, T, V), "float32"), batch_size=B, verbose=0)
    assert not np.allclose(before, _np(decoder.token_embedding.embeddings))


def test_given_token_embedding_is_validated():
    with pytest.raises(ValueError, match=r"\(20, 8, False\).*Received.*\(20, 4, False\)"):
        TokenAndPositionEmbedding(V, D, L, token_embedding=keras.layers.ReversibleEmbedding(V, 4))
    with pytest.raises(ValueError, match=r"Received.*\(20, 8, True\)"):
        TokenAndPositionEmbedding(V, D, L, token_embedding=keras.layers.Embedding(V, D, mask_zero=True))
    with pytest.raises(ValueError, match="keras.layers.Embedding"):
        TokenAndPositionEmbedding(V, D, L, token_embedding=keras.layers.Dense(D))


def test_config_round_trip_deserializes_given_token_embedding():
    shared = keras.layers.ReversibleEmbedding(V, D, name="shared_tokens")
    layer = TokenAndPositionEmbedding(V, D, L, token_embedding=shared)
    assert TokenAndPositionEmbedding(V, D, L).get_config()["token_embedding"] is None
    revived = TokenAndPositionEmbedding.from_config(layer.get_config())
    assert isinstance(revived.token_embedding, keras.layers.ReversibleEmbedding)
    assert revived.token_embedding.name == "shared_tokens"


@pytest.mark.parametrize("few_rows", [False, True])
@pytest.mark.parametrize("reversible", [True, False])
def test_logits_are_hidden_times_embedding_transpose(reversible, few_rows):
    token_embedding = (keras.layers.ReversibleEmbedding if reversible else keras.layers.Embedding)(V, D)
    layer = TokenAndPositionEmbedding(V, D, L, token_embedding=token_embedding)
    hidden = layer(_ids())
    logits = layer.logits(hidden, few_rows=few_rows)
    assert tuple(logits.shape) == (B, T, V)
    expected = _np(hidden) @ _np(layer.token_embedding.embeddings).T
    np.testing.assert_allclose(_np(logits), expected, atol=1e-5)


def test_functional_model_with_logits_saves_and_loads(tmp_path):
    # logits() goes through the layer's own call, so the functional graph
    # holds no separate node for the inner token embedding.
    layer = TokenAndPositionEmbedding(V, D, L, position="learned", mask_zero=True)
    ids = keras.Input((None,), dtype="int32")
    model = keras.Model(ids, layer.logits(layer(ids)))
    expected = _np(model(_ids()))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(_np(loaded(_ids())), expected, atol=1e-6)


@keras.saving.register_keras_serializable(package="zoo_tests")
class SharedEmbeddingOwner(keras.Model):
    """The sharing pattern a translator model uses: it owns the matrix."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shared = keras.layers.ReversibleEmbedding(V, D, name="shared")
        self.source = TokenAndPositionEmbedding(V, D, L, token_embedding=self.shared)
        self.target = TokenAndPositionEmbedding(V, D, L, position="learned", token_embedding=self.shared)

    def call(self, inputs):
        source, target = inputs
        return self.target.logits(self.source(source) + self.target(target))


def test_sharing_owner_model_saves_and_loads(tmp_path):
    model = SharedEmbeddingOwner()
    expected = _np(model([_ids(), _ids()]))
    model.save(tmp_path / "owner.keras")
    loaded = keras.saving.load_model(tmp_path / "owner.keras")
    assert loaded.source.token_embedding is loaded.target.token_embedding is loaded.shared
    np.testing.assert_allclose(_np(loaded([_ids(), _ids()])), expected, atol=1e-6)


class DecodeStep(keras.Model):
    """One decoding step with a traced start index (compiled by predict)."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs):
        ids, start = inputs
        return self.layer(ids, start_index=start[0])


@pytest.mark.parametrize("position", ["sinusoidal", "learned"])
def test_traced_start_index_matches_full_pass(position):
    layer = TokenAndPositionEmbedding(V, D, L, position=position)
    ids = _ids(pad=False)
    full = _np(layer(ids))
    step = DecodeStep(layer)
    for t in (0, 3, T - 1):
        out = step.predict([ids[:, t : t + 1], np.full((B,), t, "int32")], batch_size=B, verbose=0)
        np.testing.assert_allclose(out, full[:, t : t + 1], atol=1e-6)


def test_mixed_precision_logits_in_compute_dtype():
    layer = TokenAndPositionEmbedding(V, D, L, scale_by_sqrt_dim=True, dtype="mixed_float16")
    hidden = layer(_ids())
    assert keras.backend.standardize_dtype(layer.logits(hidden).dtype) == "float16"
    assert keras.backend.standardize_dtype(layer.logits(hidden, few_rows=True).dtype) == "float16"


@pytest.mark.parametrize("position", ["sinusoidal", "learned"])
def test_too_long_sequence_is_a_clear_error(position):
    layer = TokenAndPositionEmbedding(V, D, 4, position=position)
    with pytest.raises(ValueError, match=r"max_length=4.*Received: a sequence of length 6"):
        layer(_ids())
    with pytest.raises(ValueError, match=r"max_length=4.*length 6"):  # symbolic
        TokenAndPositionEmbedding(V, D, 4, position=position)(keras.Input((T,), dtype="int32"))
    layer = TokenAndPositionEmbedding(V, D, L, position=position)
    with pytest.raises(ValueError, match=r"length 6 starting at start_index=5"):
        layer(_ids(), start_index=5)


def test_ids_of_another_rank_are_a_clear_error():
    layer = TokenAndPositionEmbedding(V, D, L)
    with pytest.raises(ValueError, match=r"token ids of shape \(B, T\)\. Received: inputs of shape \(2, 6, 1\)"):
        layer(_ids()[..., None])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"position must be one of .*'rotary'"):
        TokenAndPositionEmbedding(V, D, L, position="rotary")
    with pytest.raises(ValueError, match=r"sinusoid_layout must be one of .*'zigzag'"):
        TokenAndPositionEmbedding(V, D, L, sinusoid_layout="zigzag")
    for name in ("vocab_size", "d_model", "max_length"):
        args = {**dict(vocab_size=V, d_model=D, max_length=L), name: 0}
        with pytest.raises(ValueError, match=rf"{name} must be a positive int. Received: {name}=0"):
            TokenAndPositionEmbedding(**args)
    with pytest.raises(ValueError, match="even d_model. Received: d_model=7"):
        TokenAndPositionEmbedding(V, 7, L)
    TokenAndPositionEmbedding(V, 7, L, position="learned")  # odd widths are fine without sinusoids
