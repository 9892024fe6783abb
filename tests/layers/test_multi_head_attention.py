import keras
import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import MultiHeadAttention

B, T, S, D, H, K = 2, 5, 7, 16, 4, 4


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _inputs(rng=None):
    rng = rng or np.random.default_rng(0)
    return (
        rng.normal(size=(B, T, D)).astype("float32"),
        rng.normal(size=(B, S, D)).astype("float32"),
    )


def test_generic_layer_checks(tmp_path):
    query, value = _inputs()
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=H, key_dim=K, dropout=0.1),
        dict(query=query, value=value),
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


def test_generic_layer_checks_without_qkv_bias(tmp_path):
    query, value = _inputs()
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=H, key_dim=K, qkv_bias=False),
        dict(query=query, value=value),
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize(
    "use_bias, qkv_bias, query_key_value, output",
    [(True, None, True, True), (False, None, False, False), (True, False, False, True), (False, True, True, False)],
)
def test_qkv_bias_sets_only_the_query_key_value_biases(use_bias, qkv_bias, query_key_value, output):
    mha = MultiHeadAttention(num_heads=H, key_dim=K, use_bias=use_bias, qkv_bias=qkv_bias)
    query, value = _inputs()
    mha(query, value)
    for dense in (mha.query_dense, mha.key_dense, mha.value_dense):
        assert (dense.bias is not None) == query_key_value
    assert (mha.output_dense.bias is not None) == output
    assert len(mha.weights) == 4 + 3 * query_key_value + output


def test_generic_layer_checks_with_causal_mask_and_rotary(tmp_path):
    query, _ = _inputs()
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=H, key_dim=K, use_rotary=True, output_dim=8),
        dict(query=query, value=query),
        call_kwargs=dict(use_causal_mask=True),
        expected_output_shape=(B, T, 8),
        tmp_path=tmp_path,
    )


def _copy_to_keras(ours, theirs, query, value):
    theirs(query, value)
    for src, dst in zip(ours.weights, theirs.weights):
        assert tuple(src.shape) == tuple(dst.shape), (src.path, dst.path)
        dst.assign(src)


@pytest.mark.parametrize("masked", [False, True])
def test_matches_keras_multi_head_attention(masked):
    query, value = _inputs()
    ours = MultiHeadAttention(num_heads=H, key_dim=K)
    mask = None
    if masked:
        mask = np.ones((B, T, S), bool)
        mask[0, :, 4:] = False
        mask[1, 2:, :3] = False
    ours_out, ours_scores = ours(query, value, attention_mask=mask, return_attention_scores=True)
    theirs = keras.layers.MultiHeadAttention(num_heads=H, key_dim=K)
    _copy_to_keras(ours, theirs, query, value)
    their_out, their_scores = theirs(query, value, attention_mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(_np(ours_out), _np(their_out), atol=1e-5)
    np.testing.assert_allclose(_np(ours_scores), _np(their_scores), atol=1e-6)
    # The fused path (no scores requested) gives the same output.
    np.testing.assert_allclose(_np(ours(query, value, attention_mask=mask)), _np(their_out), atol=1e-5)


def test_scores_equal_numpy_softmax():
    query, value = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K, use_bias=False)
    _, scores = mha(query, value, return_attention_scores=True)
    wq = _np(mha.query_dense.kernel)  # (D, H, K)
    wk = _np(mha.key_dense.kernel)
    q = np.einsum("btd,dhk->bhtk", query, wq)
    k = np.einsum("bsd,dhk->bhsk", value, wk)
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(K)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(_np(scores), expected, atol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("return_scores", [False, True])
def test_fully_masked_row_gives_zeros_not_nan(return_scores, policy):
    query, value = _inputs()
    mask = np.ones((B, T, S), bool)
    mask[0, 1, :] = False
    mask[1, :, -2:] = False  # padding: masked keys get no weight, even in float16
    mha = MultiHeadAttention(num_heads=H, key_dim=K, use_bias=False, dtype=policy)
    out = mha(query, value, attention_mask=mask, return_attention_scores=return_scores)
    out = _np(out[0] if return_scores else out)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0, 1], 0.0)
    assert np.abs(out[0, 0]).sum() > 0
    padded = _np(mha(query, value[:, :-2], attention_mask=mask[:, :, :-2]))
    np.testing.assert_allclose(out[1], padded[1], atol=1e-2 if policy != "float32" else 1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_softmax_in_float32_under_mixed_precision(policy):
    query, value = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K, dtype=policy)
    out, scores = mha(query * 10, value * 10, return_attention_scores=True)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    np.testing.assert_allclose(_np(ops.sum(scores, -1)), 1.0, atol=1e-5)
    assert np.all(np.isfinite(_np(ops.cast(out, "float32"))))


def test_padding_mask_ranks_compose():
    query, value = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    pad = np.ones((B, S), bool)
    pad[:, 5:] = False
    out2 = mha(query, value, attention_mask=pad)
    out3 = mha(query, value, attention_mask=np.broadcast_to(pad[:, None, :], (B, T, S)))
    out4 = mha(query, value, attention_mask=np.broadcast_to(pad[:, None, None, :], (B, H, T, S)))
    np.testing.assert_allclose(_np(out2), _np(out3), atol=1e-6)
    np.testing.assert_allclose(_np(out2), _np(out4), atol=1e-6)
    # Masked positions are ignored: changing them changes nothing.
    changed = value.copy()
    changed[:, 5:] += 10.0
    np.testing.assert_allclose(_np(mha(query, changed, attention_mask=pad)), _np(out2), atol=1e-5)


