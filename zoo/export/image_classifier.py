"""The TF Serving export of an image classifier: image bytes in, labels out.

`serving_default` takes `image_bytes: tf.string [batch]` (JPEG, PNG, GIF
(first frame), BMP; any size; grayscale and RGBA become RGB) and returns
`probabilities: float32 [batch, classes]`, `top_k_labels: tf.string
[batch, k]`, `top_k_scores: float32 [batch, k]` and `valid: bool [batch]`.
`classify_pixels` takes float pixels `[batch, height, width, 3]` in `[0, 1]`.
Decoding, then `zoo.data.ImagePreprocessing` (resize, crop, normalisation:
the same object and ops `zoo.ImageClassifier.predict` runs), run in the
graph; class names are an asset (`assets/class_names.txt`) read through a
lookup table.

Bad images never fail the batch (the documented "invalid" output): each
image is decoded in a `tf.data` pipeline with `ignore_errors()`, so bytes
that are empty, not an image, truncated beyond repair, larger than
`max_bytes`, or whose header declares more than `max_pixels`, come back with
`valid = False`, all-zero probabilities, empty labels and zero scores, while
the other images of the request are classified as if sent alone.
Truncated JPEGs that still hold most rows are recovered
(`try_recover_truncated`).

`quantize="int8"` exports an int8 copy of the model instead
(`zoo.export.quantization`: the attention, feed-forward and head weights;
the patch convolution stays float), as `<name>_int8` by default.
"""

import os
import tempfile

import tensorflow as tf

from zoo.data.image_preprocessing import ImagePreprocessing
from zoo.export.quantization import check_mode, quantize_model, quantized_name
from zoo.export.writer import export_saved_model

CLASS_NAMES_FILE = "class_names.txt"


def _png_pixels(data):
    # PNG IHDR: width and height are big-endian uint32 at bytes 16 and 20.
    dims = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8)
    dims = tf.cast(tf.reshape(dims, [2, 4]), tf.int64)
    sizes = dims[:, 0] * 2**24 + dims[:, 1] * 2**16 + dims[:, 2] * 2**8 + dims[:, 3]
    return sizes[0] * sizes[1]


def _little_endian(data, offset, size):
    """The unsigned little-endian integer of `size` bytes at `offset` (int64)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8), tf.int64)
    return tf.reduce_sum(raw * 256 ** tf.range(tf.size(raw, out_type=tf.int64)))


def _gif_or_bmp_pixels(data):
    # GIF: logical screen width and height, uint16 at bytes 6 and 8. BMP
    # (BITMAPINFOHEADER): width and height, int32 at bytes 18 and 22; a
    # negative height means rows stored top-down.
    is_gif = tf.equal(tf.strings.substr(data, 0, 3), b"GIF")
    is_bmp = tf.equal(tf.strings.substr(data, 0, 2), b"BM")
    gif = _little_endian(data, 6, 2) * _little_endian(data, 8, 2)
    height = _little_endian(data, 22, 4)
    bmp = _little_endian(data, 18, 4) * tf.where(height >= 2**31, 2**32 - height, height)
    return tf.where(is_gif, gif, tf.where(is_bmp, bmp, tf.constant(0, tf.int64)))


def _decode(data, max_bytes, max_pixels):
    """One image's bytes to float32 RGB in [0, 1]; raises on anything unusable."""
    tf.debugging.assert_less_equal(tf.strings.length(data), tf.constant(max_bytes, tf.int32), message="too many bytes")
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")
    is_png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")

    def jpeg():
        shape = tf.image.extract_jpeg_shape(data)
        tf.debugging.assert_less_equal(
            tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64), tf.constant(max_pixels, tf.int64), message="too many pixels"
        )
        return tf.io.decode_jpeg(data, channels=3, try_recover_truncated=True, acceptable_fraction=0.5)

    def png():
        tf.debugging.assert_less_equal(_png_pixels(data), tf.constant(max_pixels, tf.int64), message="too many pixels")
        return tf.io.decode_png(data, channels=3)

    def other():  # GIF (first frame) or BMP, or an error for anything else
        pixels = _gif_or_bmp_pixels(data)
        tf.debugging.assert_less_equal(pixels, tf.constant(max_pixels, tf.int64), message="too many pixels")
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        size = tf.cast(tf.shape(image)[0], tf.int64) * tf.cast(tf.shape(image)[1], tf.int64)
        tf.debugging.assert_less_equal(size, tf.constant(max_pixels, tf.int64), message="too many pixels")
        return tf.ensure_shape(image, [None, None, 3])

    image = tf.cond(is_jpeg, jpeg, lambda: tf.cond(is_png, png, other))
    tf.debugging.assert_positive(tf.reduce_prod(tf.shape(image)[:2]), message="empty image")
    return tf.image.convert_image_dtype(image, tf.float32)


