"""Task objects: a trained model and everything needed to use it, as one thing.

`Translator` (tokenizers + `TransformerTranslator` + decoding settings) and
`ImageClassifier` (image preprocessing + `VisionTransformer` + class names)
load, run, save (one folder) and export. Both are also `zoo.Translator` and
`zoo.ImageClassifier`.
"""

from zoo.tasks.image_classifier import ImageClassifier
from zoo.tasks.task import Task
from zoo.tasks.translator import Translator

__all__ = ["ImageClassifier", "Task", "Translator"]
