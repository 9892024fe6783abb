"""zoo: attention layers, Transformer models and TF Serving exports for Keras 3."""

from zoo import layers, models

__version__ = "0.1.0"

__all__ = [
    "layers",
    "models",
]