class ImageClassifierModule(tf.Module):
    """A `tf.Module` holding the classifier, its preprocessing, the class-name table and both signatures.

    Args:
        model: a classifier taking normalised `(B, H, W, 3)` images to
            `(B, num_classes)` logits (`zoo.models.VisionTransformer`).
        preprocessing: `zoo.data.ImagePreprocessing`. Resize, crop,
            normalisation and class names (one per logit).
        top_k: int. Labels and scores per image (at most the classes).
            Defaults to `5`.
        max_bytes: int. Larger encoded images are invalid. Defaults to 32 MiB.
        max_pixels: int. Images whose header declares more pixels are
            invalid. Defaults to 64 megapixels.
    """

    def __init__(self, model, preprocessing, top_k=5, max_bytes=32 * 2**20, max_pixels=64 * 2**20):
        super().__init__(name="image_classifier")
        if preprocessing.num_classes != model.num_classes:
            raise ValueError(
                f"class_names must name every class: the model has {model.num_classes}. "
                f"Received: {preprocessing.num_classes} names"
            )
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int. Received: top_k={top_k!r}")
        self.model = model
        self.preprocessing = preprocessing
        self.image_size = preprocessing.image_size
        self.num_classes = int(model.num_classes)
        self.top_k = min(top_k, self.num_classes)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        # The table reads a file, which the export copies into its assets.
        self._assets = tempfile.TemporaryDirectory(prefix="zoo-class-names-")
        self.class_names_path = os.path.join(self._assets.name, CLASS_NAMES_FILE)
        with open(self.class_names_path, "w", encoding="utf-8") as f:
            f.write("\n".join(preprocessing.class_names) + "\n")
        initializer = tf.lookup.TextFileInitializer(
            self.class_names_path, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
            tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
        )
        self.class_names = tf.lookup.StaticHashTable(initializer, default_value="")
        self.serving_default = tf.function(
            self._classify_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
        )
        self.classify_pixels = tf.function(
            self._classify_pixels, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="pixels")]
        )
        # Not exported: the model's inputs, for `zoo.ImageClassifier.prepare` (what the signatures feed the model).
        self.prepare_bytes = tf.function(
            self._prepare_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
        )
        self.prepare_pixels = tf.function(
            self._prepare, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="pixels")]
        )
        # Not exported: the outputs from logits, for `zoo.ImageClassifier` on
        # backends whose model cannot run in a TF graph.
        self.outputs_from_logits = tf.function(
            self._outputs, input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.bool)]
        )

    def _prepare(self, image):
        return self.preprocessing.prepare(image)

    def _predict(self, images, valid):
        return self._outputs(self.model(images, training=False), valid)

    def _outputs(self, logits, valid):
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
        }

    def _classify_pixels(self, pixels):
        images = self._prepare(pixels)
        return self._predict(images, tf.ones(tf.shape(pixels)[:1], tf.bool))

    def _prepare_bytes(self, image_bytes):
        """`(images (B, H, W, 3) normalised at the model's size, valid (B,))`
        of encoded images; an image that does not decode is zeros, not valid."""
        n = tf.shape(image_bytes, out_type=tf.int64)[0]
        height, width = self.image_size
        decoded = (
            tf.data.Dataset.from_tensor_slices((tf.range(n), image_bytes))
            .map(lambda i, data: (i, self._prepare(_decode(data, self.max_bytes, self.max_pixels))))
            .ignore_errors()
        )
        # Decoded images batched together, then a batch of none in case all failed.
        empty = tf.data.Dataset.from_tensors((tf.zeros([0], tf.int64), tf.zeros([0, height, width, 3])))
        index, images = decoded.batch(tf.maximum(n, 1)).concatenate(empty).take(1).get_single_element()
        shape = tf.stack([n, height, width, 3])
        full = tf.scatter_nd(index[:, None], images, shape)
        valid = tf.scatter_nd(index[:, None], tf.ones_like(index, tf.bool), [n])
        return full, valid

    def _classify_bytes(self, image_bytes):
        return self._predict(*self._prepare_bytes(image_bytes))


def _tiny_png(color):
    return tf.io.encode_png(tf.tile(tf.constant([[color]], tf.uint8), [8, 8, 1])).numpy()


def export_image_classifier(model, preprocessing, base, name=None, version=None, top_k=5, quantize=None):
    """Writes `<base>/<name>/<version>/` (next free version) and returns its path.

    Args:
        model: the classifier (see `ImageClassifierModule`).
        preprocessing: `zoo.data.ImagePreprocessing`. Resize, crop,
            normalisation and class names.
        base: str. The model base directory.
        name: str. Model name. Defaults to `"image_classifier"`, or
            `"image_classifier_int8"` with `quantize="int8"`.
        version: int. Defaults to the next free version.
        top_k: int. Labels per image. Defaults to `5`.
        quantize: None or `"int8"`. Export an int8 copy of the model
            (`zoo.export.quantization.quantize_model`); `model` itself is
            not changed. Defaults to `None` (float).
    """
    name = quantized_name("image_classifier", check_mode(quantize)) if name is None else name
    if not isinstance(preprocessing, ImagePreprocessing):
        raise TypeError(
            "preprocessing must be a zoo.data.ImagePreprocessing (image size, mean, std, class names). "
            f"Received: {type(preprocessing).__name__}"
        )
    summary = None
    if quantize is not None:
        model, summary = quantize_model(model, quantize)
    module = ImageClassifierModule(model, preprocessing, top_k)

    warmup = [_tiny_png((200, 30, 30)), _tiny_png((30, 30, 200)), b"not an image"]
    return export_saved_model(
        base,
        name,
        {"serving_default": module.serving_default, "classify_pixels": module.classify_pixels},
        resources=(module.class_names,),
        warmup_requests=[{"image_bytes": warmup}],
        version=version,
        quantization=summary,
    )


def classify_with_saved_model(saved_model_dir, image_bytes):
    """Runs `serving_default` of an export exactly as TF Serving would; returns numpy outputs."""
    loaded = tf.saved_model.load(saved_model_dir)
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(image_bytes, tf.string))
    return {key: value.numpy() for key, value in outputs.items()}
