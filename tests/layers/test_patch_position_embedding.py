import doctest

import keras
import numpy as np
import pytest
from keras import ops

import zoo.layers.patch_position_embedding
from tests.helpers import run_layer_test
from zoo.layers import PatchPositionEmbedding

B, D = 2, 8


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _tokens(num_tokens, seed=0):
    return np.random.default_rng(seed).normal(size=(B, num_tokens, D)).astype("float32")


def _built(grid_size=4, num_prefix_tokens=1, **kwargs):
    layer = PatchPositionEmbedding(grid_size, num_prefix_tokens=num_prefix_tokens, **kwargs)
    rows, cols = layer.grid_size
    layer.build((None, num_prefix_tokens + rows * cols, D))
    return layer


def test_generic_layer_checks(tmp_path):
    run_layer_test(
        PatchPositionEmbedding,
        dict(grid_size=4),
        dict(inputs=_tokens(1 + 16)),
        expected_output_shape=(B, 17, D),
        tmp_path=tmp_path,
    )


def test_generic_layer_checks_resampled_to_explicit_grid(tmp_path):
    run_layer_test(
        PatchPositionEmbedding,
        dict(grid_size=(4, 4), num_prefix_tokens=2, interpolation="bilinear"),
        dict(inputs=_tokens(2 + 15)),
        call_kwargs=dict(grid_size=(3, 5)),
        expected_output_shape=(B, 17, D),
        tmp_path=tmp_path,
    )


def test_table_layout_matches_hf_and_timm():
    layer = _built(grid_size=(4, 6), num_prefix_tokens=1)
    assert layer.embeddings.path.endswith("embeddings")
    assert tuple(layer.embeddings.shape) == (1 + 24, D)
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"


def test_trained_grid_adds_table_exactly():
    layer = _built(grid_size=(4, 6))
    tokens = _tokens(1 + 24)
    expected = tokens + _np(layer.embeddings)[None]
    np.testing.assert_array_equal(_np(layer(tokens)), expected)


@pytest.mark.parametrize(
    "grid, call_grid",
    [((6, 6), None), ((3, 5), (3, 5)), ((4, 4), (4, 4)), ((2, 8), (2, 8))],
)
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_other_grid_resamples_patch_positions_only(grid, call_grid, interpolation):
    layer = _built(grid_size=(4, 4), num_prefix_tokens=1, interpolation=interpolation)
    table = _np(layer.embeddings)
    tokens = _tokens(1 + grid[0] * grid[1])
    out = _np(layer(tokens, grid_size=call_grid))
    assert out.shape == tokens.shape
    positions = out - tokens
    np.testing.assert_allclose(positions[:, 0], np.broadcast_to(table[0], (B, D)), atol=1e-6)
    resized = ops.image.resize(
        table[1:].reshape(1, 4, 4, D),
        grid,
        interpolation=interpolation,
        data_format="channels_last",
    )
    expected = np.broadcast_to(_np(resized).reshape(1, grid[0] * grid[1], D), positions[:, 1:].shape)
    np.testing.assert_allclose(positions[:, 1:], expected, atol=1e-5)


def test_same_count_other_shape_is_resampled():
    # Trained 4x6; a 6x4 grid has the same patch count but other positions.
    layer = _built(grid_size=(4, 6), num_prefix_tokens=0, interpolation="nearest")
    tokens = np.zeros((B, 24, D), "float32")
    same = _np(layer(tokens))
    transposed = _np(layer(tokens, grid_size=(6, 4)))
    assert not np.allclose(same, transposed)


def test_nearest_upsampling_repeats_positions():
    # Nearest (half-pixel centres) at twice the grid repeats each position 2x2.
    layer = _built(grid_size=(3, 4), num_prefix_tokens=1, interpolation="nearest")
    table = _np(layer.embeddings)
    out = _np(layer(np.zeros((B, 1 + 6 * 8, D), "float32"), grid_size=(6, 8)))
    grid = table[1:].reshape(3, 4, D).repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_allclose(out[0, 1:], grid.reshape(48, D), atol=1e-6)
    np.testing.assert_allclose(out[0, 0], table[0], atol=1e-6)


def test_resample_once_into_a_layer_for_the_new_grid():
    old = _built(grid_size=4)
    tokens = _tokens(1 + 36)
    new = _built(grid_size=6)
    new.embeddings.assign(old.resample(6))
    np.testing.assert_allclose(_np(new(tokens)), _np(old(tokens)), atol=1e-6)
    with pytest.raises(ValueError, match="build the layer first"):
        PatchPositionEmbedding(4).resample(6)


@pytest.mark.parametrize("interpolation, grid", [("bicubic", 4), ("bilinear", 6)])
def test_compiles_under_xla(interpolation, grid):
    # TensorFlow's ResizeBicubic has no XLA kernel, so bicubic is only
    # compiled at the trained grid (no resize); bilinear compiles anywhere.
    inputs = keras.Input((1 + grid * grid, D))
    layer = PatchPositionEmbedding(4, interpolation=interpolation)
    model = keras.Model(inputs, layer(inputs))
    model.compile(jit_compile=True)
    tokens = _tokens(1 + grid * grid)
    np.testing.assert_allclose(model.predict(tokens, verbose=0), _np(layer(tokens)), atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_resample(policy):
    layer = PatchPositionEmbedding(4, dtype=policy)
    out = layer(_tokens(1 + 36))
    assert keras.backend.standardize_dtype(out.dtype) == keras.DTypePolicy(policy).compute_dtype
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"


def test_fresh_table_per_layer():
    a, b = _built(), _built()
    assert not np.allclose(_np(a.embeddings), _np(b.embeddings))
    assert 0.01 < _np(a.embeddings).std() < 0.04


def test_non_square_count_without_grid_size_raises():
    layer = _built(grid_size=4)
    with pytest.raises(ValueError, match=r"grid_size=\(rows, cols\).*Received: 15 patches"):
        layer(_tokens(1 + 15))


def test_bad_counts_and_arguments_are_named():
    layer = _built(grid_size=4, num_prefix_tokens=1)
    expected = r"grid_size holds 12 patches.*16.*Received: grid_size=\(3, 4\)"
    with pytest.raises(ValueError, match=expected):
        layer(_tokens(1 + 16), grid_size=(3, 4))
    with pytest.raises(ValueError, match=r"at least one patch.*\(2, 1, 8\)"):
        layer(_tokens(1))
    with pytest.raises(ValueError, match=r"width 8.*\(2, 17, 4\)"):
        layer(np.zeros((B, 17, 4), "float32"))
    with pytest.raises(ValueError, match="num_prefix_tokens=-1"):
        PatchPositionEmbedding(4, num_prefix_tokens=-1)
    with pytest.raises(ValueError, match="interpolation='cubic'"):
        PatchPositionEmbedding(4, interpolation="cubic")
    with pytest.raises(ValueError, match=r"grid_size=\(4, 0\)"):
        PatchPositionEmbedding((4, 0))


def test_docstring_example_runs():
    results = doctest.testmod(zoo.layers.patch_position_embedding)
    assert results.attempted > 0 and results.failed == 0
