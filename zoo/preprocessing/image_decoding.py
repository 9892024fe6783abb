"""Encoded image bytes to float32 RGB pixels in `[0, 1]`, inside TensorFlow graphs.

`decode_image` is the one decoder of zoo's image classifiers:
`zoo.preprocessing.ImagePreprocessor.decode` calls it for training batches,
`zoo.ImageClassifier.predict` and the TF Serving export alike. It takes
JPEG, PNG, GIF (first frame) and BMP, of any size; grayscale and RGBA
become RGB (alpha dropped). It raises, inside the graph, on anything it will
not decode: more than `max_bytes` bytes, a header that declares more than
`max_pixels` pixels, bytes that are not an image, an empty image. Truncated
JPEGs that still hold half their rows are recovered (`try_recover_truncated`).

`header_pixels` is the one place that reads the pixel count an image's
header declares, so that a small file claiming a huge image is refused
before any pixel is allocated: JPEG through `tf.image.extract_jpeg_shape`,
PNG, GIF and BMP from their header bytes. Formats it does not know count 0
here and are checked after decoding.

Written by hand because `tf.io.decode_image` has neither limit, and the
export must stay within the ops stock TF Serving bundles (no Python, no
PIL).
"""

import tensorflow as tf

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_jpeg(data):
    return tf.equal(tf.strings.substr(data, 0, 3), JPEG_MAGIC)


def _is_png(data):
    return tf.equal(tf.strings.substr(data, 0, 8), PNG_MAGIC)


def _unsigned(data, offset, size, big_endian=False):
    """The unsigned integer of `size` bytes at `offset` (int64)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8), tf.int64)
    powers = 256 ** tf.range(tf.size(raw, out_type=tf.int64))
    return tf.reduce_sum(raw * (tf.reverse(powers, [0]) if big_endian else powers))


def _png_pixels(data):
    # PNG IHDR: width and height are big-endian uint32 at bytes 16 and 20.
    return _unsigned(data, 16, 4, big_endian=True) * _unsigned(data, 20, 4, big_endian=True)


def _gif_or_bmp_pixels(data):
    # GIF: logical screen width and height, uint16 at bytes 6 and 8. BMP
    # (BITMAPINFOHEADER): width and height, int32 at bytes 18 and 22; a
    # negative height means rows stored top-down.
    is_gif = tf.equal(tf.strings.substr(data, 0, 3), b"GIF")
    is_bmp = tf.equal(tf.strings.substr(data, 0, 2), b"BM")
    gif = _unsigned(data, 6, 2) * _unsigned(data, 8, 2)
    height = _unsigned(data, 22, 4)
    bmp = _unsigned(data, 18, 4) * tf.where(height >= 2**31, 2**32 - height, height)
    return tf.where(is_gif, gif, tf.where(is_bmp, bmp, tf.constant(0, tf.int64)))


def _jpeg_pixels(data):
    shape = tf.image.extract_jpeg_shape(data)
    return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)


def header_pixels(data):
    """The pixel count (int64) that one encoded image's header declares; 0 for formats not read here.

    Example:
    >>> png = tf.io.encode_png(tf.zeros((20, 30, 3), tf.uint8))
    >>> int(header_pixels(png))
    600
    """
    return tf.cond(
        _is_jpeg(data), lambda: _jpeg_pixels(data), lambda: tf.cond(_is_png(data), lambda: _png_pixels(data),
                                                                    lambda: _gif_or_bmp_pixels(data))
    )


def decode_image(data, max_bytes, max_pixels):
    """One image's bytes to float32 RGB `(H, W, 3)` in `[0, 1]`; raises on anything unusable.

    Args:
        data: scalar `tf.string`. JPEG, PNG, GIF or BMP bytes.
        max_bytes: int. Longer `data` is refused.
        max_pixels: int. An image whose header (or, for formats
            `header_pixels` does not read, whose decoded size) has more
            pixels is refused.

    Example:
    >>> png = tf.io.encode_png(tf.fill((2, 3, 1), tf.constant(255, tf.uint8)))
    >>> image = decode_image(png, max_bytes=2**20, max_pixels=6)
    >>> tuple(image.shape), float(image[0, 0, 2])
    ((2, 3, 3), 1.0)
    """
    tf.debugging.assert_less_equal(tf.strings.length(data), tf.constant(max_bytes, tf.int32), message="too many bytes")
    limit = tf.constant(max_pixels, tf.int64)
    tf.debugging.assert_less_equal(header_pixels(data), limit, message="too many pixels")

    def other():  # GIF (first frame) or BMP, or an error for anything else
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        size = tf.cast(tf.shape(image)[0], tf.int64) * tf.cast(tf.shape(image)[1], tf.int64)
        tf.debugging.assert_less_equal(size, limit, message="too many pixels")
        return tf.ensure_shape(image, [None, None, 3])

    image = tf.cond(
        _is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, try_recover_truncated=True, acceptable_fraction=0.5),
        lambda: tf.cond(_is_png(data), lambda: tf.io.decode_png(data, channels=3), other),
    )
    tf.debugging.assert_positive(tf.reduce_prod(tf.shape(image)[:2]), message="empty image")
    return tf.image.convert_image_dtype(image, tf.float32)
