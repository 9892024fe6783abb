"""Model options checked against numbers computed another way (NumPy, by
hand): the translator's learned positions and interleaved sinusoids,
multi-token cached prefill, the decoder's attention weights; the ViT with
other than 3 image channels."""

import numpy as np
import pytest
from keras import ops

from tests.layers.numpy_attention import attention, layer_norm, to_numpy
from zoo.models import TransformerTranslator, VisionTransformer

V_SRC, V_TGT, B, S, T, D = 30, 40, 2, 7, 6, 16
TINY = dict(num_encoder_layers=1, num_decoder_layers=2, d_model=D, num_heads=2, d_ff=32, dropout=0.0, max_length=12)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _batch():
    rng = np.random.default_rng(0)
    source = rng.integers(4, V_SRC, size=(B, S)).astype("int32")
    source[1, 4:] = 0  # padding
    target = rng.integers(4, V_TGT, size=(B, T)).astype("int32")
    target[:, 0] = 2
    return source, target


def _sinusoids(positions, dim, layout):
    """The closed formula: sin at even features and cos at odd ones ("interleave"), or sin | cos ("concat")."""
    angles = np.asarray(positions, "float64")[:, None] * 10000 ** (-2.0 * np.arange(dim // 2) / dim)
    if layout == "concat":
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
    table = np.empty((len(positions), dim))
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
    return table


@pytest.mark.parametrize("options", [dict(position="learned"), dict(sinusoid_layout="interleave")],
                         ids=["learned", "interleave"])
def test_position_options_reach_both_embeddings(options):
    model = TransformerTranslator(V_SRC, V_TGT, **TINY, **options)
    source, target = _batch()
    for embedding, ids in ((model.source_embedding, source), (model.target_embedding, target)):
        if options.get("position") == "learned":
            table = to_numpy(embedding.position_embedding.embeddings)
            assert table.shape == (12, D)
        else:
            table = _sinusoids(range(12), D, "interleave")
        tokens = to_numpy(embedding.token_embedding.embeddings)[ids] * np.sqrt(D)
        np.testing.assert_allclose(_np(embedding(ids)), tokens + table[: ids.shape[1]], atol=1e-5)
        # Decoding steps read the rows of their absolute positions.
        np.testing.assert_allclose(_np(embedding(ids[:, :3], start_index=5)), tokens[:, :3] + table[5:8], atol=1e-5)


@pytest.mark.parametrize("options", [dict(), dict(position="learned"), dict(sinusoid_layout="interleave", norm_first=True)],
                         ids=["default", "learned", "interleave-prenorm"])
def test_multi_token_prefill_then_steps_equal_the_full_decoder(options):
    model = TransformerTranslator(V_SRC, V_TGT, **TINY, **options)
    source, target = _batch()
    full = _np(model({"source_ids": source, "target_ids": target}))
    mask = model.source_padding_mask(source)
    cache = model.init_cache(model.encode(source, mask), max_length=T)
    pieces = []
    for start, stop in ((0, 3), (3, 5), (5, 6)):  # a 3-token prefill, a 2-token chunk, one step
        logits, cache = model.decode_step(target[:, start:stop], mask, cache, start)
        pieces.append(_np(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-4)


def test_decoder_attention_scores_equal_a_numpy_decoder():
    """Post-norm decoder layers in NumPy from the model's weights: causal
    self-attention, Add & Norm, cross-attention over the unpadded source,
    Add & Norm, ReLU feed-forward, Add & Norm; then the tied projection."""
    model = TransformerTranslator(V_SRC, V_TGT, **TINY)
    source, target = _batch()
    mask = model.source_padding_mask(source)
    encoded = model.encode(source, mask)
    logits, scores = model.decode(target, encoded, mask, return_attention_scores=True)
    x, context = to_numpy(model.target_embedding(target)), to_numpy(encoded)
    causal = np.tril(np.ones((T, T), bool))[None]
    source_mask = (source != 0)[:, None, :]  # (B, 1, S)
    assert len(scores) == 2
    for block, layer_scores in zip(model.decoder_blocks, scores):
        self_sub, cross_sub, ffn = block.causal_self_attention, block.cross_attention, block.feed_forward
        out, self_weights = attention(self_sub.attention, x, x, mask=causal)
        x = layer_norm(x + out, self_sub.layer_norm)
        out, cross_weights = attention(cross_sub.attention, x, context, mask=source_mask)
        x = layer_norm(x + out, cross_sub.layer_norm)
        hidden = np.maximum(x @ to_numpy(ffn.intermediate_dense.kernel) + to_numpy(ffn.intermediate_dense.bias), 0)
        x = layer_norm(x + hidden @ to_numpy(ffn.output_dense.kernel) + to_numpy(ffn.output_dense.bias), ffn.layer_norm)
        np.testing.assert_allclose(_np(layer_scores["self"]), self_weights, atol=1e-5)
        np.testing.assert_allclose(_np(layer_scores["cross"]), cross_weights, atol=1e-5)
        assert np.all(_np(layer_scores["cross"])[1, :, :, 4:] == 0)  # padded source positions
    expected = x @ to_numpy(model.target_embedding.token_embedding.embeddings).T
    np.testing.assert_allclose(_np(logits), expected, atol=1e-4)
    np.testing.assert_allclose(_np(logits), _np(model({"source_ids": source, "target_ids": target})), atol=1e-5)


@pytest.mark.parametrize("channels", [1, 4])
def test_vision_transformer_with_other_channel_counts(channels):
    model = VisionTransformer(
        image_size=8, patch_size=4, num_classes=3, d_model=D, num_encoder_layers=1, num_heads=2, d_ff=32,
        num_channels=channels,
    )
    assert tuple(model.patch_embedding.projection.kernel.shape) == (4, 4, channels, D)
    images = np.random.default_rng(0).normal(size=(B, 8, 8, channels)).astype("float32")
    # Patches by hand: 2 x 2 grid, row by row, each flattened as (row, column, channel).
    patches = images.reshape(B, 2, 4, 2, 4, channels).transpose(0, 1, 3, 2, 4, 5).reshape(B, 4, 16 * channels)
    kernel = to_numpy(model.patch_embedding.projection.kernel).reshape(16 * channels, D)
    expected = patches @ kernel + to_numpy(model.patch_embedding.projection.bias)
    np.testing.assert_allclose(_np(model.patch_embedding(images)), expected, atol=1e-5)
    logits = _np(model(images))
    assert logits.shape == (B, 3) and np.all(np.isfinite(logits))
    changed = images.copy()
    changed[..., -1] += 1.0  # the last channel is read
    assert not np.allclose(_np(model(changed)), logits)
    clone = VisionTransformer.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(_np(clone(images)), logits, atol=1e-5)
