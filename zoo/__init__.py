"""zoo: attention layers, Transformer models and TF Serving exports for Keras 3.

`zoo.Translator` and `zoo.ImageClassifier` (the task objects, `zoo.tasks`)
are imported on first use, so `import zoo.models` stays light: it imports
none of `zoo.tasks`, `zoo.convert` or `zoo.export`.
"""

import importlib

from zoo import layers, models

__version__ = "0.1.0"

_LAZY = {"Translator": "zoo.tasks.translator", "ImageClassifier": "zoo.tasks.image_classifier"}

__all__ = [
    "ImageClassifier",
    "Translator",
    "layers",
    "models",
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
