"""timm vit_* checkpoints import (`zoo.ImageClassifier.from_timm`) with the same logits; what zoo can't express is refused."""

import numpy as np
import pytest

from zoo.convert import CheckpointError
from zoo.convert.timm_vit import TIMM_ARCHITECTURES
from zoo.tasks import ImageClassifier

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

SMALL = dict(img_size=32, patch_size=8, depth=2, embed_dim=48, num_classes=5)
LABELS = ["n01", "n02", "n03", "n04", "n05"]


def _reference(architecture="vit_tiny_patch16_224", **overrides):
    torch.manual_seed(0)
    model = timm.create_model(architecture, pretrained=False, **dict(SMALL, **overrides)).eval()
    with torch.no_grad():  # timm zeroes biases and sets norms to one: make them matter
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def _save_for_hf(model, folder, **model_config):
    from timm.models._hub import save_for_hf

    save_for_hf(model, str(folder), model_config=model_config or None, safe_serialization=True)


def _images(n=3, size=32):
    return np.random.default_rng(0).normal(size=(n, size, size, 3)).astype("float32")


def _max_diff(zoo_model, reference, images):
    with torch.no_grad():
        expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    return np.abs(np.asarray(zoo_model(images)) - expected).max()


@pytest.mark.parametrize(
    "architecture, overrides, pooling, fc_norm",
    [
        ("vit_tiny_patch16_224", {}, "token", False),
        ("vit_tiny_patch16_224", dict(qkv_bias=False), "token", False),
        ("vit_base_patch16_gap_224", dict(num_heads=4), "gap", False),  # avg, fc_norm=False
        ("vit_tiny_patch16_224", dict(class_token=False, global_pool="avg"), "gap", True),  # timm's avg default
        ("deit_tiny_patch16_224", dict(global_pool="token", fc_norm=True), "token", True),
    ],
)
def test_logits_match_from_a_hub_folder(tmp_path, architecture, overrides, pooling, fc_norm):
    reference = _reference(architecture, **overrides)
    _save_for_hf(reference, tmp_path, label_names=LABELS)
    classifier = ImageClassifier.from_timm(tmp_path)
    model = classifier.model
    assert (model.pooling, model.fc_norm) == (pooling, fc_norm)
    assert model.qkv_bias is overrides.get("qkv_bias", True)
    diff = _max_diff(model, reference, _images())
    assert diff < 1e-4, diff
    prep = classifier.preprocessor
    assert prep.class_names == tuple(LABELS)
    assert prep.mean == tuple(reference.pretrained_cfg["mean"]) and prep.std == tuple(reference.pretrained_cfg["std"])
    assert prep.image_size == (32, 32) and prep.crop_pct == reference.pretrained_cfg["crop_pct"]
    assert (prep.interpolation, prep.crop_mode) == ("bicubic", reference.pretrained_cfg.get("crop_mode") or "center")


def test_state_dict_and_pth_file_with_architecture_and_pretrained_cfg(tmp_path):
    reference = _reference()
    images = _images()
    cfg = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    from_dict = ImageClassifier.from_timm(
        reference.state_dict(), "vit_tiny_patch16_224", pretrained_cfg=cfg, **SMALL
    )
    assert _max_diff(from_dict.model, reference, images) < 1e-4
    assert from_dict.preprocessor.class_names == ("0", "1", "2", "3", "4")  # no label names: indices
    assert from_dict.preprocessor.mean == cfg["mean"]
    assert from_dict.preprocessor.crop_pct == 0.875  # timm's default when pretrained_cfg names none
    torch.save(reference.state_dict(), tmp_path / "vit.pth")
    from_file = ImageClassifier.from_timm(tmp_path / "vit.pth", "vit_tiny_patch16_224", pretrained_cfg=cfg, **SMALL)
    assert _max_diff(from_file.model, reference, images) < 1e-4


