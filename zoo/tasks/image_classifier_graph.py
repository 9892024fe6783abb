"""The inference graph of `zoo.ImageClassifier`: image bytes in, labels out.

`ImageClassifierGraph` holds the model, the classifier's
`zoo.preprocessing.ImagePreprocessor` and the class-name table, and builds
the `tf.function`s that `zoo.ImageClassifier.predict` runs and its export
writes (through `zoo.export.writer.export_saved_model`, which knows no
model):

- `serving_default` takes `image_bytes: tf.string [batch]` (JPEG, PNG, GIF
  (first frame), BMP, WebP (not animated); any size; grayscale and RGBA become RGB) and returns
  `probabilities: float32 [batch, classes]`, `top_k_labels: tf.string
  [batch, k]`, `top_k_scores: float32 [batch, k]`, `valid: bool [batch]`
  and `reason: tf.string [batch]` (`""`, or why the image is not valid);
- `classify_pixels` takes float pixels `[batch, height, width, 3]` in
  `[0, 1]` and returns the same outputs; an image holding a NaN or an
  infinity is not valid.

Decoding, resize, crop and normalisation are the preprocessor's
(`prepare_bytes`, `prepare`: the very ops of training batches); class names
are an asset (`assets/class_names.txt`) read through a lookup table.

A request of the wrong shape (`image_bytes` not 1-D, `pixels` not
`[batch, height, width, 3]`) is refused with an `InvalidArgumentError`
naming the input and the shape received, before any op reads it
(`zoo.export.input_checks`: TF Serving does not check shapes). Bad images
never fail the batch (the documented "invalid" output): bytes that are
empty, not an image, truncated beyond repair, larger than the
preprocessor's `max_bytes`, or whose header declares more than its
`max_pixels` (GIF: its screen or first image; WebP: its canvas; all read
before decoding, `zoo.preprocessing.image_decoding`), come back with
`valid = False`, all-zero probabilities, empty labels and zero scores,
while the other images of the request are classified as if sent alone.
"""

import os
import tempfile

import tensorflow as tf

from zoo.export.input_checks import checked_rank

CLASS_NAMES_FILE = "class_names.txt"
NON_FINITE = "pixels hold a NaN or an infinity"


def _tiny_png(color):
    return tf.io.encode_png(tf.tile(tf.constant([[color]], tf.uint8), [8, 8, 1])).numpy()


