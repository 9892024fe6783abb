"""ViT training throughput: zoo `VisionTransformer` vs keras-hub `ViTBackbone` + head.

    python -m bench.vit_training                                   # CPU: vit_tiny_patch4_32, batch 128
    python -m bench.vit_training --preset vit_base_patch16_224 --batch-size 128 \
        --dtype-policy mixed_bfloat16 --mfu                        # GPU (KERAS_BACKEND=jax)

Both sides on the same configuration: image size, patch size, layers, width,
heads, MLP width (exact GELU), pre-norm, LayerNorm epsilon, dropout 0,
class-token pooling and a Dense head on the class token's final
(normalised) output. Same AdamW, same sparse cross-entropy from logits,
the same random images and labels every step (`train_on_batch`), same
`jit_compile` and `steps_per_execution`. Reports images/s (median and
spread over alternating windows), zoo / keras-hub, parameters of both,
model FLOPs per step (bench/flops.py; also the FLOPs zoo executes, whose
last block runs for the class token alone) and, with `--mfu`, utilisation
against the measured matmul ceiling.
"""

import keras
import numpy as np

from bench import common
from bench.flops import vit_config_flops


def zoo_builder(config):
    def build():
        from zoo.models import VisionTransformer

        keras.utils.set_random_seed(0)
        return VisionTransformer(**config)

    return build


def keras_hub_builder(config):
    def build():
        import keras_hub

        keras.utils.set_random_seed(0)
        size = config["image_size"]
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(size, size, config.get("num_channels", 3)),
            patch_size=config["patch_size"],
            num_layers=config["num_encoder_layers"],
            num_heads=config["num_heads"],
            hidden_dim=config["d_model"],
            mlp_dim=config["d_ff"],
            dropout_rate=config["dropout"],
            attention_dropout=config["attention_dropout"],
            layer_norm_epsilon=config["layer_norm_epsilon"],
        )
        tokens = backbone.output  # (B, 1 + P, D), after the final LayerNorm
        logits = keras.layers.Dense(config["num_classes"], name="head")(tokens[:, 0])
        logits = keras.layers.Activation("linear", dtype="float32")(logits)
        return keras.Model(backbone.input, logits)

    return build


def main(argv=None):
    parser = common.add_training_flags(common.base_parser(__doc__.splitlines()[0], batch_size=128))
    parser.add_argument("--preset", default="vit_tiny_patch4_32")
    parser.add_argument("--layers", type=int, default=None, help="override the preset's encoder layers (smoke tests)")
    parser.add_argument("--image-size", type=int, default=None, help="override the preset's image size")
    args = parser.parse_args(argv)
    common.set_policy(args.dtype_policy)
    from zoo.models.vision_transformer_presets import VISION_TRANSFORMER_PRESETS

    config = dict(VISION_TRANSFORMER_PRESETS[args.preset]["config"], dropout=0.0, attention_dropout=0.0)
    config.setdefault("drop_path_rate", 0.0)
    if args.layers:
        config["num_encoder_layers"] = args.layers
    if args.image_size:
        config["image_size"] = args.image_size
    rng = np.random.default_rng(0)
    size = config["image_size"]
    images = rng.standard_normal((args.batch_size, size, size, 3)).astype("float32")
    labels = rng.integers(0, config["num_classes"], (args.batch_size,)).astype("int32")
    result = common.compare_training(
        {"zoo": zoo_builder(config), "keras_hub": keras_hub_builder(config)},
        common.sparse_ce_compiler(lambda: keras.optimizers.AdamW(1e-4), args.steps_per_execution),
        (images, labels, None),
        args.batch_size,
        args,
        flops_per_step=vit_config_flops(config, args.batch_size),
    )
    report = {
        "benchmark": "vit_training",
        "unit": "images/s",
        "system": common.system_info(),
        "preset": args.preset,
        "config": config,
        "batch_size": args.batch_size,
        "steps_per_execution": args.steps_per_execution,
        **result,
    }
    # zoo's last block computes the class token alone: fewer FLOPs executed
    # than the model FLOPs (the conventional count, used for MFU) say.
    executed = vit_config_flops(config, args.batch_size, executed=True)
    report["zoo_executed_train_flops_per_step"] = executed
    best = result["per_s"][result["best_setting"]["zoo"]]["zoo"]["median"]
    report["zoo_executed_tflops_per_s_at_best"] = best / args.batch_size * executed / 1e12
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
