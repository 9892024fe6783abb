"""Stochastic depth: whole branches dropped per example, kept ones scaled by 1 / keep.

Checked row by row against the branch computed in inference mode (NumPy
layer norm), so the scale, the per-example draw and the drop rate each show.
"""

import numpy as np
import pytest
from keras import ops

from zoo.layers import FeedForward, GlobalSelfAttention

B, T, D, H = 64, 3, 8, 2
RATE = 0.25  # not 0.5: dropping the kept rows instead would show in the rate


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _layer_norm(x, eps=1e-5):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def _layer(kind, norm_first):
    if kind == "attention":
        return GlobalSelfAttention(num_heads=H, key_dim=D // H, norm_first=norm_first, drop_path_rate=RATE)
    return FeedForward(D, 16, norm_first=norm_first, drop_path_rate=RATE)


def _branch(layer, kind, x):
    """The residual branch f(x) in inference mode, by hand around the sublayer's own parts."""
    h = _layer_norm(x) if layer.norm_first else x
    if kind == "attention":
        return _np(layer.attention(h, h))
    hidden = np.maximum(h @ _np(layer.intermediate_dense.kernel) + _np(layer.intermediate_dense.bias), 0.0)
    return hidden @ _np(layer.output_dense.kernel) + _np(layer.output_dense.bias)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("kind", ["attention", "feed_forward"])
def test_each_example_keeps_its_branch_scaled_by_one_over_keep_or_drops_it(kind, norm_first):
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    layer = _layer(kind, norm_first)
    layer(x)  # build
    branch = _branch(layer, kind, x)
    finish = (lambda y: y) if norm_first else _layer_norm
    kept_out = finish(x + branch / (1.0 - RATE))
    dropped_out = finish(x)
    np.testing.assert_allclose(_np(layer(x, training=False)), finish(x + branch), atol=1e-5)
    dropped = 0
    for _ in range(4):
        out = _np(layer(x, training=True))
        for b in range(B):
            is_dropped = np.allclose(out[b], dropped_out[b], atol=1e-5)
            if not is_dropped:
                np.testing.assert_allclose(out[b], kept_out[b], atol=1e-4, err_msg=f"example {b}")
            dropped += is_dropped
    assert 0.15 < dropped / (4 * B) < 0.35, dropped  # 25% expected; binomial sd 2.7%
