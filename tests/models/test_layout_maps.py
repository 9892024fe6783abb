"""Layout maps: which variables `ModelParallel` splits, along which dimension.

Checked on built models' real variable paths (a 1x1 mesh: the layouts, not
the devices, are under test; tests/distribution runs them on 8 devices).
"""

import re

import keras
import pytest

from zoo.models import TransformerTranslator, VisionTransformer
from zoo.models.layout_maps import TRANSLATOR_RULES, VISION_TRANSFORMER_RULES, check_model_parallel

D, H, F = 16, 4, 32
TRANSLATORS = {
    "tied": dict(),
    "untied_learned": dict(tie_output_embeddings=False, output_bias=True, position="learned"),
    "shared_pre_norm": dict(share_embeddings=True, norm_first=True, output_bias=True),
}
VITS = {
    "token": dict(),
    "gap_pre_logits": dict(pooling="gap", representation_size=24, fc_norm=True, qkv_bias=False),
}


def _mesh():
    return keras.distribution.DeviceMesh((1, 1), ("data", "model"), keras.distribution.list_devices()[:1])


def _translator(**options):
    vocab = dict(source_vocab_size=50, target_vocab_size=50 if options.get("share_embeddings") else 60)
    return TransformerTranslator(**vocab, num_encoder_layers=1, num_decoder_layers=2, d_model=D, num_heads=H,
                                 d_ff=F, max_length=8, **options)


def _vit(**options):
    return VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=D, num_encoder_layers=2,
                             num_heads=H, d_ff=F, **options)


def _layouts(model):
    """`{path: (shape, axes or None)}` of every variable of `model` under its class's layout map."""
    layout_map = type(model).layout_map(_mesh())
    return {v.path: (tuple(v.shape), None if layout_map[v.path] is None else layout_map[v.path].axes)
            for v in model.weights}


# What each split dimension must hold: heads for attention (in and out), d_ff
# for the feed-forward (in and out), d_model for the tables. Column-parallel
# kernels split their output, row-parallel ones their input.
EXPECTED = (
    (r".*/attention/(query|key|value)/kernel", 1, H),
    (r".*/attention/(query|key|value)/bias", 0, H),
    (r".*/attention/attention_output/kernel", 0, H),
    (r".*/feed_forward/intermediate/kernel", 1, F),
    (r".*/feed_forward/intermediate/bias", 0, F),
    (r".*/feed_forward/output/kernel", 0, F),
    (r".*/embeddings", 1, D),
    (r".*/patch_embedding/projection/kernel", 3, D),
    (r".*/patch_embedding/projection/bias", 0, D),
    (r".*/output_projection/kernel", 0, D),
    (r".*/pre_logits/kernel", 1, 24),
    (r".*/pre_logits/bias", 0, 24),
    (r".*/head/kernel", 0, None),  # the head reads d_model, or pre_logits' width
)


def _check(layouts):
    for path, (shape, axes) in layouts.items():
        if axes is None:
            # Replicated: nothing larger than one d_model vector (norms, biases, the class token).
            assert len(shape) <= 1 or shape[:-1] == (1,) * (len(shape) - 1), f"{path} {shape} is not split"
            continue
        assert len(axes) == len(shape), f"{path}: layout {axes} for shape {shape}"
        split = [i for i, axis in enumerate(axes) if axis == "model"]
        assert len(split) == 1 and set(axes) <= {None, "model"}, f"{path}: {axes}"
        (dim, size), = [(dim, size) for pattern, dim, size in EXPECTED if re.fullmatch(pattern, path)]
        assert split[0] == dim, f"{path} {shape}: split along {split[0]}, expected {dim}"
        if size is not None:
            assert shape[dim] == size, f"{path} {shape}: split dimension is not {size}"


@pytest.mark.parametrize("name", TRANSLATORS)
def test_translator_layouts(name):
    layouts = _layouts(_translator(**TRANSLATORS[name]))
    _check(layouts)
    split = [path for path, (_, axes) in layouts.items() if axes]
    # Per decoder block: 2 attentions x (4 kernels + 3 biases) + 3 feed-forward weights.
    assert sum("decoder_1/" in path for path in split) == 2 * 7 + 3
    assert sum("token_embedding" in path for path in split) == (1 if TRANSLATORS[name].get("share_embeddings") else 2)


@pytest.mark.parametrize("name", VITS)
def test_vision_transformer_layouts(name):
    layouts = _layouts(_vit(**VITS[name]))
    _check(layouts)
    (head,) = [axes for path, (_, axes) in layouts.items() if path.endswith("/head/kernel")]
    assert head == ("model", None)


def test_every_rule_matches_a_variable():
    """A rule whose path is misspelt would silently replicate its weights."""
    paths = [v.path for model in [_translator(**o) for o in TRANSLATORS.values()] for v in model.weights]
    for pattern, _ in TRANSLATOR_RULES:
        assert any(re.fullmatch(pattern, p) for p in paths), pattern
    paths = [v.path for model in [_vit(**o) for o in VITS.values()] for v in model.weights]
    for pattern, _ in VISION_TRANSFORMER_RULES:
        assert any(re.fullmatch(pattern, p) for p in paths), pattern


def test_layout_map_names_its_axes():
    layout_map = VisionTransformer.layout_map(_mesh(), model_dim="data", data_dim="model")
    assert layout_map["vit/encoder_0/feed_forward/output/kernel"].axes == ("data", None)
    with pytest.raises(ValueError, match=r"model_dim='tensor' is not an axis of the device mesh; its axes are \('data', 'model'\)"):
        TransformerTranslator.layout_map(_mesh(), model_dim="tensor")
    with pytest.raises(ValueError, match="must be different"):
        TransformerTranslator.layout_map(_mesh(), model_dim="model", data_dim="model")
    with pytest.raises(TypeError, match="DeviceMesh"):
        TransformerTranslator.layout_map((2, 4))


def test_check_model_parallel_names_what_does_not_divide():
    check_model_parallel(dict(d_model=16, num_heads=4, d_ff=32, representation_size=None), 4)
    with pytest.raises(ValueError, match=r"multiple of 4. Received: num_heads=6, d_ff=30$"):
        check_model_parallel(dict(d_model=24, num_heads=6, d_ff=30), 4)
