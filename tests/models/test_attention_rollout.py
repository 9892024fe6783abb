"""Attention rollout: hand-computed small cases, and ViTs whose attention is forced by their weights."""

import numpy as np
import pytest
from keras import ops

from zoo.models import VisionTransformer, attention_rollout, rollout_from_attention

D, HEADS, KEY = 8, 2, 4
BRIGHT_SCALE = 50.0  # keys are this times the normalised tokens: a one-hot softmax


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_two_blocks_by_hand():
    """Class token + 2 patches. Block 1, one head: A1; block 2, two heads averaged to M2.
    Mixed with the identity: A1' = (A1 + I) / 2 = [[.5, .5, 0], [0, .5, .5], [0, .5, .5]],
    M2' = (M2 + I) / 2 = [[.75, 0, .25], [.5, .5, 0], [0, .5, .5]].
    Class row of M2' A1' = .75 [.5, .5, 0] + .25 [0, .5, .5] = [.375, .5, .125]: patches [.5, .125] -> [.8, .2]."""
    a1 = np.array([[[[0, 1, 0], [0, 0, 1], [0, 1, 0]]]], "float32")  # (1, 1, 3, 3)
    head_a = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    head_b = [[1, 0, 0], [1, 0, 0], [0, 1, 0]]
    a2 = np.array([[head_a, head_b]], "float32")  # (1, 2, 3, 3)
    np.testing.assert_allclose(_np(rollout_from_attention([a1, a2], 1, (1, 2))), [[[0.8, 0.2]]], atol=1e-6)
    # Blocks the other way round: class row of A1' M2' = .5 [.75, 0, .25] + .5 [.5, .5, 0]
    # = [.625, .25, .125]: patches -> [2/3, 1/3]. Block order matters.
    np.testing.assert_allclose(_np(rollout_from_attention([a2, a1], 1, (1, 2))), [[[2 / 3, 1 / 3]]], atol=1e-6)


def test_mean_pooling_reads_the_mean_row():
    """No class token, 2 patches, one block W = [[0, 1], [0, 1]]: (W + I) / 2 = [[.5, .5], [0, 1]],
    whose mean row is [.25, .75]."""
    weights = np.array([[[[0, 1], [0, 1]]]], "float32")
    np.testing.assert_allclose(_np(rollout_from_attention([weights], 0, (1, 2))), [[[0.25, 0.75]]], atol=1e-6)


def test_random_attention_gives_distributions_per_image():
    rng = np.random.default_rng(0)
    n, grid = 1 + 2 * 3, (2, 3)
    weights = [rng.dirichlet(np.ones(n), size=(4, HEADS, n)).astype("float32") for _ in range(3)]
    maps = _np(rollout_from_attention(weights, 1, grid))
    assert maps.shape == (4, 2, 3) and (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-6)
    for i in range(4):  # each image rolled out alone gives its row of the batch
        alone = _np(rollout_from_attention([w[i : i + 1] for w in weights], 1, grid))
        np.testing.assert_allclose(alone[0], maps[i], atol=1e-6)


def test_bad_arguments_name_what_was_received():
    weights = np.full((1, 2, 5, 5), 0.2, "float32")
    with pytest.raises(ValueError, match=r"1 prefix token\(s\) and a 2x3 grid make 7"):
        rollout_from_attention([weights], 1, (2, 3))
    with pytest.raises(ValueError, match="num_prefix_tokens must be 0 or 1. Received: num_prefix_tokens=2"):
        rollout_from_attention([weights], 2, (2, 2))
    with pytest.raises(ValueError, match="Received: none"):
        rollout_from_attention([], 1, (2, 2))
    with pytest.raises(TypeError, match="VisionTransformer. Received: str"):
        attention_rollout("vit", np.zeros((1, 8, 8, 3)))
    model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=D, num_encoder_layers=1,
                              num_heads=HEADS, d_ff=16)
    with pytest.raises(ValueError, match=r"images must be \(B, H, W, C\). Received: shape \(8, 8, 3\)"):
        attention_rollout(model, np.zeros((8, 8, 3), "float32"))


