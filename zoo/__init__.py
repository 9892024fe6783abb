"""zoo: attention layers, Transformer models and TF Serving exports for Keras 3.

`zoo.Translator` and `zoo.ImageClassifier` (the task objects, `zoo.tasks`)
and `zoo.plots` (matplotlib) are imported on first use, so `import zoo`
and `import zoo.models` stay light: they import none of `zoo.tasks`,
`zoo.plots`, `zoo.convert` or `zoo.export`.
"""

import importlib

from zoo import layers, models

__version__ = "0.1.0"

# name -> (module, attribute of it; None: the module itself)
_LAZY = {
    "Translator": ("zoo.tasks.translator", "Translator"),
    "ImageClassifier": ("zoo.tasks.image_classifier", "ImageClassifier"),
    "plots": ("zoo.plots", None),
}

__all__ = [
    "ImageClassifier",
    "Translator",
    "layers",
    "models",
    "plots",
]


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        module = importlib.import_module(module)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
