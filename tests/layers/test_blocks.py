"""EncoderBlock and DecoderBlock."""

import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import DecoderBlock, EncoderBlock

B, T, S, D, H, F = 2, 5, 6, 16, 4, 32
ARGS = dict(d_model=D, num_heads=H, d_ff=F, dropout=0.1, activation="gelu")


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _x(length, seed=0):
    return np.random.default_rng(seed).normal(size=(B, length, D)).astype("float32")


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_generic(tmp_path, norm_first):
    run_layer_test(
        EncoderBlock, dict(ARGS, norm_first=norm_first, drop_path_rate=0.1),
        dict(x=_x(S)), expected_output_shape=(B, S, D), tmp_path=tmp_path,
    )


def test_encoder_block_generic_without_qkv_bias(tmp_path):
    run_layer_test(
        EncoderBlock, dict(ARGS, norm_first=True, qkv_bias=False),
        dict(x=_x(S)), expected_output_shape=(B, S, D), tmp_path=tmp_path,
    )
    block = EncoderBlock(**dict(ARGS, qkv_bias=False))
    block.build((B, S, D))
    mha = block.self_attention.attention
    assert mha.query_dense.bias is None and mha.value_dense.bias is None
    assert mha.output_dense.bias is not None and block.feed_forward.output_dense.bias is not None


def test_decoder_block_generic(tmp_path):
    run_layer_test(
        DecoderBlock, dict(ARGS, use_rotary=True), dict(x=_x(T), context=_x(S, 1)),
        expected_output_shape=(B, T, D), tmp_path=tmp_path,
    )


def test_encoder_block_is_attention_then_feed_forward():
    x = _x(S)
    pad = np.ones((B, S), bool)
    pad[0, 4:] = False
    block = EncoderBlock(**dict(ARGS, dropout=0.0))
    out, scores = block(x, attention_mask=pad, return_attention_scores=True)
    expected = block.feed_forward(block.self_attention(x, attention_mask=pad))
    np.testing.assert_allclose(_np(out), _np(expected), atol=1e-6)
    assert tuple(scores.shape) == (B, H, S, S)
    np.testing.assert_allclose(_np(scores)[0, :, :, 4:], 0.0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_incremental_cache_matches_full_pass(norm_first):
    x, context = _x(T), _x(S, 1)
    source_mask = np.ones((B, S), bool)
    source_mask[1, 4:] = False
    block = DecoderBlock(**dict(ARGS, dropout=0.0, norm_first=norm_first))
    full, scores = block(x, context, context_mask=source_mask, return_attention_scores=True)
    assert tuple(scores["cross"].shape) == (B, H, T, S)
    assert tuple(scores["self"].shape) == (B, H, T, T)
    cache = block.init_cache(context, max_length=T + 3)
    outs = []
    for t in range(T):
        out, cache = block(x[:, t : t + 1], context_mask=source_mask, cache=cache, cache_index=t)
        outs.append(_np(out))
    np.testing.assert_allclose(np.concatenate(outs, 1), _np(full), atol=1e-5)


def test_decoder_future_tokens_never_change_the_past():
    x, context = _x(T), _x(S, 1)
    block = DecoderBlock(**dict(ARGS, dropout=0.0))
    out = _np(block(x, context))
    changed = x.copy()
    changed[:, 3:] += 5.0
    np.testing.assert_allclose(_np(block(changed, context))[:, :3], out[:, :3], atol=1e-5)


def test_errors_name_what_was_received():
    with pytest.raises(ValueError, match="num_heads must divide d_model. Received: d_model=10, num_heads=4"):
        EncoderBlock(d_model=10, num_heads=4, d_ff=8)
    with pytest.raises(ValueError, match="needs `context`"):
        DecoderBlock(**ARGS)(_x(T))


def test_blocks_train_under_xla():
    import keras

    source = keras.Input((S, D))
    target = keras.Input((T, D))
    context = EncoderBlock(**ARGS)(source)
    out = DecoderBlock(**ARGS)(target, context)
    model = keras.Model([source, target], out)
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    history = model.fit([_x(S), _x(T, 1)], _x(T, 2), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("mask_rank", [None, 2, 3, 4])
def test_encoder_block_num_queries_gives_the_first_rows(norm_first, mask_rank):
    """Running the block for a query prefix is the full block's first rows."""
    x = _x(S)
    mask = None
    if mask_rank is not None:
        pad = np.ones((B, S), bool)
        pad[0, 4:] = False
        square = pad[:, None, :] & np.tri(S, dtype=bool)[None] | np.eye(S, dtype=bool)  # (B, S, S)
        mask = {2: pad, 3: square, 4: np.repeat(square[:, None], H, axis=1)}[mask_rank]
    block = EncoderBlock(**dict(ARGS, dropout=0.0, norm_first=norm_first, use_rotary=True))
    full, full_scores = block(x, attention_mask=mask, return_attention_scores=True)
    for n in (1, 3, S):
        out, scores = block(x, attention_mask=mask, return_attention_scores=True, num_queries=n)
        assert tuple(out.shape) == (B, n, D) and tuple(scores.shape) == (B, H, n, S)
        np.testing.assert_allclose(_np(out), _np(full)[:, :n], atol=1e-5)
        np.testing.assert_allclose(_np(scores), _np(full_scores)[:, :, :n], atol=1e-6)
        # Without weights the attention takes its other (fused-kernel) path.
        np.testing.assert_allclose(_np(block(x, attention_mask=mask, num_queries=n)), _np(full)[:, :n], atol=1e-5)


def test_num_queries_errors_name_what_was_received():
    import keras

    block = EncoderBlock(**ARGS)
    for bad in (0, S + 1, 1.5, True):
        with pytest.raises(ValueError, match=rf"num_queries must be an int from 1 to the sequence length {S}\. "
                                             rf"Received: num_queries={bad}"):
            block(_x(S), num_queries=bad)
    ids = keras.Input((S,), dtype="int32")
    embedded = keras.layers.Embedding(10, D, mask_zero=True)(ids)
    with pytest.raises(ValueError, match=r"cannot be combined with a Keras implicit mask.*Received: a mask of shape"):
        block(embedded, num_queries=1)