# -- ViTs whose attention is set by their weights ---------------------------
def _forced_vit(pooling):
    """A 2-block ViT whose attention is fixed: in block 1, head 0 attends only to the patch with
    bright pixels and head 1 uniformly; in block 2 both heads attend uniformly.

    The patch embedding writes a patch's pixel sum into feature 0 (a bright patch: 48, a black one:
    0, over the same bias pattern); queries are a constant vector (kernel 0), keys the normalised
    tokens times `BRIGHT_SCALE`, so head 0's score is large for the bright patch alone and a zero
    query scores every token alike. The attention outputs and MLPs write nothing to the residual
    stream, so both blocks see the embedded tokens."""
    model = VisionTransformer(image_size=(8, 12), patch_size=4, num_classes=3, d_model=D, num_encoder_layers=2,
                              num_heads=HEADS, d_ff=16, pooling=pooling)
    pattern = np.array([0, 1, -1, 1, -1, 1, -1, 1], "float32")
    kernel = np.zeros((4, 4, 3, D), "float32")
    kernel[..., 0] = 1.0
    model.patch_embedding.projection.kernel.assign(kernel)
    model.patch_embedding.projection.bias.assign(pattern)
    if model.class_token is not None:
        model.class_token.weights[0].assign(pattern[None, None])
    table = model.position_embedding.weights[0]
    table.assign(np.random.default_rng(1).normal(scale=0.01, size=table.shape).astype("float32"))
    for i, block in enumerate(model.encoder_blocks):
        mha = block.self_attention.attention
        query_bias = np.zeros((HEADS, KEY), "float32")
        if i == 0:
            query_bias[0, 0] = 1.0  # head 0 reads key feature 0: the bright patch
        mha.query_dense.kernel.assign(np.zeros(mha.query_dense.kernel.shape, "float32"))
        mha.query_dense.bias.assign(query_bias)
        mha.key_dense.kernel.assign(BRIGHT_SCALE * np.eye(D, dtype="float32").reshape(D, HEADS, KEY))
        mha.key_dense.bias.assign(np.zeros((HEADS, KEY), "float32"))
        for dense in (mha.output_dense, block.feed_forward.output_dense):
            dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
            dense.bias.assign(np.zeros(dense.bias.shape, "float32"))
    return model


def _images(height, width, bright):
    """Black images, one 4x4 patch of ones per image at grid cell `bright[i]`."""
    images = np.zeros((len(bright), height, width, 3), "float32")
    for i, (r, c) in enumerate(bright):
        images[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 1.0
    return images


def _expected(grid, bright, prefix):
    """The rollout of the forced attention, from its definition: block 1 is (to-bright + uniform) / 2,
    block 2 uniform; each mixed half-and-half with the identity; read row = class row or mean row."""
    rows, cols = grid
    n = prefix + rows * cols
    uniform = np.full((n, n), 1.0 / n)
    eye = np.eye(n)
    out = []
    for r, c in bright:
        to_bright = np.zeros((n, n))
        to_bright[:, prefix + r * cols + c] = 1.0
        block1 = ((to_bright + uniform) / 2 + eye) / 2
        block2 = (uniform + eye) / 2
        read = block2[0] if prefix else block2.mean(axis=0)
        row = (read @ block1)[prefix:]
        out.append((row / row.sum()).reshape(rows, cols))
    return np.array(out)


@pytest.mark.parametrize("pooling, prefix", [("token", 1), ("gap", 0)])
@pytest.mark.parametrize(
    "size, bright",
    [((8, 12), [(1, 2), (0, 0)]),  # the trained 2x3 grid
     ((12, 16), [(2, 1), (0, 3)])],  # a 3x4 grid: positions interpolated
)
def test_forced_attention_rolls_out_to_the_hand_computed_map(pooling, prefix, size, bright):
    model = _forced_vit(pooling)
    images = _images(*size, bright)
    grid = (size[0] // 4, size[1] // 4)
    first = _np(model.attention_maps(images)[0])  # the forcing worked: head 0 of block 1 is one-hot
    for i, (r, c) in enumerate(bright):
        np.testing.assert_allclose(first[i, 0, :, prefix + r * grid[1] + c], 1.0, atol=1e-5)
    maps = _np(attention_rollout(model, images))
    assert maps.shape == (len(bright), *grid)
    np.testing.assert_allclose(maps, _expected(grid, bright, prefix), atol=1e-5)
    assert (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-6)
    assert [np.unravel_index(m.argmax(), grid) for m in maps] == bright


def test_a_trained_like_model_gives_distributions_at_another_resolution():
    model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=3,
                              num_heads=2, d_ff=32)
    images = np.random.default_rng(0).normal(size=(3, 16, 12, 3)).astype("float32")
    maps = _np(attention_rollout(model, images))
    assert maps.shape == (3, 4, 3) and (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-6)
    assert not np.allclose(maps[0], maps[1])  # the images differ, so do their maps
