import json
import os

import keras
import numpy as np
import pytest
from keras import ops

from tests.helpers import config_keys_match_init
from zoo.models import VisionTransformer
from zoo.models.vision_transformer_presets import VISION_TRANSFORMER_PRESETS

B = 2
TINY = dict(image_size=16, patch_size=4, num_classes=5, d_model=32, num_encoder_layers=2, num_heads=4, d_ff=128)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _model(**overrides):
    return VisionTransformer(**dict(TINY, **overrides))


def _images(size=16, width=None, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, size, width or size, 3)).astype("float32")


@pytest.mark.parametrize("name", sorted(VisionTransformer.presets()))
def test_every_preset_builds_runs_and_saves(name, tmp_path):
    # Shrunk in layers (and, for the 224 presets, resolution) only: the widths,
    # heads and patch size are the preset's.
    config = VISION_TRANSFORMER_PRESETS[name]["config"]
    size = 64 if config["image_size"] == 224 else config["image_size"]
    model = VisionTransformer.from_preset(name, num_encoder_layers=1, image_size=size)
    for key in ("d_model", "num_heads", "patch_size", "d_ff", "num_classes"):
        assert getattr(model, key) == config[key]
    images = _images(size)
    logits = model(images)
    assert tuple(logits.shape) == (B, config["num_classes"])
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is VisionTransformer
    np.testing.assert_allclose(_np(loaded(images)), _np(logits), atol=1e-5)


def test_preset_sizes_match_the_papers():
    # Parameter counts of timm's deit_tiny / deit_small / vit_base / vit_large.
    expected = {"vit_tiny_patch16_224": 5_717_416, "vit_small_patch16_224": 22_050_664}
    for name, count in expected.items():
        assert VisionTransformer.from_preset(name).count_params() == count
    config = VISION_TRANSFORMER_PRESETS["vit_large_patch16_224"]["config"]
    assert (config["d_model"], config["num_encoder_layers"], config["num_heads"], config["d_ff"]) == (1024, 24, 16, 4096)


def test_config_round_trip_through_json():
    model = _model(image_size=(16, 24), patch_size=(4, 8), pooling="gap", representation_size=12,
                   qkv_bias=False, drop_path_rate=0.1, fc_norm=True)
    config_keys_match_init(model)
    config = json.loads(json.dumps(model.get_config()))
    clone = VisionTransformer.from_config(config)
    assert clone.get_config() == model.get_config()
    assert model.get_config()["image_size"] == [16, 24] and model.get_config()["patch_size"] == [4, 8]
    clone.set_weights(model.get_weights())
    images = _images(16, 24)
    np.testing.assert_allclose(_np(clone(images)), _np(model(images)), atol=1e-6)


DATA = os.path.join(os.path.dirname(__file__), "data")


def test_keras_file_saved_with_the_old_argument_names_loads():
    """`vit_saved_by_main.keras` was saved by main at 79f0d99, when the config said
    `depth=2, mlp_ratio=1.5` (d_model 16); it loads with the same weights and logits."""
    model = keras.saving.load_model(os.path.join(DATA, "vit_saved_by_main.keras"))
    assert (model.num_encoder_layers, model.d_ff) == (2, 24)
    assert "depth" not in model.get_config() and "mlp_ratio" not in model.get_config()
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")  # as when it was saved
    np.testing.assert_allclose(_np(model(images)), np.load(os.path.join(DATA, "vit_saved_by_main_logits.npy")), atol=1e-6)


def test_sublayer_names_are_stable():
    model = _model(representation_size=8)
    top = {w.path.split("/")[1] for w in model.weights}
    assert top == {
        "patch_embedding", "class_token", "position_embedding", "encoder_0", "encoder_1",
        "encoder_norm", "pre_logits", "head",
    }
    assert "class_token" not in {w.path.split("/")[1] for w in _model(pooling="gap").weights}


