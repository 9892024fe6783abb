"""One preprocessor per task: strings / bytes <-> tensors, for training batches, inference and export.

A task's preprocessor is the only place where its inputs become the model's
tensors and its outputs become answers; training batches (`tf.data`),
in-process inference and the TF Serving export all call it, and the task
folder saves it. TensorFlow throughout (tensorflow-text tokenizers, ragged
tensors), so it traces into SavedModels and runs in `tf.data` on any Keras
backend.
"""

from zoo.preprocessing.translation_preprocessor import TranslationPreprocessor

__all__ = ["TranslationPreprocessor"]
