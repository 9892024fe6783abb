import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from zoo.models import TransformerTranslator

V_SRC, V_TGT, B, S, T = 40, 50, 2, 7, 6
TINY = dict(num_encoder_layers=2, num_decoder_layers=2, d_model=32, num_heads=4, d_ff=64)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _model(**overrides):
    args = dict(source_vocab_size=V_SRC, target_vocab_size=V_TGT, dropout=0.0, **TINY)
    args.update(overrides)
    return TransformerTranslator(**args)


def _batch(seed=0, target_vocab=V_TGT):
    rng = np.random.default_rng(seed)
    source = rng.integers(4, V_SRC, size=(B, S)).astype("int32")
    source[1, 5:] = 0  # padding
    target = rng.integers(4, target_vocab, size=(B, T)).astype("int32")
    target[:, 0] = 2  # start token
    return {"source_ids": source, "target_ids": target}


@pytest.mark.parametrize("name", sorted(TransformerTranslator.presets()))
def test_every_preset_builds_runs_and_saves(name, tmp_path):
    # Shrunk in depth only: the widths, heads and options are the preset's.
    model = TransformerTranslator.from_preset(
        name, source_vocab_size=V_SRC, target_vocab_size=V_TGT, num_encoder_layers=1, num_decoder_layers=1
    )
    logits = model(_batch())
    assert tuple(logits.shape) == (B, T, V_TGT)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded(_batch())), _np(logits), atol=1e-5)


def test_config_round_trip_through_json():
    model = _model(share_embeddings=True, target_vocab_size=V_SRC, output_bias=True, norm_first=True)
    config = json.loads(json.dumps(model.get_config()))
    clone = TransformerTranslator.from_config(config)
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    batch = _batch(target_vocab=V_SRC)
    np.testing.assert_allclose(_np(clone(batch)), _np(model(batch)), atol=1e-6)


def test_shared_embeddings_are_one_matrix_and_tied_to_the_output():
    model = _model(share_embeddings=True, target_vocab_size=V_SRC, output_bias=True)
    source_table = model.source_embedding.token_embedding.embeddings
    assert model.target_embedding.token_embedding.embeddings is source_table
    shared = [w for w in model.weights if w is source_table]
    assert len(shared) == 1
    names = [w.path for w in model.weights]
    assert len(names) == len(set(names))
    assert not any("output_projection" in n for n in names)
    # Tied: logits = decoder_out @ E^T + bias.
    batch = _batch(target_vocab=V_SRC)
    model.logits_bias.assign(np.arange(V_SRC, dtype="float32"))
    source_mask = model.source_padding_mask(batch["source_ids"])
    enc = model.encode(batch["source_ids"])
    x = model.target_embedding(batch["target_ids"])
    for block in model.decoder_blocks:
        x = block(x, enc, context_mask=source_mask)
    expected = _np(x) @ _np(source_table).T + np.arange(V_SRC)
    np.testing.assert_allclose(_np(model(batch)), expected, atol=1e-4)


def test_untied_output_projection_has_its_own_weights():
    model = _model(tie_output_embeddings=False, output_bias=True)
    assert model.output_projection is not None and model.output_projection.use_bias


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decode_step_matches_full_decoder(norm_first):
    model = _model(norm_first=norm_first)
    batch = _batch()
    full = _np(model(batch))
    source_mask = model.source_padding_mask(batch["source_ids"])
    cache = model.init_cache(model.encode(batch["source_ids"], source_mask), max_length=T)
    steps = []
    for t in range(T):
        logits, cache = model.decode_step(batch["target_ids"][:, t : t + 1], source_mask, cache, t)
        steps.append(_np(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-4)


def test_reorder_cache_moves_self_attention_rows_only():
    """Beams of one source: reordering the cache and decoding on equals
    decoding the reordered prefixes from scratch."""
    model = _model()
    batch = _batch()
    source = np.repeat(batch["source_ids"][:1], 3, axis=0)  # one source, three beams
    prefixes = np.array([[2, 5, 6], [2, 7, 8], [2, 9, 10]], "int32")
    source_mask = model.source_padding_mask(source)
    cache = model.init_cache(model.encode(source, source_mask), max_length=T)
    for t in range(3):
        _, cache = model.decode_step(prefixes[:, t : t + 1], source_mask, cache, t)
    order = np.array([2, 2, 0], "int32")
    moved = model.reorder_cache(cache, order)
    for (self_before, cross_before), (self_after, cross_after) in zip(cache, moved):
        assert cross_after is cross_before  # the same tensors: not gathered
        for before, after in zip(self_before, self_after):
            np.testing.assert_array_equal(_np(after), _np(before)[order])
    next_tokens = np.array([[11], [12], [13]], "int32")
    logits, _ = model.decode_step(next_tokens, source_mask, moved, 3)
    full = model({"source_ids": source, "target_ids": np.concatenate([prefixes[order], next_tokens], axis=1)})
    np.testing.assert_allclose(_np(logits)[:, 0], _np(full)[:, 3], atol=1e-4)


def test_source_padding_never_changes_the_translation():
    model = _model()
    batch = _batch()
    logits = _np(model(batch))
    changed = dict(batch, source_ids=np.concatenate([batch["source_ids"], np.zeros((B, 3), "int32")], 1))
    np.testing.assert_allclose(_np(model(changed)), logits, atol=1e-5)


def test_trains_and_loss_decreases():
    model = _model()
    batch = _batch()
    labels = np.roll(batch["target_ids"], -1, axis=1)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(batch, labels, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_mixed_precision_logits_are_float32():
    model = _model(dtype="mixed_bfloat16")
    logits = model(_batch())
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(_np(logits)))


def test_bad_configs_name_what_was_received():
    with pytest.raises(ValueError, match="Unknown TransformerTranslator preset 'transformer_huge'"):
        TransformerTranslator.from_preset("transformer_huge", source_vocab_size=5, target_vocab_size=5)
    with pytest.raises(ValueError, match="source_vocab_size, target_vocab_size"):
        TransformerTranslator.from_preset("transformer_tiny")
    with pytest.raises(ValueError, match="share_embeddings.*source_vocab_size=40, target_vocab_size=50"):
        _model(share_embeddings=True)
    with pytest.raises(ValueError, match="end_token_id.*Received: end_token_id=99"):
        _model(end_token_id=99)
    with pytest.raises(ValueError, match="num_heads must divide d_model"):
        _model(num_heads=5)
