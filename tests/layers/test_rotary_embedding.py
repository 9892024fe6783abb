import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import RotaryEmbedding

B, T, H, K = 2, 9, 3, 8


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, H, K)).astype("float32")


def test_generic(tmp_path):
    run_layer_test(
        RotaryEmbedding, dict(max_wavelength=500), dict(inputs=_x()),
        expected_output_shape=(B, T, H, K), trains=False, tmp_path=tmp_path,
    )


def test_preserves_norms():
    x = _x()
    np.testing.assert_allclose(
        np.linalg.norm(_np(RotaryEmbedding()(x)), axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5
    )


def test_dot_product_depends_only_on_relative_offset():
    rope = RotaryEmbedding()
    q = np.random.default_rng(1).normal(size=(1, 1, 1, K)).astype("float32")
    k = np.random.default_rng(2).normal(size=(1, 1, 1, K)).astype("float32")

    def score(p_q, p_k):
        rq = _np(rope(q, start_index=p_q))[0, 0, 0]
        rk = _np(rope(k, start_index=p_k))[0, 0, 0]
        return float(rq @ rk)

    for offset in (0, 1, 5):
        assert score(3 + offset, 3) == pytest.approx(score(40 + offset, 40), abs=1e-4)
    assert abs(score(4, 3) - score(9, 3)) > 1e-3  # and it does depend on the offset


def test_matches_closed_formula_and_start_index():
    x = _x()
    out = _np(RotaryEmbedding(max_wavelength=100)(x, start_index=3))
    half = K // 2
    freq = 100.0 ** (-np.arange(half) * 2.0 / K)
    angle = (np.arange(T) + 3)[:, None] * freq[None]  # (T, K/2)
    cos, sin = np.cos(angle)[None, :, None], np.sin(angle)[None, :, None]
    x1, x2 = x[..., :half], x[..., half:]
    expected = np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_odd_width_is_rejected():
    with pytest.raises(ValueError, match=r"even.*Received: inputs of shape \(2, 9, 3, 7\)"):
        RotaryEmbedding()(np.ones((B, T, H, 7), "float32"))
