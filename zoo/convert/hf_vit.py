"""Import Hugging Face `ViTForImageClassification` checkpoints into zoo.

A checkpoint folder as `save_pretrained` writes it: `config.json`, the
weights (`model.safetensors`, `pytorch_model.bin`, or sharded) and the image
processor's `preprocessor_config.json`. Read with NumPy only.

HF's ViT is zoo's `VisionTransformer` with a class token: pre-norm blocks
(`layernorm_before` / `layernorm_after`), exact GELU (`hidden_act="gelu"`),
the final `layernorm` on every token, the class token's output into
`classifier`. Both weight layouts are read: the one `save_pretrained`
writes (`vit.encoder.layer.{i}.attention.attention.query`, ...) and
transformers 5's module names (`vit.layers.{i}.attention.q_proj`, ...).

Not imported, with a CheckpointError: other architectures (`ViTModel`,
which has no classifier, only a tanh pooler; `ViTForMaskedImageModeling`
and its `encoder_stride` decoder; DeiT's distillation token, ...),
activations other than exact GELU, a `head_dim` other than
`hidden_size / num_attention_heads`. Pooler weights and a mask token saved
next to a classifier are skipped, as ViTForImageClassification skips them.
HF interpolates positions only when asked (`interpolate_pos_encoding`);
zoo always does at another input size, with Keras' bicubic resize, which
differs slightly from PyTorch's. At the trained size the logits agree.
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

_LEGACY = dict(
    patch="vit.embeddings.patch_embeddings.projection",
    cls="vit.embeddings.cls_token",
    pos="vit.embeddings.position_embeddings",
    norm1="vit.encoder.layer.{i}.layernorm_before",
    q="vit.encoder.layer.{i}.attention.attention.query",
    k="vit.encoder.layer.{i}.attention.attention.key",
    v="vit.encoder.layer.{i}.attention.attention.value",
    o="vit.encoder.layer.{i}.attention.output.dense",
    norm2="vit.encoder.layer.{i}.layernorm_after",
    fc1="vit.encoder.layer.{i}.intermediate.dense",
    fc2="vit.encoder.layer.{i}.output.dense",
    norm="vit.layernorm",
    head="classifier",
)
_MODULES = dict(
    _LEGACY,
    norm1="vit.layers.{i}.layernorm_before",
    q="vit.layers.{i}.attention.q_proj",
    k="vit.layers.{i}.attention.k_proj",
    v="vit.layers.{i}.attention.v_proj",
    o="vit.layers.{i}.attention.o_proj",
    norm2="vit.layers.{i}.layernorm_after",
    fc1="vit.layers.{i}.mlp.fc1",
    fc2="vit.layers.{i}.mlp.fc2",
)
_LEFTOVER_HINTS = (
    ("decoder", "the decoder of ViTForMaskedImageModeling"),
    ("distillation", "DeiT's distillation token and head"),
)
# Saved by some checkpoints but never run by ViTForImageClassification
# (transformers drops them on load too).
_UNUSED = ("vit.pooler.", "vit.embeddings.mask_token")
# PIL resampling filters (HF's `resample`) -> `ImagePreprocessor.interpolation`.
_RESAMPLE = {0: "nearest", 1: "lanczos3", 2: "bilinear", 3: "bicubic"}


def vit_kwargs_from_hf_config(config, where="config.json"):
    """`VisionTransformer` arguments for an HF `ViTConfig` dict; raises on what zoo can't express."""
    model_type = config.get("model_type")
    if model_type != "vit":
        raise CheckpointError(
            f"{where} describes model_type={model_type!r}; expected 'vit' (ViTForImageClassification)."
        )
    architectures = config.get("architectures") or ["ViTForImageClassification"]
    if "ViTForImageClassification" not in architectures:
        raise CheckpointError(
            f"{where} describes architectures={architectures}; only ViTForImageClassification has "
            "the classifier zoo imports (ViTModel's pooler and ViTForMaskedImageModeling's decoder "
            "are not classifiers)."
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(
            f"{where}: hidden_act={config['hidden_act']!r}; zoo's VisionTransformer uses exact (erf) "
            "GELU, HF's 'gelu'."
        )
    d_model, num_heads = config.get("hidden_size", 768), config.get("num_attention_heads", 12)
    if not isinstance(num_heads, int) or num_heads <= 0 or d_model % num_heads:
        raise CheckpointError(
            f"{where}: num_attention_heads must divide hidden_size. "
            f"Received: hidden_size={d_model}, num_attention_heads={num_heads}"
        )
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim != d_model // num_heads:
        raise CheckpointError(
            f"{where}: head_dim={head_dim}; zoo needs hidden_size / num_attention_heads = {d_model // num_heads}."
        )
    id2label = config.get("id2label")
    num_classes = len(id2label) if id2label else config.get("num_labels", 2)
    return dict(
        image_size=checkpoint_size(config.get("image_size", 224), "image_size", where),
        patch_size=checkpoint_size(config.get("patch_size", 16), "patch_size", where),
        num_classes=num_classes,
        d_model=d_model,
        num_encoder_layers=config.get("num_hidden_layers", 12),
        num_heads=num_heads,
        d_ff=config.get("intermediate_size", 3072),
        dropout=float(config.get("hidden_dropout_prob", 0.0)),
        attention_dropout=float(config.get("attention_probs_dropout_prob", 0.0)),
        qkv_bias=bool(config.get("qkv_bias", True)),
        layer_norm_epsilon=float(config.get("layer_norm_eps", 1e-12)),
        pooling="token",
        num_channels=config.get("num_channels", 3),
    )


def preprocessor_from_hf(processor, config, image_size, where="preprocessor_config.json"):
    """`ImagePreprocessor` from a `ViTImageProcessor` config and the model's `id2label`.

    HF computes `(x * rescale_factor - mean) / std` on 0..255 pixels `x`; in
    the export's `[0, 1]` units that is `mean / (255 * rescale_factor)` and
    `std / (255 * rescale_factor)`.
    """
    kind = processor.get("image_processor_type", "ViTImageProcessor")
    if not kind.startswith("ViTImageProcessor"):
        raise CheckpointError(f"{where}: image_processor_type={kind!r}; expected ViTImageProcessor.")
    if processor.get("do_center_crop"):
        raise CheckpointError(f"{where}: do_center_crop is set; ViTImageProcessor does not crop.")
    scale = 255.0 * float(processor.get("rescale_factor", 1 / 255)) if processor.get("do_rescale", True) else 255.0
    if processor.get("do_normalize", True):
        mean, std = processor.get("image_mean", [0.5] * 3), processor.get("image_std", [0.5] * 3)
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    if isinstance(mean, (int, float)):
        mean = [mean] * 3
    if isinstance(std, (int, float)):
        std = [std] * 3
    num_classes = len(config.get("id2label") or {}) or config.get("num_labels", 2)
    id2label = config.get("id2label") or {i: f"LABEL_{i}" for i in range(num_classes)}
    resample = processor.get("resample", 2)
    if resample not in _RESAMPLE:
        raise CheckpointError(
            f"{where}: resample={resample!r}; zoo resizes with PIL filters {_RESAMPLE} "
            "(0 nearest, 1 Lanczos, 2 bilinear, 3 bicubic)."
        )
    return checkpoint_preprocessor(
        where,
        image_size=image_size,
        mean=[m / scale for m in mean],
        std=[s / scale for s in std],
        class_names=class_names_from_mapping(id2label, num_classes, "config.json id2label"),
        interpolation=_RESAMPLE[resample],
        source=f"transformers {kind}",
    )


def load_hf_vit(path):
    """Reads an HF `ViTForImageClassification` folder (`zoo.ImageClassifier.from_hf`).

    Args:
        path: str. The folder `save_pretrained` wrote (`config.json`,
            `preprocessor_config.json`, weights).

    Returns:
        `ClassifierComponents`: the `zoo.models.VisionTransformer` with the
        checkpoint's weights and its `zoo.preprocessing.ImagePreprocessor`.

    Raises:
        CheckpointError: a file is missing, the configuration describes
            something else, or a tensor is missing, extra, or misshapen.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise CheckpointError(f"Expected an HF checkpoint folder (config.json, weights). Received: {path}")
    config = read_json(path, "config.json")
    kwargs = vit_kwargs_from_hf_config(config, where=os.path.join(path, "config.json"))
    tensors = Tensors(read_state_dict(path), where=f"HF checkpoint {path}", target=TARGET)
    tensors.refuse(_LEFTOVER_HINTS)
    for prefix in _UNUSED:
        tensors.ignore(prefix)
    processor = read_json(path, "preprocessor_config.json")
    names = _MODULES if "vit.layers.0.layernorm_before.weight" in tensors else _LEGACY
    preprocessor = preprocessor_from_hf(processor, config, tuple(kwargs["image_size"]))
    model = VisionTransformer(**kwargs)
    load_vit_weights(model, tensors, names)
    tensors.check_all_used(_LEFTOVER_HINTS)
    return ClassifierComponents(model, preprocessor)
