"""Import timm `vit_*` and `deit_*` checkpoints into zoo.

timm's `VisionTransformer` with its defaults is zoo's: pre-norm blocks with
a fused `qkv` projection, exact GELU, LayerNorm epsilon 1e-6, a class token
(`global_pool="token"`) or none with token averaging (`"avg"`, then
`fc_norm` as zoo's `fc_norm=True` unless `fc_norm=False`). Its weights say
the widths, depth and classes, but not everything: the number of heads, the
activation and the block type are only in the architecture's definition.
So the architecture must be one listed in `TIMM_ARCHITECTURES` (checked
against timm by the tests), with `timm.create_model` overrides limited to
options zoo can express. Anything else (layer scale, register tokens,
`no_embed_class`, `pre_norm`, q/k norm, `dynamic_img_size`, attention
pooling, a class token next to average pooling, hybrid stems, ...) is a
CheckpointError, never a model with different logits.
"""

import os

from zoo.convert.checkpoint import CheckpointError, read_json, read_state_dict
from zoo.convert.components import ClassifierComponents
from zoo.convert.torch_layout import Tensors
from zoo.convert.vit_weights import (
    TARGET,
    checkpoint_preprocessor,
    checkpoint_size,
    class_names_from_mapping,
    load_vit_weights,
)
from zoo.models.vision_transformer import VisionTransformer

# Size name: (embed_dim, depth, num_heads, mlp_ratio), timm's vit_<size>_* definitions.
_SIZES = {
    "tiny": (192, 12, 3, 4.0),
    "small": (384, 12, 6, 4.0),
    "base": (768, 12, 12, 4.0),
    "large": (1024, 24, 16, 4.0),
    "huge": (1280, 32, 16, 4.0),
    "giant": (1408, 40, 16, 48 / 11),
    "gigantic": (1664, 48, 16, 64 / 13),
}


def _architecture(size, patch, image, gap=False, **overrides):
    embed_dim, depth, num_heads, mlp_ratio = _SIZES[size]
    args = dict(img_size=image, patch_size=patch, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                mlp_ratio=mlp_ratio, class_token=not gap, global_pool="avg" if gap else "token")
    if gap:
        args["fc_norm"] = False
    args.update(overrides)
    return args


# timm architecture name: its arguments (the rest are VisionTransformer's defaults).
TIMM_ARCHITECTURES = {
    **{f"vit_{s}_patch{p}_{i}": _architecture(s, p, i) for s, p, i in [
        ("tiny", 16, 224), ("tiny", 16, 384), ("small", 8, 224), ("small", 16, 224), ("small", 16, 384),
        ("small", 32, 224), ("small", 32, 384), ("base", 8, 224), ("base", 16, 224), ("base", 16, 384),
        ("base", 32, 224), ("base", 32, 384), ("large", 14, 224), ("large", 16, 224), ("large", 16, 384),
        ("large", 32, 224), ("large", 32, 384), ("huge", 14, 224), ("giant", 14, 224), ("gigantic", 14, 224),
    ]},
    "vit_base_patch16_gap_224": _architecture("base", 16, 224, gap=True, num_heads=16),
    "vit_huge_patch14_gap_224": _architecture("huge", 14, 224, gap=True),
    "vit_huge_patch16_gap_448": _architecture("huge", 16, 448, gap=True),
    "vit_giant_patch16_gap_224": _architecture("giant", 16, 224, gap=True),
    **{f"deit_{s}_patch16_{i}": _architecture(s, 16, i) for s, i in [
        ("tiny", 224), ("small", 224), ("base", 224), ("base", 384),
    ]},
}

# create_model arguments that map onto zoo's VisionTransformer.
_EXPRESSIBLE = {"img_size", "patch_size", "in_chans", "num_classes", "global_pool", "embed_dim", "depth",
                "num_heads", "mlp_ratio", "qkv_bias", "class_token", "fc_norm"}
# Training-only or initialisation arguments: no effect on the logits.
_IGNORED = {"drop_rate", "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate",
            "drop_path_rate", "weight_init", "fix_init"}
