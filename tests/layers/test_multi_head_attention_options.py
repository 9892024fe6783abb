"""MultiHeadAttention options against a NumPy attention: value_dim, a separate
key, rotary_max_wavelength, and the cache's "not yet written" mask without a
causal mask."""

import numpy as np
import pytest
from keras import ops

from tests.layers.numpy_attention import attention as numpy_attention
from zoo.layers import MultiHeadAttention

B, T, S, D, H, K = 2, 4, 6, 12, 3, 4


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_value_dim_and_a_separate_key():
    query, key, value = _normal(B, T, D), _normal(B, S, D, seed=1), _normal(B, S, D, seed=2)
    mha = MultiHeadAttention(num_heads=H, key_dim=K, value_dim=6)
    out, scores = mha(query, value, key=key, return_attention_scores=True)
    assert tuple(mha.value_dense.kernel.shape) == (D, H, 6) and tuple(mha.key_dense.kernel.shape) == (D, H, K)
    assert tuple(mha.output_dense.kernel.shape) == (H, 6, D)
    expected, weights = numpy_attention(mha, query, value, key)
    np.testing.assert_allclose(_np(scores), weights, atol=1e-6)
    np.testing.assert_allclose(_np(out), expected, atol=1e-5)
    np.testing.assert_allclose(_np(mha(query, value, key=key)), expected, atol=1e-5)  # without scores
    # The static cross-attention cache takes the same separate key.
    cached, _ = mha(query, None, cache=mha.compute_cache(value, key=key))
    np.testing.assert_allclose(_np(cached), expected, atol=1e-5)


def test_value_dim_in_the_growing_cache():
    x = _normal(B, T, D)
    mha = MultiHeadAttention(num_heads=H, key_dim=K, value_dim=6)
    full = _np(mha(x, x, use_causal_mask=True))
    cache = mha.init_cache(B, T)
    assert tuple(cache[0].shape) == (B, T, H, K) and tuple(cache[1].shape) == (B, T, H, 6)
    steps = []
    for t in range(T):
        out, cache = mha(x[:, t : t + 1], x[:, t : t + 1], use_causal_mask=True, cache=cache, cache_index=t)
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("max_wavelength", [10000, 50])
def test_rotary_max_wavelength(max_wavelength):
    x = _normal(B, T, D)
    mha = MultiHeadAttention(num_heads=H, key_dim=K, use_rotary=True, rotary_max_wavelength=max_wavelength)
    assert MultiHeadAttention.from_config(mha.get_config()).rotary_max_wavelength == max_wavelength
    causal = np.tril(np.ones((T, T), bool))[None]
    out, scores = mha(x, x, use_causal_mask=True, return_attention_scores=True)
    expected, weights = numpy_attention(mha, x, x, mask=causal)
    np.testing.assert_allclose(_np(scores), weights, atol=1e-6)
    np.testing.assert_allclose(_np(out), expected, atol=1e-5)
    # Decoding continues at cache positions: queries rotate by their absolute position.
    cache = mha.init_cache(B, T + 2)
    _, cache = mha(x[:, :2], x[:, :2], use_causal_mask=True, cache=cache, cache_index=0)
    out, _ = mha(x[:, 2:], x[:, 2:], use_causal_mask=True, cache=cache, cache_index=2)
    np.testing.assert_allclose(_np(out), expected[:, 2:], atol=1e-5)


@pytest.mark.parametrize("return_scores", [False, True])
def test_cache_positions_not_yet_written_are_never_attended(return_scores):
    """A cache written without a causal mask (chunks see each other fully):
    attention covers every written position and none after, whatever the
    unwritten rows hold (here: stale random values)."""
    x = _normal(B, 5, D)
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    mha(x, x)  # build
    stale = (_normal(B, 8, H, K, seed=3), _normal(B, 8, H, K, seed=4))
    _, cache = mha(x[:, :3], x[:, :3], cache=stale, cache_index=0)
    results = mha(x[:, 3:], x[:, 3:], cache=cache, cache_index=3, return_attention_scores=return_scores)
    # The NumPy attention over the 5 written positions, with the real keys/values.
    expected, weights = numpy_attention(mha, x[:, 3:], x)
    np.testing.assert_allclose(_np(results[0]), expected, atol=1e-5)
    if return_scores:
        scores = _np(results[1])  # (B, H, 2, 8)
        np.testing.assert_allclose(scores[..., :5], weights, atol=1e-6)
        np.testing.assert_array_equal(scores[..., 5:], 0.0)