@pytest.mark.parametrize("pooling, num_tokens", [("token", 1 + 16), ("gap", 16)])
def test_pooling_shapes_and_features(pooling, num_tokens):
    model = _model(pooling=pooling)
    images = _images()
    assert tuple(model(images).shape) == (B, 5)
    tokens = _np(model.patch_tokens(images))
    assert tokens.shape == (B, num_tokens, 32)
    features = _np(model.features(images))
    assert features.shape == (B, 32)
    pooled = tokens[:, 0] if pooling == "token" else tokens.mean(axis=1)
    np.testing.assert_allclose(features, pooled, atol=1e-5)
    # The head is a plain affine map of the features.
    kernel, bias = (_np(w) for w in model.head.weights)
    np.testing.assert_allclose(_np(model(images)), features @ kernel + bias, atol=1e-4)


def test_tokens_are_the_layers_composed_by_hand():
    model = _model()
    images = _images()
    x = model.position_embedding(model.class_token(model.patch_embedding(images)))
    for block in model.encoder_blocks:
        x = block(x)
    np.testing.assert_allclose(_np(model.patch_tokens(images)), _np(model.encoder_norm(x)), atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
@pytest.mark.parametrize("fc_norm", [False, True])
def test_class_token_logits_and_gradients_match_the_full_last_block(fc_norm):
    """With "token" pooling the last block runs for the class token alone;
    logits and every weight's gradient equal the all-tokens computation."""
    import tensorflow as tf

    model = _model(fc_norm=fc_norm, representation_size=12)
    images = _images()

    def full_logits():
        tokens = model.patch_tokens(images)  # every block on every token
        return model.head(model.pre_logits(model._pool(tokens)))

    def loss(logits):
        return ops.sum(ops.square(logits))

    with tf.GradientTape(persistent=True) as tape:
        fast, full = model(images), full_logits()
        fast_loss, full_loss = loss(fast), loss(full)
    np.testing.assert_allclose(_np(fast), _np(full), atol=1e-5)
    weights = model.trainable_variables
    fast_grads = tape.gradient(fast_loss, weights)
    full_grads = tape.gradient(full_loss, weights)
    for w, a, b in zip(weights, fast_grads, full_grads):
        np.testing.assert_allclose(_np(a), _np(b), atol=1e-4, err_msg=w.path)
    # The last block's MLP runs on one token per image, the others on all 17.
    seen = []
    for block in model.encoder_blocks:
        call = block.feed_forward.call
        block.feed_forward.call = lambda x, *a, _call=call, **k: seen.append(tuple(x.shape)) or _call(x, *a, **k)
    model(images)
    assert seen == [(B, 17, 32), (B, 1, 32)]


def test_pre_logits_feed_the_head():
    model = _model(representation_size=12)
    images = _images()
    kernel, bias = (_np(w) for w in model.pre_logits.weights)
    pooled = _np(model.patch_tokens(images))[:, 0]
    features = _np(model.features(images))
    assert features.shape == (B, 12)
    np.testing.assert_allclose(features, np.tanh(pooled @ kernel + bias), atol=1e-5)


def test_attention_maps_are_distributions():
    model = _model()
    maps = model.attention_maps(_images())
    assert len(maps) == 2
    for scores in maps:
        assert tuple(scores.shape) == (B, 4, 17, 17)
        np.testing.assert_allclose(_np(scores).sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("pooling", ["token", "gap"])
def test_other_resolutions_interpolate_positions(pooling):
    model = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=1, pooling=pooling)
    assert tuple(model(_images(48)).shape) == (B, 10)
    assert tuple(model(_images(32, 48)).shape) == (B, 10)  # non-square grid
    prefix = 1 if pooling == "token" else 0
    assert tuple(model.patch_tokens(_images(48)).shape) == (B, prefix + 12 * 12, 192)
    assert np.all(np.isfinite(_np(model(_images(48)))))


def test_functional_call_on_symbolic_inputs():
    model = _model()
    inputs = keras.Input((16, 16, 3))
    wrapped = keras.Model(inputs, model(inputs))
    np.testing.assert_allclose(_np(wrapped(_images())), _np(model(_images())), atol=1e-6)


def test_drop_path_rates_grow_linearly():
    model = _model(num_encoder_layers=5, drop_path_rate=0.2)
    rates = [block.drop_path_rate for block in model.encoder_blocks]
    np.testing.assert_allclose(rates, [0.0, 0.05, 0.1, 0.15, 0.2])
    assert _model(num_encoder_layers=1, drop_path_rate=0.2).encoder_blocks[0].drop_path_rate == 0.0
    # Stochastic only in training.
    images = _images()
    np.testing.assert_allclose(_np(model(images)), _np(model(images)), atol=0)


def test_qkv_bias_switches_only_the_query_key_value_biases():
    """timm's and HF's meaning: the output projection and the MLP keep their biases."""
    names = [w.path for w in _model(qkv_bias=False).weights]
    biases = {n for n in names if "encoder_" in n and n.endswith("bias")}
    assert not any(part in n for n in biases for part in ("/query/", "/key/", "/value/"))
    for part in ("attention_output/bias", "intermediate/bias", "feed_forward/output/bias"):
        assert sum(n.endswith(part) for n in biases) == 2, part  # one per block
    assert any(n.endswith("patch_embedding/projection/bias") for n in names)
    assert any(n.endswith("head/bias") for n in names)
    without = {n.split("/", 1)[1] for n in names}
    with_bias = {w.path.split("/", 1)[1] for w in _model(qkv_bias=True).weights}
    assert with_bias - without == {
        n for n in with_bias if n.endswith("bias") and any(p in n for p in ("/query/", "/key/", "/value/"))
    }


@pytest.mark.parametrize("pooling", ["token", "gap"])
def test_fc_norm_normalises_after_pooling(pooling):
    """`fc_norm=True`: tokens leave the blocks unnormalised; encoder_norm runs on the pooled vector."""
    model = _model(pooling=pooling, fc_norm=True)
    images = _images()
    x = model.patch_embedding(images)
    if pooling == "token":
        x = model.class_token(x)
    x = model.position_embedding(x)
    for block in model.encoder_blocks:
        x = block(x)
    np.testing.assert_allclose(_np(model.patch_tokens(images)), _np(x), atol=1e-5)
    pooled = _np(x)[:, 0] if pooling == "token" else _np(x).mean(axis=1)
    features = _np(model.features(images))
    np.testing.assert_allclose(features, _np(model.encoder_norm(pooled)), atol=1e-5)
    plain = _model(pooling=pooling)
    plain.set_weights(model.get_weights())
    same = np.allclose(_np(plain(images)), _np(model(images)), atol=1e-5)
    # A per-token norm commutes with picking the class token, not with averaging.
    assert same == (pooling == "token")


def test_trains_and_loss_decreases():
    # Memorise 16 random images with random labels.
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, size=(16,)).astype("int32")
    model = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=1, d_model=64, num_heads=4, d_ff=256)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(images, labels, batch_size=8, epochs=10, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_mixed_precision_logits_are_float32():
    model = _model(dtype="mixed_bfloat16", pooling="gap")
    logits = model(_images())
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(_np(logits)))
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)
    scores = model.attention_maps(_images())[0]
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"