# Arguments zoo supports only at timm's default: (default, what other values mean).
_DEFAULT_ONLY = {
    "qk_norm": (False, "LayerNorm on queries and keys"),
    "scale_attn_norm": (False, "a norm inside attention"),
    "scale_mlp_norm": (False, "a norm inside the MLP"),
    "proj_bias": (True, "no attention output bias"),
    "init_values": (None, "layer scale"),
    "pos_embed": ("learn", "no learned positions"),
    "no_embed_class": (False, "positions that skip the class token"),
    "reg_tokens": (0, "register tokens"),
    "pre_norm": (False, "a norm before the blocks (CLIP)"),
    "final_norm": (True, "no final norm"),
    "pool_include_prefix": (False, "pooling over the prefix tokens"),
    "dynamic_img_size": (False, "per-call position resampling with timm's own interpolation"),
    "dynamic_img_pad": (False, "padding images to the patch size"),
    "embed_norm_layer": (None, "a norm in the patch embedding"),
    "norm_layer": (None, "another norm layer"),
    "act_layer": (None, "an MLP activation other than exact GELU"),
}
_HINTS = (
    ("ls1.", "layer scale (init_values)"),
    ("reg_token", "register tokens"),
    ("norm_pre", "pre_norm (a norm before the blocks, as CLIP)"),
    ("dist_token", "DeiT's distillation token"),
    ("head_dist", "DeiT's distillation head"),
    ("attn_pool", "attention pooling (global_pool='map')"),
    ("q_norm", "q/k norm"),
    ("attn.norm", "scale_attn_norm"),
    ("mlp.norm", "scale_mlp_norm"),
    ("patch_embed.backbone", "a hybrid CNN stem"),
    ("pre_logits", "a pre-logits representation layer"),
)
_NAMES = dict(patch="patch_embed.proj", cls="cls_token", pos="pos_embed", norm1="blocks.{i}.norm1",
              qkv="blocks.{i}.attn.qkv", o="blocks.{i}.attn.proj", norm2="blocks.{i}.norm2",
              fc1="blocks.{i}.mlp.fc1", fc2="blocks.{i}.mlp.fc2", norm="norm", head="head")
# timm's interpolation names -> `ImagePreprocessor.interpolation`.
_INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest", "lanczos": "lanczos3"}
_DEFAULT_CROP_PCT = 0.875  # timm's, when pretrained_cfg names none


def timm_arguments(architecture, model_args):
    """timm's arguments for `architecture` plus overrides, checked for what zoo expresses."""
    name = str(architecture).split(".")[0]  # drop a pretrained tag: vit_base_patch16_224.augreg_in1k
    if name not in TIMM_ARCHITECTURES:
        raise CheckpointError(
            f"timm architecture {architecture!r} is not one zoo imports exactly. Expected one of "
            f"{sorted(TIMM_ARCHITECTURES)} (others set options the weights do not reveal)."
        )
    args = dict(TIMM_ARCHITECTURES[name])
    for key, value in model_args.items():
        if key in _IGNORED:
            continue
        if key in _DEFAULT_ONLY:
            default, meaning = _DEFAULT_ONLY[key]
            if value != default and not (key == "act_layer" and value == "gelu"):
                raise CheckpointError(f"timm {key}={value!r} ({meaning}) has no zoo equivalent; expected {default!r}.")
            continue
        if key not in _EXPRESSIBLE:
            raise CheckpointError(f"timm argument {key}={value!r} is not one zoo knows how to import.")
        args[key] = value
    return args


def vit_kwargs_from_timm(args):
    """`VisionTransformer` arguments and the final norm's timm name, from timm arguments."""
    pool, class_token = args.get("global_pool", "token"), args.get("class_token", True)
    if pool == "token" and not class_token:
        raise CheckpointError("timm global_pool='token' needs class_token=True.")
    if pool == "avg" and class_token:
        raise CheckpointError(
            "timm global_pool='avg' with class_token=True (averaging the patches while a class token "
            "attends) has no zoo equivalent; zoo's 'gap' has no class token."
        )
    if pool not in ("token", "avg"):
        raise CheckpointError(f"timm global_pool={pool!r} has no zoo equivalent; expected 'token' or 'avg'.")
    fc_norm = args.get("fc_norm")
    fc_norm = pool == "avg" if fc_norm is None else bool(fc_norm)
    num_classes = args.get("num_classes", 1000)
    if not isinstance(num_classes, int) or num_classes <= 0:
        raise CheckpointError(f"timm num_classes={num_classes!r}: zoo imports classifiers, expected a head.")
    kwargs = dict(
        image_size=checkpoint_size(args.get("img_size", 224), "img_size", "timm"),
        patch_size=checkpoint_size(args.get("patch_size", 16), "patch_size", "timm"),
        num_classes=num_classes,
        d_model=args.get("embed_dim", 768),
        num_encoder_layers=args.get("depth", 12),
        num_heads=args.get("num_heads", 12),
        d_ff=int(args.get("embed_dim", 768) * float(args.get("mlp_ratio", 4.0))),  # timm's Mlp width
        qkv_bias=bool(args.get("qkv_bias", True)),
        layer_norm_epsilon=1e-6,
        pooling="token" if pool == "token" else "gap",
        num_channels=args.get("in_chans", 3),
        fc_norm=fc_norm,
    )
    return kwargs, "fc_norm" if fc_norm else "norm"


