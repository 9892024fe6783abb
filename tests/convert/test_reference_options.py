"""Options checked against the reference libraries: position-table resampling
against timm's and HF's resampled tables at other resolutions, and a timm ViT
with 4 input channels imported with the same logits.

Resampling conventions (measured here, and modelled in NumPy below):
- zoo (`keras.ops.image.resize`, TensorFlow's bicubic) and timm's
  `resample_abs_pos_embed` (antialiased, PIL's kernel) both use Keys' cubic
  with `a = -0.5`, dropping taps outside the grid and renormalising; they
  agree to TensorFlow's tabulated weights (about 1e-3 of the table's scale)
  when upsampling (timm's antialiasing only changes downsampling).
- HF's `interpolate_pos_encoding` (PyTorch, not antialiased) uses `a = -0.75`
  and clamps taps to the edge: the documented difference. zoo must stay
  within that difference of HF, as computed from the two NumPy kernels.
A wrong method (bilinear, nearest, the grid's rows and columns swapped) is
shown to be far outside both tolerances.
"""

import numpy as np
import pytest

from zoo.layers import PatchPositionEmbedding

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")

D = 8
GRID = (4, 4)


def _cubic(distance, a):
    d = abs(distance)
    if d <= 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a if d < 2 else 0.0


def _weights(n_in, n_out, a, edges):
    """`(n_out, n_in)` bicubic weights, half-pixel centres; out-of-grid taps
    clamped to the edge (`"clamp"`) or dropped and the rest renormalised (`"drop"`)."""
    w = np.zeros((n_out, n_in))
    for out in range(n_out):
        x = (out + 0.5) * n_in / n_out - 0.5
        left = int(np.floor(x))
        for i in range(left - 1, left + 3):
            if edges == "clamp":
                w[out, min(max(i, 0), n_in - 1)] += _cubic(i - x, a)
            elif 0 <= i < n_in:
                w[out, i] += _cubic(i - x, a)
        w[out] /= w[out].sum()
    return w


def numpy_resample(table, grid, new, a, edges):
    patches = table[1:].reshape(grid[0], grid[1], -1).astype("float64")
    rows, cols = _weights(grid[0], new[0], a, edges), _weights(grid[1], new[1], a, edges)
    out = np.einsum("ri,ijd,cj->rcd", rows, patches, cols).reshape(-1, table.shape[1])
    return np.concatenate([table[:1], out])


def zoo_resample(table, new, interpolation="bicubic"):
    layer = PatchPositionEmbedding(GRID, interpolation=interpolation)
    layer.build((None, 1 + GRID[0] * GRID[1], D))
    layer.embeddings.assign(table)
    return np.asarray(layer.resample(new))


def wrong_resamples(table, new):
    """What plausible bugs would give: other methods, a transposed grid."""
    swapped_target = zoo_resample(table, (new[1], new[0]))[1:]  # (cols, rows) read as (rows, cols)
    column_major = table.copy()
    column_major[1:] = table[1:].reshape(GRID[0], GRID[1], D).transpose(1, 0, 2).reshape(-1, D)
    return {
        "bilinear": zoo_resample(table, new, "bilinear")[1:],
        "nearest": zoo_resample(table, new, "nearest")[1:],
        "rows and columns swapped": swapped_target,
        "source grid read column-major": zoo_resample(column_major, new)[1:],
    }


def timm_resample(table, new):
    from timm.layers import resample_abs_pos_embed

    resampled = resample_abs_pos_embed(torch.from_numpy(table[None]), list(new), list(GRID), num_prefix_tokens=1)
    return resampled[0].numpy()


def hf_resample(table, new):
    from transformers import ViTConfig
    from transformers.models.vit.modeling_vit import ViTEmbeddings

    embeddings = ViTEmbeddings(ViTConfig(hidden_size=D, image_size=GRID[0] * 8, patch_size=8))
    with torch.no_grad():
        embeddings.position_embeddings.copy_(torch.from_numpy(table[None]))
        tokens = torch.zeros(1, 1 + new[0] * new[1], D)
        return embeddings.interpolate_pos_encoding(tokens, new[0] * 8, new[1] * 8)[0].numpy()


@pytest.fixture(scope="module")
def table():
    return np.random.default_rng(0).normal(size=(1 + GRID[0] * GRID[1], D)).astype("float32")


def _max_error(a, b):
    return float(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64")).max())


@pytest.mark.parametrize("new", [(6, 8), (7, 7), (3, 3), (2, 5)])
def test_zoo_bicubic_is_keys_cubic_with_renormalised_edges(table, new):
    assert _max_error(zoo_resample(table, new), numpy_resample(table, GRID, new, -0.5, "drop")) < 5e-3


TIMM_TOLERANCE = 1e-2  # TensorFlow's tabulated cubic weights; measured <= 3.3e-3


@pytest.mark.parametrize("new", [(6, 8), (7, 7), (5, 4), (14, 14)])
def test_upsampling_matches_timm(table, new):
    reference = timm_resample(table, new)
    ours = zoo_resample(table, new)
    np.testing.assert_array_equal(ours[0], table[0])  # the class position is kept
    assert _max_error(ours, reference) < TIMM_TOLERANCE
    for name, wrong in wrong_resamples(table, new).items():
        if name == "rows and columns swapped" and new[0] == new[1]:
            continue
        assert _max_error(wrong, reference[1:]) > 10 * TIMM_TOLERANCE, name


@pytest.mark.parametrize("new", [(6, 8), (7, 7), (3, 3), (2, 5)])
def test_matches_hf_within_the_documented_bicubic_difference(table, new):
    reference = hf_resample(table, new)
    # The NumPy model of HF's convention is exact, so the tolerance below is
    # the difference of the two conventions on this very table.
    assert _max_error(numpy_resample(table, GRID, new, -0.75, "clamp"), reference) < 1e-5
    tolerance = _max_error(
        numpy_resample(table, GRID, new, -0.5, "drop"), numpy_resample(table, GRID, new, -0.75, "clamp")
    ) + 5e-3
    ours = zoo_resample(table, new)
    assert _max_error(ours, reference) <= tolerance
    for name, wrong in wrong_resamples(table, new).items():
        if name == "rows and columns swapped" and new[0] == new[1]:
            continue
        assert _max_error(wrong, reference[1:]) > 1.5 * tolerance, name


def test_timm_vit_with_four_channels_imports_with_the_same_logits(tmp_path):
    from timm.models._hub import save_for_hf

    from zoo import ImageClassifier

    torch.manual_seed(0)
    reference = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1, embed_dim=48, num_classes=5,
        in_chans=4,
    ).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_for_hf(reference, str(tmp_path), safe_serialization=True)
    model = ImageClassifier.from_timm(tmp_path).model
    assert model.num_channels == 4
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 4)).astype("float32")
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.asarray(model(images)), expected, atol=1e-4)