def test_bad_configs_name_what_was_received():
    with pytest.raises(ValueError, match="Unknown VisionTransformer preset 'vit_huge'"):
        VisionTransformer.from_preset("vit_huge")
    with pytest.raises(ValueError, match="pooling=.cls."):
        _model(pooling="cls")
    with pytest.raises(ValueError, match="image_size=30, patch_size=4"):
        _model(image_size=30)
    with pytest.raises(ValueError, match="d_model=32, num_heads=5"):
        _model(num_heads=5)
    with pytest.raises(ValueError, match="representation_size=0"):
        _model(representation_size=0)
    with pytest.raises(ValueError, match="drop_path_rate=1.0"):
        _model(drop_path_rate=1.0)
    with pytest.raises(ValueError, match="num_encoder_layers=0"):
        _model(num_encoder_layers=0)
    with pytest.raises(ValueError, match="d_ff=0"):
        _model(d_ff=0)
    with pytest.raises(ValueError, match=r"num_encoder_layers \(was depth\).*Received: depth=3"):
        _model(depth=3)
    with pytest.raises(ValueError, match="patch_size"):
        _model(patch_size=(4, 4, 4))
    with pytest.raises(ValueError, match="fc_norm must be a bool. Received: fc_norm='yes'"):
        _model(fc_norm="yes")
    with pytest.raises(ValueError, match="multiples of the patch size"):
        _model()(_images(18))
