import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import SinusoidalPositionEncoding

B, T, D = 2, 7, 16


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _numpy_table(length, dim, layout, start=0, max_wavelength=10000):
    """The closed formula, in float64."""
    pos = np.arange(start, start + length, dtype="float64")[:, None]  # (T, 1)
    w = max_wavelength ** (-2.0 * np.arange(dim // 2) / dim)  # (D/2,)
    sin, cos = np.sin(pos * w), np.cos(pos * w)  # (T, D/2)
    if layout == "concat":
        return np.concatenate([sin, cos], axis=-1)
    table = np.empty((length, dim))
    table[:, 0::2], table[:, 1::2] = sin, cos
    return table


def _hf_marian_table(n_pos, dim):
    """HF MarianSinusoidalPositionalEmbedding._init_weight, transcribed to NumPy."""
    position_enc = np.array(
        [[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)]
    )
    out = np.empty((n_pos, dim), "float32")
    sentinel = dim // 2 if dim % 2 == 0 else (dim // 2) + 1
    out[:, 0:sentinel] = np.sin(position_enc[:, 0::2])
    out[:, sentinel:] = np.cos(position_enc[:, 1::2])
    return out


@pytest.mark.parametrize("layout", ["concat", "interleave"])
def test_generic_layer_checks(layout, tmp_path):
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    out = run_layer_test(
        SinusoidalPositionEncoding,
        dict(max_wavelength=10000, layout=layout),
        dict(inputs=x),
        call_kwargs=dict(start_index=3),
        expected_output_shape=(B, T, D),
        trains=False,
        tmp_path=tmp_path,
    )
    assert not SinusoidalPositionEncoding(layout=layout).weights
    np.testing.assert_allclose(_np(out)[1], _numpy_table(T, D, layout, start=3), atol=1e-5)


@pytest.mark.parametrize("layout", ["concat", "interleave"])
@pytest.mark.parametrize("max_wavelength", [10000, 100])
def test_matches_closed_formula(layout, max_wavelength):
    x = np.zeros((B, 50, D), "float32")
    out = _np(SinusoidalPositionEncoding(max_wavelength, layout=layout)(x))
    expected = _numpy_table(50, D, layout, max_wavelength=max_wavelength)
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=2e-5)


def test_concat_matches_hf_marian():
    x = np.zeros((1, 64, 32), "float32")
    out = _np(SinusoidalPositionEncoding(layout="concat")(x))[0]
    marian = _hf_marian_table(64, 32)
    np.testing.assert_allclose(out, marian, atol=2e-5)
    # Spelled out: first half sines, second half cosines of the same angles.
    w = 10000 ** (-2.0 * np.arange(16) / 32)
    pos = np.arange(64)[:, None]
    np.testing.assert_allclose(out[:, :16], np.sin(pos * w), atol=2e-5)
    np.testing.assert_allclose(out[:, 16:], np.cos(pos * w), atol=2e-5)


def test_interleave_matches_keras_hub_in_float32():
    # keras-hub 0.32 names it SinePositionEncoding (there is no
    # keras_hub.layers.SinusoidalPositionEncoding). Same layout and
    # frequencies: its timescales are (1/max_wavelength)^(2*(i//2)/D) for
    # feature i, sin on even i and cos on odd i. Only float32 rounding differs
    # (it raises 1/10000 to a power; we raise 10000 to a negative one).
    x = np.random.default_rng(0).normal(size=(B, 128, D)).astype("float32")
    ours = _np(SinusoidalPositionEncoding(layout="interleave")(x))
    theirs = _np(keras_hub.layers.SinePositionEncoding()(x))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    ours = _np(SinusoidalPositionEncoding(layout="interleave")(x[:, :5], start_index=9))
    theirs = _np(keras_hub.layers.SinePositionEncoding()(x[:, :5], start_index=9))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_differs_from_keras_hub_under_bfloat16_for_large_positions():
    # Where they differ: keras-hub builds positions and angles in the compute
    # dtype, so under mixed_bfloat16 position 257 is rounded to 256 (8-bit
    # mantissa) before the sine. We compute angles in float32 and only round
    # the final values, so every row stays within bfloat16 rounding of the
    # exact table.
    x = np.zeros((1, 300, D), "float32")
    exact = _numpy_table(300, D, "interleave")
    ours = SinusoidalPositionEncoding(layout="interleave", dtype="mixed_bfloat16")(x)
    ours = _np(ops.cast(ours, "float32"))[0]
    theirs = _np(ops.cast(keras_hub.layers.SinePositionEncoding(dtype="mixed_bfloat16")(x), "float32"))[0]
    np.testing.assert_allclose(ours, exact, atol=1e-2)
    assert np.abs(theirs - exact).max() > 0.5


@pytest.mark.parametrize("layout", ["concat", "interleave"])
def test_start_index_gives_later_rows(layout):
    layer = SinusoidalPositionEncoding(layout=layout)
    full = _np(layer(np.zeros((B, 12, D), "float32")))
    for start in (4, ops.convert_to_tensor(4, "int32")):
        part = _np(layer(np.zeros((B, 3, D), "float32"), start_index=start))
        np.testing.assert_allclose(part, full[:, 4:7], atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"layout must be one of \('concat', 'interleave'\).*'sincos'"):
        SinusoidalPositionEncoding(layout="sincos")
    with pytest.raises(ValueError, match="max_wavelength=0"):
        SinusoidalPositionEncoding(max_wavelength=0)
    with pytest.raises(ValueError, match=r"even.*\(2, 3, 5\)"):
        SinusoidalPositionEncoding()(np.zeros((2, 3, 5), "float32"))
    with pytest.raises(ValueError, match=r"even.*\(None, 3, 5\)"):
        SinusoidalPositionEncoding()(keras.Input((3, 5)))
