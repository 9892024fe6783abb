"""One preprocessor per task: strings / bytes <-> tensors, for training batches, inference and export.

A task's preprocessor is the only place where its inputs become the model's
tensors and its outputs become answers; training batches (`tf.data`),
in-process inference and the TF Serving export all call it, and the task
folder saves it. TensorFlow throughout (tensorflow-text tokenizers, ragged
tensors, image decoding ops), so it traces into SavedModels and runs in
`tf.data` on any Keras backend.

- `TranslationPreprocessor`: strings <-> token ids (serving inputs,
  teacher-forced training batches, detokenization).
- `ImagePreprocessor`: image bytes or pixels -> normalised model inputs
  (decoding with size limits, resize / crop, normalisation, class names).
"""

from zoo.preprocessing.image_decoding import decode_image, header_pixels
from zoo.preprocessing.image_preprocessor import ImagePreprocessor
from zoo.preprocessing.translation_preprocessor import TranslationPreprocessor

__all__ = ["ImagePreprocessor", "TranslationPreprocessor", "decode_image", "header_pixels"]
