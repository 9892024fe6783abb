"""One preprocessor per task: the only place where images (and, with the translator's, strings) become
model inputs, for training batches, in-process inference and the export alike."""

from zoo.preprocessing.image_decoding import decode_image, header_pixels
from zoo.preprocessing.image_preprocessor import ImagePreprocessor

__all__ = ["ImagePreprocessor", "decode_image", "header_pixels"]