def test_older_flat_hub_config(tmp_path):
    """Older timm hub configs: one dict holding architecture, mean, std and "labels"."""
    import json

    reference = _reference()
    _save_for_hf(reference, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    flat = dict(config["pretrained_cfg"], architecture="vit_tiny_patch16_224", labels=LABELS, mean=[0.1, 0.2, 0.3])
    (tmp_path / "config.json").write_text(json.dumps(flat))
    classifier = ImageClassifier.from_timm(tmp_path, **SMALL)
    assert classifier.preprocessor.class_names == tuple(LABELS) and classifier.preprocessor.mean == (0.1, 0.2, 0.3)
    assert _max_diff(classifier.model, reference, _images()) < 1e-4


def test_architecture_table_matches_timm():
    """Every architecture zoo accepts is built by timm with exactly the options zoo assumes."""
    from timm.layers import LayerNorm
    from timm.models.vision_transformer import Block, VisionTransformer as TimmViT

    for name, args in TIMM_ARCHITECTURES.items():
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        block = model.blocks[0]
        seen = dict(
            type=type(model) is TimmViT, block=type(block) is Block, act=type(block.mlp.act) is torch.nn.GELU,
            eps=block.norm1.eps, norm=type(block.norm1) is LayerNorm, embed_dim=model.embed_dim,
            depth=len(model.blocks), num_heads=block.attn.num_heads, mlp=block.mlp.fc1.out_features,
            pool=model.global_pool, class_token=model.has_class_token, reg=model.num_reg_tokens,
            no_embed_class=model.no_embed_class, dynamic=model.dynamic_img_size,
            plain=all(type(m) is torch.nn.Identity for m in (block.ls1, block.ls2, block.attn.q_norm, model.norm_pre)),
            fc_norm=type(model.fc_norm) is not torch.nn.Identity, img=tuple(model.patch_embed.img_size),
            patch=tuple(model.patch_embed.patch_size), qkv_bias=block.attn.qkv.bias is not None,
        )
        expected = dict(
            type=True, block=True, act=True, eps=1e-6, norm=True, embed_dim=args["embed_dim"], depth=args["depth"],
            num_heads=args["num_heads"], mlp=int(args["embed_dim"] * args["mlp_ratio"]), pool=args["global_pool"],
            class_token=args["class_token"], reg=0, no_embed_class=False, dynamic=False, plain=True,
            fc_norm=args.get("fc_norm") is True, img=(args["img_size"],) * 2, patch=(args["patch_size"],) * 2,
            qkv_bias=True,
        )
        assert seen == expected, name


@pytest.mark.parametrize(
    "architecture, overrides, message",
    [
        ("vit_tiny_patch16_224", dict(init_values=1e-5), "init_values=1e-05 \\(layer scale\\)"),
        ("vit_tiny_patch16_224", dict(reg_tokens=2), "reg_tokens=2 \\(register tokens\\)"),
        ("vit_tiny_patch16_224", dict(no_embed_class=True), "no_embed_class"),
        ("vit_tiny_patch16_224", dict(pre_norm=True), "pre_norm=True"),
        ("vit_tiny_patch16_224", dict(dynamic_img_size=True), "dynamic_img_size=True"),
        ("vit_tiny_patch16_224", dict(global_pool="avg"), "class_token=True"),
        ("vit_tiny_patch16_224", dict(global_pool="map"), "global_pool='map'"),
        ("vit_tiny_patch16_224", dict(act_layer="quick_gelu"), "act_layer='quick_gelu'"),
        ("vit_tiny_patch16_224", dict(qk_norm=True), "qk_norm=True"),
    ],
)
def test_options_zoo_cannot_express_are_refused(tmp_path, architecture, overrides, message):
    _save_for_hf(_reference(architecture, **overrides), tmp_path)
    with pytest.raises(CheckpointError, match=message):
        ImageClassifier.from_timm(tmp_path)


def test_option_hidden_from_the_config_is_caught_by_the_weights(tmp_path):
    """A bare state dict with layer scale, named as the plain architecture, is still refused."""
    reference = _reference(init_values=1e-5)
    with pytest.raises(CheckpointError, match="layer scale .*blocks.0.ls1.gamma"):
        ImageClassifier.from_timm(reference.state_dict(), "vit_tiny_patch16_224", pretrained_cfg=reference.pretrained_cfg, **SMALL)
    reference = _reference(no_embed_class=True)
    with pytest.raises(CheckpointError, match="no_embed_class"):
        ImageClassifier.from_timm(reference.state_dict(), "vit_tiny_patch16_224", pretrained_cfg=reference.pretrained_cfg, **SMALL)


def test_wrong_or_incomplete_checkpoints_are_named(tmp_path):
    reference = _reference()
    state = reference.state_dict()
    cfg = reference.pretrained_cfg
    with pytest.raises(CheckpointError, match="'vit_tiny_patch16_clip_224' is not one zoo imports"):
        ImageClassifier.from_timm(state, "vit_tiny_patch16_clip_224", pretrained_cfg=cfg, **SMALL)
    with pytest.raises(CheckpointError, match="pass architecture="):
        ImageClassifier.from_timm(state, pretrained_cfg=cfg)
    with pytest.raises(CheckpointError, match="needs mean and std"):
        ImageClassifier.from_timm(state, "vit_tiny_patch16_224", **SMALL)
    with pytest.raises(CheckpointError, match="has no tensor 'blocks.2.norm1.weight'"):
        ImageClassifier.from_timm(state, "vit_tiny_patch16_224", pretrained_cfg=cfg, **dict(SMALL, depth=3))
    with pytest.raises(CheckpointError, match="'head.weight' .* \\(5, 48\\); the configuration expects \\(7, 48\\)"):
        ImageClassifier.from_timm(state, "vit_tiny_patch16_224", pretrained_cfg=cfg, **dict(SMALL, num_classes=7))
    with pytest.raises(CheckpointError, match="unknown_option=1"):
        ImageClassifier.from_timm(state, "vit_tiny_patch16_224", pretrained_cfg=cfg, unknown_option=1, **SMALL)
    with pytest.raises(CheckpointError, match="Missing config.json"):
        ImageClassifier.from_timm(tmp_path)
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        ImageClassifier.from_timm(tmp_path / "missing.pth", "vit_tiny_patch16_224", pretrained_cfg=cfg)
