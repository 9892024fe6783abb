"""Presets for `VisionTransformer`: the sizes of the ViT paper and DeiT.

Architecture only, randomly initialised; names follow timm. Widths, depths
and heads: Dosovitskiy et al. (2021), table 1 (Base, Large) and Touvron et
al. (2021), table 1 (Tiny, Small).
"""

_VIT = dict(
    qkv_bias=True,
    layer_norm_epsilon=1e-6,
    pooling="token",
    num_classes=1000,
    image_size=224,
)

VISION_TRANSFORMER_PRESETS = {
    "vit_tiny_patch4_32": {
        "config": dict(
            _VIT,
            image_size=32,
            patch_size=4,
            num_classes=10,
            d_model=192,
            num_encoder_layers=6,
            num_heads=3,
            d_ff=768,
        ),
        "description": "32x32 inputs in 4x4 patches (64 tokens), d_model 192, 6 layers, "
        "3 heads, 10 classes: a small-image ViT (CIFAR-10 size) that trains on a CPU.",
    },
    "vit_tiny_patch16_224": {
        "config": dict(_VIT, patch_size=16, d_model=192, num_encoder_layers=12, num_heads=3, d_ff=768),
        "description": "ViT-Ti/16 (DeiT-Tiny): d_model 192, 12 layers, 3 heads, 224x224, 5.7M parameters.",
    },
    "vit_small_patch16_224": {
        "config": dict(_VIT, patch_size=16, d_model=384, num_encoder_layers=12, num_heads=6, d_ff=1536),
        "description": "ViT-S/16 (DeiT-Small): d_model 384, 12 layers, 6 heads, 224x224, 22M parameters.",
    },
    "vit_base_patch16_224": {
        "config": dict(_VIT, patch_size=16, d_model=768, num_encoder_layers=12, num_heads=12, d_ff=3072),
        "description": "ViT-B/16: d_model 768, 12 layers, 12 heads, 224x224, 86M parameters.",
    },
    "vit_base_patch32_224": {
        "config": dict(_VIT, patch_size=32, d_model=768, num_encoder_layers=12, num_heads=12, d_ff=3072),
        "description": "ViT-B/32: d_model 768, 12 layers, 12 heads, 32x32 patches, 224x224, 88M parameters.",
    },
    "vit_large_patch16_224": {
        "config": dict(_VIT, patch_size=16, d_model=1024, num_encoder_layers=24, num_heads=16, d_ff=4096),
        "description": "ViT-L/16: d_model 1024, 24 layers, 16 heads, 224x224, 304M parameters.",
    },
}