def test_keras_implicit_mask_is_honoured():
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    embed = keras.layers.Embedding(10, D, mask_zero=True)
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    x = embed(ids)
    implicit = _np(mha(x, x))
    explicit_mask = (ids != 0)[:, :, None] & (ids != 0)[:, None, :]
    explicit = _np(mha(_np(x), _np(x), attention_mask=explicit_mask))
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    np.testing.assert_array_equal(implicit[0, 3:], 0.0)  # padded queries


def test_causal_mask_composes_with_padding():
    query, _ = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    pad = np.ones((B, T), bool)
    pad[1, 3:] = False
    explicit = np.tril(np.ones((T, T), bool))[None] & pad[:, None, :]
    a = mha(query, query, attention_mask=pad, use_causal_mask=True)
    b = mha(query, query, attention_mask=explicit)
    np.testing.assert_allclose(_np(a), _np(b), atol=1e-6)


@pytest.mark.parametrize("use_rotary", [False, True])
def test_incremental_cache_equals_full_causal_pass(use_rotary):
    x, _ = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K, use_rotary=use_rotary)
    full = _np(mha(x, x, use_causal_mask=True))
    cache = mha.init_cache(B, T + 3)
    steps = []
    for t in range(T):
        step = x[:, t : t + 1]
        out, cache = mha(step, step, use_causal_mask=True, cache=cache, cache_index=t)
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    # Prefill two tokens at once, then continue one by one.
    cache = mha.init_cache(B, T)
    out, cache = mha(x[:, :2], x[:, :2], use_causal_mask=True, cache=cache, cache_index=0)
    outs = [_np(out)]
    for t in range(2, T):
        out, cache = mha(x[:, t : t + 1], x[:, t : t + 1], use_causal_mask=True, cache=cache, cache_index=t)
        outs.append(_np(out))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-5)


def test_static_cross_attention_cache():
    query, value = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    pad = np.ones((B, S), bool)
    pad[0, 4:] = False
    full = _np(mha(query, value, attention_mask=pad))
    cache = mha.compute_cache(value)
    out, same_cache = mha(query, None, attention_mask=pad, cache=cache)
    np.testing.assert_allclose(_np(out), full, atol=1e-6)
    np.testing.assert_array_equal(_np(same_cache[0]), _np(cache[0]))  # static: unchanged


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(num_heads=0, key_dim=4)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(num_heads=2, key_dim=4, dropout=1.5)
    query, value = _inputs()
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    with pytest.raises(ValueError, match=r"does not broadcast.*Received.*\(2, 5, 3\)"):
        mha(query, value, attention_mask=np.ones((B, T, 3), bool))
    with pytest.raises(ValueError, match="rank 5"):
        mha(query, value, attention_mask=np.ones((B, 1, 1, T, S), bool))


def test_bad_shapes_are_named_before_any_kernel_runs():
    query, value = _inputs()
    rng = np.random.default_rng(1)
    mha = MultiHeadAttention(num_heads=H, key_dim=K)
    with pytest.raises(ValueError, match=r"query of shape \(B, T, D\) \(rank 3\)\. Received: query of shape \(2, 16\)"):
        mha(query[:, 0], value)  # rank 2 (was a bare IndexError in build)
    with pytest.raises(ValueError, match=r"value of shape \(B, S, D\) \(rank 3\)\. Received: value of shape \(1, 2, 7, 16\)"):
        mha(query, value[None])
    other_batch = rng.normal(size=(3, S, D)).astype("float32")
    with pytest.raises(ValueError, match=r"same batch size B.*Received: query of shape \(2, 5, 16\), value of shape \(3, 7, 16\)"):
        mha(query, other_batch)  # was TensorFlow's BatchMatMulV2 error
    with pytest.raises(ValueError, match=r"key and value of the same length S.*key of shape \(2, 6, 16\)"):
        mha(query, value, key=value[:, :6])
    mha(query, value)  # built for width D = 16
    with pytest.raises(ValueError, match=r"built for query of width 16, expected query of shape \(B, T, 16\)\. "
                                         r"Received: query of shape \(2, 5, 8\)"):
        mha(query[..., :8], value)
    with pytest.raises(ValueError, match=r"same batch size B.*a cache of batch size 3"):
        mha(query[:, :1], query[:, :1], cache=mha.init_cache(3, T), cache_index=0)
    # Symbolic calls (functional models) are checked as they are built.
    with pytest.raises(ValueError, match="same batch size B"):
        MultiHeadAttention(num_heads=H, key_dim=K)(keras.Input((T, D), batch_size=2), keras.Input((S, D), batch_size=3))
    # Unknown dimensions pass: a functional model with a free batch size builds and runs.
    q_in, v_in = keras.Input((None, D)), keras.Input((None, D))
    model = keras.Model([q_in, v_in], MultiHeadAttention(num_heads=H, key_dim=K)(q_in, v_in))
    assert tuple(model([query, value]).shape) == (B, T, D)
