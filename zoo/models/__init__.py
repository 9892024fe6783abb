"""Models assembled from `zoo.layers` (keras.ops only)."""

from zoo.models.attention_rollout import attention_rollout, rollout_from_attention
from zoo.models.losses import SparseCrossentropyWithSmoothing  # registered: compiled models' .keras files load
from zoo.models.transformer_translator import TransformerTranslator
from zoo.models.vision_transformer import VisionTransformer

__all__ = [
    "attention_rollout",
    "rollout_from_attention",
    "SparseCrossentropyWithSmoothing",
    "TransformerTranslator",
    "VisionTransformer",
]
