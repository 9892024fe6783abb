"""The growing decoder caches of `zoo.layers.attention_cache` against full decoder passes."""

import numpy as np
import pytest
from keras import ops

from zoo.layers import DecoderBlock, attention_cache

B, W, S, T, D, H = 2, 3, 5, 6, 16, 4


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B * W, T, D)).astype("float32")  # W different prefixes per source
    context = rng.normal(size=(B, S, D)).astype("float32")
    source_mask = np.ones((B, S), bool)
    source_mask[1, 3:] = False  # padding
    return x, context, source_mask


@pytest.mark.parametrize("options", [dict(), dict(norm_first=True, use_rotary=True)], ids=["post-norm", "pre-norm-rotary"])
def test_growing_steps_with_shared_cross_keys_equal_the_full_block(options):
    x, context, source_mask = _inputs()
    block = DecoderBlock(d_model=D, num_heads=H, d_ff=32, **options)
    repeated = np.repeat(context, W, axis=0)
    full = _np(block(x, repeated, context_mask=np.repeat(source_mask, W, axis=0)))  # (B*W, T, D)
    cache = block.init_cache(context, max_length=None, beam_width=W)
    assert tuple(cache["cross_keys"].shape) == (B, H, D // H, S)  # once per source, not per beam
    pieces = []
    for start, stop in ((0, 2), (2, 3), (3, 4), (4, 6)):  # a 2-token prefill, single steps, a chunk
        out, cache = block.decode_step(x[:, start:stop], cache, start, source_mask)
        pieces.append(_np(out))
        assert tuple(cache["self_keys"].shape) == (B * W, H, D // H, stop)  # grows with what was decoded
        assert tuple(cache["self_values"].shape) == (B * W, H, stop, D // H)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5)


def test_reorder_moves_self_rows_and_keeps_cross_keys():
    x, context, source_mask = _inputs()
    block = DecoderBlock(d_model=D, num_heads=H, d_ff=32)
    cache = block.init_cache(context, beam_width=W)
    for t in range(3):
        _, cache = block.decode_step(x[:, t : t + 1], cache, t, source_mask)
    order = np.array([2, 2, 0, 4, 3, 3], "int32")  # parents within each source
    moved = attention_cache.reorder(cache, order)
    assert moved["cross_keys"] is cache["cross_keys"] and moved["cross_values"] is cache["cross_values"]
    for name in attention_cache.SELF_KEYS:
        np.testing.assert_array_equal(_np(moved[name]), _np(cache[name])[order])
    out, _ = block.decode_step(x[:, 3:4], moved, 3, source_mask)
    prefixes = np.concatenate([x[order, :3], x[:, 3:4]], axis=1)
    full = _np(block(prefixes, np.repeat(context, W, axis=0), context_mask=np.repeat(source_mask, W, axis=0)))
    np.testing.assert_allclose(_np(out)[:, 0], full[:, 3], atol=1e-5)


def test_a_source_of_padding_only_attends_to_nothing():
    _, context, _ = _inputs()
    mask = np.zeros((B, S), bool)
    mask[0] = True
    bias, row_ok = attention_cache.source_bias(np.repeat(mask, W, axis=0), B)
    assert tuple(bias.shape) == (B, 1, 1, S) and _np(row_ok).ravel().tolist() == [True, False]
    np.testing.assert_array_equal(_np(bias)[1].ravel(), np.full(S, -1e9, "float32"))