def preprocessor_from_timm(pretrained_cfg, label_names, num_classes, image_size):
    """`ImagePreprocessor` from timm's `pretrained_cfg`: mean and std (in [0, 1]
    units already), and its evaluation transform's resize and center crop."""
    if "mean" not in pretrained_cfg or "std" not in pretrained_cfg:
        raise CheckpointError(
            "timm pretrained_cfg needs mean and std (the input normalisation). "
            f"Received keys: {sorted(pretrained_cfg)}; pass e.g. pretrained_cfg=model.pretrained_cfg."
        )
    if label_names is None:
        label_names = [str(i) for i in range(num_classes)]
    interpolation = pretrained_cfg.get("interpolation") or "bicubic"
    if interpolation not in _INTERPOLATIONS:
        raise CheckpointError(
            f"timm pretrained_cfg interpolation={interpolation!r}; zoo resizes with {sorted(_INTERPOLATIONS)}."
        )
    crop_mode = pretrained_cfg.get("crop_mode") or "center"
    if crop_mode not in ("center", "squash"):
        raise CheckpointError(
            f"timm pretrained_cfg crop_mode={crop_mode!r} (resize the longest side, then pad) has no zoo "
            "equivalent; expected 'center' or 'squash'."
        )
    return checkpoint_preprocessor(
        "timm pretrained_cfg",
        image_size=image_size,
        mean=pretrained_cfg["mean"],
        std=pretrained_cfg["std"],
        class_names=class_names_from_mapping(label_names, num_classes, "timm label_names"),
        interpolation=_INTERPOLATIONS[interpolation],
        crop_pct=pretrained_cfg.get("crop_pct") or _DEFAULT_CROP_PCT,
        crop_mode=crop_mode,
        source="timm pretrained_cfg",
    )


def _read_source(source):
    """(tensors, hub config or {}, description) of a folder, a file or a state dict."""
    if isinstance(source, dict):
        return source, {}, "the timm state dict"
    path = os.fspath(source)
    if os.path.isdir(path):
        config = read_json(path, "config.json")
        return read_state_dict(path), config, f"timm checkpoint {path}"
    return read_state_dict(path), {}, f"timm checkpoint {path}"


def load_timm_vit(source, architecture=None, pretrained_cfg=None, **model_args):
    """Reads a timm ViT checkpoint (`zoo.ImageClassifier.from_timm`).

    Args:
        source: a folder as timm's `save_for_hf` writes it (`config.json` with
            `architecture`, `model_args`, `pretrained_cfg`, maybe
            `label_names`; `model.safetensors` or `pytorch_model.bin`), a
            weights file, or a state dict of NumPy arrays or torch tensors.
        architecture: str. timm model name; read from `config.json` when None.
        pretrained_cfg: dict. timm's `pretrained_cfg` (at least `mean` and
            `std`); overrides `config.json`'s. Required without `config.json`.
        **model_args: the `timm.create_model` overrides the checkpoint was
            made with (e.g. `img_size=384`, `num_classes=10`); added to
            `config.json`'s `model_args`.

    Returns:
        `ClassifierComponents`: the `zoo.models.VisionTransformer` with the
        weights and its `zoo.preprocessing.ImagePreprocessor` (timm's evaluation
        transform: resize, center crop, mean and std).

    Raises:
        CheckpointError: missing files, an architecture or option zoo cannot
            express, missing, extra or misshapen tensors.
    """
    state, config, where = _read_source(source)
    architecture = architecture or config.get("architecture")
    if architecture is None:
        raise CheckpointError(f"{where} has no config.json naming its architecture; pass architecture=.")
    args = timm_arguments(architecture, {**config.get("model_args", {}), **model_args})
    if "num_classes" in config and "num_classes" not in model_args:
        args["num_classes"] = config["num_classes"]
    kwargs, norm_name = vit_kwargs_from_timm(args)
    tensors = Tensors(state, where=where, target=TARGET)
    tensors.refuse(_HINTS)
    if "cls_token" in tensors and tensors.shape("pos_embed") is not None:
        grid = [i // p for i, p in zip(kwargs["image_size"], kwargs["patch_size"])]
        if tensors.shape("pos_embed")[1] == grid[0] * grid[1]:
            raise CheckpointError(f"{where}: pos_embed has no class token position (no_embed_class); zoo has no equivalent.")
    model = VisionTransformer(**kwargs)
    names = dict(_NAMES, cls="cls_token" if kwargs["pooling"] == "token" else None, norm=norm_name)
    load_vit_weights(model, tensors, names)
    tensors.check_all_used(_HINTS)
    # Older hub configs are one flat dict: the pretrained_cfg itself, labels as "labels".
    stored = config.get("pretrained_cfg", config if config and "pretrained_cfg" not in config else {})
    cfg = dict(stored, **(pretrained_cfg or {}))
    labels = config.get("label_names", cfg.get("label_names", cfg.get("labels")))
    preprocessor = preprocessor_from_timm(cfg, labels, kwargs["num_classes"], tuple(kwargs["image_size"]))
    return ClassifierComponents(model, preprocessor)
