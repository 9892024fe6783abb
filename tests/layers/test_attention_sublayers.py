"""GlobalSelfAttention, CausalSelfAttention and CrossAttention."""

import keras
import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import CausalSelfAttention, CrossAttention, GlobalSelfAttention

B, T, S, D, H = 2, 6, 7, 16, 4
ARGS = dict(num_heads=H, key_dim=D // H, dropout=0.1, attention_dropout=0.1)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _x(length=T, seed=0):
    return np.random.default_rng(seed).normal(size=(B, length, D)).astype("float32")


def _layer_norm(x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps)


@pytest.mark.parametrize("norm_first", [False, True])
def test_global_self_attention_generic(tmp_path, norm_first):
    run_layer_test(
        GlobalSelfAttention, dict(ARGS, norm_first=norm_first, drop_path_rate=0.1),
        dict(x=_x()), expected_output_shape=(B, T, D), tmp_path=tmp_path,
    )


def test_causal_self_attention_generic(tmp_path):
    run_layer_test(
        CausalSelfAttention, dict(ARGS, use_rotary=True), dict(x=_x()),
        expected_output_shape=(B, T, D), tmp_path=tmp_path,
    )


def test_cross_attention_generic(tmp_path):
    run_layer_test(
        CrossAttention, dict(ARGS, norm_first=True, qkv_bias=False), dict(x=_x(), context=_x(S, 1)),
        expected_output_shape=(B, T, D), tmp_path=tmp_path,
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_add_and_norm_matches_hand_computation(norm_first):
    x = _x()
    layer = GlobalSelfAttention(num_heads=H, key_dim=D // H, norm_first=norm_first)
    out = _np(layer(x))
    mha = layer.attention
    if norm_first:
        h = _layer_norm(x)
        expected = x + _np(mha(h, h))
    else:
        expected = _layer_norm(x + _np(mha(x, x)))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_global_self_attention_ignores_padded_positions():
    x = _x()
    pad = np.ones((B, T), bool)
    pad[0, 4:] = False
    layer = GlobalSelfAttention(num_heads=H, key_dim=D // H)
    out = _np(layer(x, attention_mask=pad))
    x2 = x.copy()
    x2[0, 4:] = 123.0
    out2 = _np(layer(x2, attention_mask=pad))
    np.testing.assert_allclose(out2[0, :4], out[0, :4], atol=1e-5)
    np.testing.assert_allclose(out2[1], out[1], atol=1e-5)


def test_global_self_attention_uses_keras_implicit_mask():
    ids = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    embed = keras.layers.Embedding(10, D, mask_zero=True)
    layer = GlobalSelfAttention(num_heads=H, key_dim=D // H)
    x = embed(ids)
    implicit = _np(layer(x))
    explicit = _np(layer(_np(x), attention_mask=ids != 0))
    np.testing.assert_allclose(implicit[0, :3], explicit[0, :3], atol=1e-5)
    np.testing.assert_allclose(implicit[1], explicit[1], atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_future_tokens_never_change_the_past(norm_first):
    x = _x()
    layer = CausalSelfAttention(num_heads=H, key_dim=D // H, norm_first=norm_first)
    out = _np(layer(x))
    for t in range(T - 1):
        changed = x.copy()
        changed[:, t + 1 :] = np.random.default_rng(t).normal(size=changed[:, t + 1 :].shape)
        np.testing.assert_allclose(_np(layer(changed))[:, : t + 1], out[:, : t + 1], atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_cache_matches_full_pass(norm_first):
    x = _x()
    layer = CausalSelfAttention(num_heads=H, key_dim=D // H, norm_first=norm_first, use_rotary=True)
    full = _np(layer(x))
    cache = layer.init_cache(B, T + 2, D)
    outs = []
    for t in range(T):
        out, cache = layer(x[:, t : t + 1], cache=cache, cache_index=t)
        outs.append(_np(out))
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=1e-5)


def test_cross_attention_ignores_padded_source_positions():
    x, context = _x(), _x(S, 1)
    source_mask = np.ones((B, S), bool)
    source_mask[:, 5:] = False
    layer = CrossAttention(num_heads=H, key_dim=D // H)
    out = _np(layer(x, context, context_mask=source_mask))
    context2 = context.copy()
    context2[:, 5:] = -50.0
    np.testing.assert_allclose(_np(layer(x, context2, context_mask=source_mask)), out, atol=1e-5)
    # Unmasked, the same change does matter.
    assert not np.allclose(_np(layer(x, context2)), _np(layer(x, context)), atol=1e-3)


def test_cross_attention_static_cache_and_scores():
    x, context = _x(), _x(S, 1)
    source_mask = np.ones((B, S), bool)
    source_mask[1, 3:] = False
    layer = CrossAttention(num_heads=H, key_dim=D // H)
    out, scores = layer(x, context, context_mask=source_mask, return_attention_scores=True)
    assert tuple(scores.shape) == (B, H, T, S)
    np.testing.assert_allclose(_np(scores)[1, :, :, 3:], 0.0)
    cache = layer.compute_cache(context)
    cached_out, _ = layer(x, None, context_mask=source_mask, cache=cache)
    np.testing.assert_allclose(_np(cached_out), _np(out), atol=1e-5)


def test_drop_path_drops_whole_examples_in_training_only():
    x = _x()
    layer = GlobalSelfAttention(num_heads=H, key_dim=D // H, norm_first=True, drop_path_rate=0.5)
    inference = _np(layer(x, training=False))
    assert not np.allclose(inference, x)
    dropped = 0
    for _ in range(10):
        out = _np(layer(x, training=True))
        dropped += sum(np.allclose(out[b], x[b]) for b in range(B))
    assert 0 < dropped < 20


def test_errors_name_what_was_received():
    with pytest.raises(ValueError, match="CausalSelfAttention: a cache needs a cache_index"):
        layer = CausalSelfAttention(num_heads=H, key_dim=D // H)
        layer(_x(1), cache=layer.init_cache(B, 4, D))
    with pytest.raises(ValueError, match="needs `context`"):
        CrossAttention(num_heads=H, key_dim=D // H)(_x())
    with pytest.raises(ValueError, match="drop_path_rate.*Received: drop_path_rate=2"):
        GlobalSelfAttention(num_heads=H, key_dim=4, drop_path_rate=2)
