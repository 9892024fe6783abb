"""Models assembled from `zoo.layers` (keras.ops only)."""

from zoo.models.transformer_translator import TransformerTranslator
from zoo.models.vision_transformer import VisionTransformer

__all__ = [
    "TransformerTranslator",
    "VisionTransformer",
]
