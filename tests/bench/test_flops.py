"""The FLOP formulas of bench/flops.py against an independent count: the
kernels of the built zoo models, each times the positions it is applied to."""

import math

import pytest

from bench import flops
from zoo.models import TransformerTranslator, VisionTransformer


def _kernels(model, suffixes=("kernel",)):
    """(path below the model, number of entries) of the weights ending in `suffixes`."""
    return [(w.path.split("/", 1)[1], math.prod(w.shape)) for w in model.weights if w.path.endswith(suffixes)]


def test_translator_flops_match_kernel_count():
    config = dict(
        source_vocab_size=50, target_vocab_size=60, num_encoder_layers=2, num_decoder_layers=3,
        d_model=16, num_heads=4, d_ff=24, dropout=0.0,
    )
    model = TransformerTranslator(**config)
    b, s, t = 3, 7, 5
    count = 0
    for path, size in _kernels(model, ("kernel", "embeddings")):
        if "source_embedding" in path:
            continue  # a lookup, not a matmul
        if "target_embedding" in path:
            count += 2 * size * b * t  # tied output projection on the T positions
        elif path.startswith("encoder_"):
            count += 2 * size * b * s
        elif "cross_attention" in path and ("/key/" in path or "/value/" in path):
            count += 2 * size * b * s  # cross-attention keys/values read the source
        else:
            count += 2 * size * b * t
    d = config["d_model"]
    count += config["num_encoder_layers"] * 4 * b * s * s * d  # QK^T and AV
    count += config["num_decoder_layers"] * (4 * b * t * t * d + 4 * b * t * s * d)
    assert flops.translator_config_flops(config, b, s, t) == 3 * count


@pytest.mark.parametrize("executed", [False, True])
def test_vit_flops_match_kernel_count(executed):
    """Model FLOPs run every block on every token; `executed` counts zoo's
    last block on the class token alone (keys and values still on all)."""
    config = dict(image_size=16, patch_size=4, num_classes=7, d_model=12, num_encoder_layers=2, num_heads=3, d_ff=24)
    model = VisionTransformer(**config)
    batch, patches = 2, (16 // 4) ** 2
    tokens = patches + 1
    last = f"encoder_{config['num_encoder_layers'] - 1}/"
    count = 0
    for path, size in _kernels(model):
        if path.startswith("patch_embedding"):
            count += 2 * size * batch * patches
        elif path.startswith("head"):
            count += 2 * size * batch
        elif executed and path.startswith(last) and not ("/key/" in path or "/value/" in path):
            count += 2 * size * batch  # queries, output projection, MLP: class token only
        else:
            count += 2 * size * batch * tokens
    count += (config["num_encoder_layers"] - 1) * 4 * batch * tokens * tokens * config["d_model"]
    count += 4 * batch * (1 if executed else tokens) * tokens * config["d_model"]
    full = dict(config, num_channels=3, pooling="token")
    assert flops.vit_config_flops(full, batch, executed=executed) == 3 * count
    gap = dict(full, pooling="gap")  # no class token: nothing to skip
    assert flops.vit_config_flops(gap, batch, executed=True) == flops.vit_config_flops(gap, batch)


def test_causal_attention_counted_fully():
    assert flops.attention_core_flops(1, 8, 8, 4) == 4 * 8 * 8 * 4