class ImageClassifierGraph(tf.Module):
    """A `tf.Module` holding the classifier, its preprocessor, the class-name table and both signatures.

    Args:
        model: a classifier taking normalised `(B, H, W, 3)` images to
            `(B, num_classes)` logits (`zoo.models.VisionTransformer`).
        preprocessor: `zoo.preprocessing.ImagePreprocessor`. Decoding,
            resize, crop, normalisation and class names (one per logit).
        top_k: int. Labels and scores per image (at most the classes).
            Defaults to `5`.

    Example:
    >>> from zoo.models import VisionTransformer
    >>> from zoo.preprocessing import ImagePreprocessor
    >>> model = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16,
    ...     num_encoder_layers=1, num_heads=2, d_ff=32)
    >>> graph = ImageClassifierGraph(model, ImagePreprocessor(8, (0.5,) * 3, (0.5,) * 3, ("a", "b", "c")), top_k=2)
    >>> out = graph.serving_default(tf.constant(graph.warmup_request()["image_bytes"]))
    >>> out["valid"].numpy().tolist(), tuple(out["top_k_labels"].shape)
    ([True, True, False], (3, 2))
    """

    def __init__(self, model, preprocessor, top_k=5):
        super().__init__(name="image_classifier")
        if preprocessor.num_classes != model.num_classes:
            raise ValueError(
                f"class_names must name every class: the model has {model.num_classes}. "
                f"Received: {preprocessor.num_classes} names"
            )
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int. Received: top_k={top_k!r}")
        self.model = model
        self.preprocessor = preprocessor
        self.num_classes = int(model.num_classes)
        self.top_k = min(top_k, self.num_classes)
        # The table reads a file, which the export copies into its assets.
        self._assets = tempfile.TemporaryDirectory(prefix="zoo-class-names-")
        self.class_names_path = os.path.join(self._assets.name, CLASS_NAMES_FILE)
        with open(self.class_names_path, "w", encoding="utf-8") as f:
            f.write("\n".join(preprocessor.class_names) + "\n")
        initializer = tf.lookup.TextFileInitializer(
            self.class_names_path, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
        )
        self.class_names = tf.lookup.StaticHashTable(initializer, default_value="")
        bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        pixels_spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="pixels")
        self.serving_default = tf.function(self._classify_bytes, input_signature=[bytes_spec])
        self.classify_pixels = tf.function(self._classify_pixels, input_signature=[pixels_spec])
        # Not exported: the model's inputs, for `zoo.ImageClassifier.prepare` (what the signatures feed the model).
        self.prepare_bytes = tf.function(lambda b: preprocessor.prepare_bytes(b, with_reasons=True),
                                         input_signature=[bytes_spec])
        self.prepare_pixels = tf.function(self._prepare_pixels, input_signature=[pixels_spec])
        # Not exported: the outputs from logits, for `zoo.ImageClassifier` on
        # backends whose model cannot run in a TF graph.
        self.outputs_from_logits = tf.function(
            self._outputs, input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.bool),
                                            tf.TensorSpec([None], tf.string)],
        )

    def endpoints(self):
        """The exported signatures: `{"serving_default", "classify_pixels"}`."""
        return {"serving_default": self.serving_default, "classify_pixels": self.classify_pixels}

    @staticmethod
    def warmup_request():
        """`serving_default`'s warm-up inputs: two small PNGs and bytes that are not an image."""
        return {"image_bytes": [_tiny_png((200, 30, 30)), _tiny_png((30, 30, 200)), b"not an image"]}

    def _predict(self, images, valid, reason):
        return self._outputs(self.model(images, training=False), valid, reason)

    def _outputs(self, logits, valid, reason):
        """The signatures' outputs from the model's `(B, classes)` logits."""
        logits = tf.cast(logits, tf.float32)
        probabilities = tf.nn.softmax(logits) * tf.cast(valid, tf.float32)[:, None]
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        labels = self.class_names.lookup(tf.cast(indices, tf.int64))
        return {
            "probabilities": probabilities,
            "top_k_labels": tf.where(valid[:, None], labels, ""),
            "top_k_scores": scores,
            "valid": valid,
            "reason": reason,
        }

    def _prepare_pixels(self, pixels):
        """`(inputs (B, H, W, 3), valid (B,), reason (B,))` of float pixels `(B, H0, W0, 3)`: an image
        holding a NaN or an infinity is zeros and not valid (it would give NaN scores)."""
        pixels = checked_rank(pixels, 4, "pixels")
        channels = tf.raw_ops.Shape(input=pixels)[3]
        check = tf.raw_ops.Assert(
            condition=tf.raw_ops.Equal(x=channels, y=tf.constant(3)),
            data=["pixels must be RGB: (batch, height, width, 3). Received: a tensor of shape",
                  tf.raw_ops.Shape(input=pixels)],
        )
        with tf.control_dependencies([check]):
            finite = tf.math.is_finite(pixels)
        valid = tf.reduce_all(finite, axis=[1, 2, 3])
        pixels = tf.where(valid[:, None, None, None], pixels, 0.0)
        return self.preprocessor.prepare(pixels), valid, tf.where(valid, "", NON_FINITE)

    def _classify_pixels(self, pixels):
        return self._predict(*self._prepare_pixels(pixels))

    def _classify_bytes(self, image_bytes):
        image_bytes = checked_rank(image_bytes, 1, "image_bytes")
        return self._predict(*self.preprocessor.prepare_bytes(image_bytes, with_reasons=True))


def classify_with_saved_model(saved_model_dir, image_bytes):
    """Runs `serving_default` of an export exactly as TF Serving would; returns numpy outputs."""
    loaded = tf.saved_model.load(saved_model_dir)
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(image_bytes, tf.string))
    return {key: value.numpy() for key, value in outputs.items()}
