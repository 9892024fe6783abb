"""Task objects: a trained model and everything needed to use it, as one thing.

`Translator` (tokenizers + `TransformerTranslator` + decoding settings) and
`ImageClassifier` (image preprocessing + `VisionTransformer` + class names)
load, run, save (one folder) and export. Both are also `zoo.Translator` and
`zoo.ImageClassifier`. `zoo.tasks.fine_tuning` loads any pretrained
checkpoint as one (`load_pretrained`) and adapts it for fine-tuning (a new
head, another image size, a frozen backbone, LoRA).
"""

from zoo.tasks.fine_tuning import (
    enable_lora,
    freeze_backbone,
    load_pretrained,
    merge_lora,
    with_image_size,
    with_new_head,
)
from zoo.tasks.image_classifier import ImageClassifier
from zoo.tasks.task import Task
from zoo.tasks.translator import Translator

__all__ = [
    "ImageClassifier",
    "Task",
    "Translator",
    "enable_lora",
    "freeze_backbone",
    "load_pretrained",
    "merge_lora",
    "with_image_size",
    "with_new_head",
]
