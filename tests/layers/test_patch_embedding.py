import doctest

import numpy as np
import pytest
from keras import ops

import zoo.layers.patch_embedding
from tests.helpers import run_layer_test
from zoo.layers import PatchEmbedding


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _patchify(images, ph, pw):
    """(B, H, W, C) -> (B, P, ph * pw * C), patches row-major, pixels (ph, pw, C)."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // ph, ph, w // pw, pw, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // ph) * (w // pw), ph * pw * c)


def test_generic_layer_checks(tmp_path):
    run_layer_test(
        PatchEmbedding,
        dict(patch_size=4, d_model=8),
        dict(inputs=_images((2, 8, 12, 3))),
        expected_output_shape=(2, 6, 8),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("patch_size", [4, (2, 4)])
def test_equals_numpy_patchify_and_matmul(patch_size):
    images = _images((2, 8, 16, 3))
    layer = PatchEmbedding(patch_size, d_model=5)
    layer.build(images.shape)
    layer.projection.bias.assign(np.arange(5, dtype="float32"))
    ph, pw = layer.patch_size
    kernel = _np(layer.projection.kernel)  # (ph, pw, C, D)
    expected = _patchify(images, ph, pw) @ kernel.reshape(ph * pw * 3, 5) + np.arange(5)
    np.testing.assert_allclose(_np(layer(images)), expected, atol=1e-5)


def test_without_bias_is_a_plain_patch_matmul():
    images = _images((2, 8, 8, 3))
    layer = PatchEmbedding(4, d_model=5, use_bias=False)
    out = _np(layer(images))
    assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel"]
    kernel = _np(layer.projection.kernel).reshape(48, 5)
    np.testing.assert_allclose(out, _patchify(images, 4, 4) @ kernel, atol=1e-5)


def test_torch_weights_import_by_transpose():
    # A PyTorch Conv2d patch stem: weight (D, C, ph, pw), patches flattened
    # as conv(x).flatten(2).transpose(1, 2) (HF ViT, timm).
    rng = np.random.default_rng(1)
    images = _images((2, 8, 12, 3))
    weight = rng.normal(size=(5, 3, 4, 4)).astype("float32")
    bias = rng.normal(size=(5,)).astype("float32")
    nchw = images.transpose(0, 3, 1, 2)  # (B, C, H, W)
    patches = nchw.reshape(2, 3, 2, 4, 3, 4).transpose(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, ph, pw)
    expected = patches.reshape(2, 6, 3 * 16) @ weight.reshape(5, -1).T + bias
    layer = PatchEmbedding(4, d_model=5)
    layer.build(images.shape)
    layer.projection.kernel.assign(weight.transpose(2, 3, 1, 0))
    layer.projection.bias.assign(bias)
    np.testing.assert_allclose(_np(layer(images)), expected, atol=1e-5)


def test_non_square_images_and_grid_size():
    layer = PatchEmbedding(4, d_model=8)
    assert tuple(layer(_images((2, 8, 16, 3))).shape) == (2, 8, 8)
    assert layer.grid_size((8, 16)) == (2, 4)
    assert layer.grid_size((8, 16, 3)) == (2, 4)
    assert layer.grid_size((2, 8, 16, 3)) == (2, 4)
    assert layer.grid_size((None, None, 16, 3)) == (None, 4)
    assert PatchEmbedding((2, 4), d_model=8).grid_size((8, 16)) == (4, 4)


def test_untiled_image_size_raises():
    layer = PatchEmbedding(4, d_model=8)
    expected = r"Received: image shape \(1, 10, 12, 3\), patch_size=\(4, 4\)"
    with pytest.raises(ValueError, match=expected):
        layer(np.zeros((1, 10, 12, 3), "float32"))
    with pytest.raises(ValueError, match=r"image shape \(10, 12\)"):
        layer.grid_size((10, 12))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="patch_size=0"):
        PatchEmbedding(0, d_model=8)
    with pytest.raises(ValueError, match=r"patch_size=\(4, 4, 4\)"):
        PatchEmbedding((4, 4, 4), d_model=8)
    with pytest.raises(ValueError, match="d_model=0"):
        PatchEmbedding(4, d_model=0)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\).*\(2, 8, 8\)"):
        PatchEmbedding(4, d_model=8)(np.zeros((2, 8, 8), "float32"))


def test_docstring_example_runs():
    results = doctest.testmod(zoo.layers.patch_embedding)
    assert results.attempted > 0 and results.failed == 0
