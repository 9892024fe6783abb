"""Encoded image bytes to float32 RGB pixels in `[0, 1]`, inside TensorFlow graphs.

`decode_image` is the one decoder of zoo's image classifiers:
`zoo.preprocessing.ImagePreprocessor.decode` calls it for training batches,
`zoo.ImageClassifier.predict` and the TF Serving export alike (the latter
two through its halves, `check_image` then `decode_checked`, to tell why an
image is refused). It takes JPEG, PNG, GIF (first frame), BMP and WebP (not
animated), of any size; grayscale and RGBA become RGB (alpha dropped). It
raises, inside the graph, on anything it will not decode: more than
`max_bytes` bytes, a header that declares more than `max_pixels` pixels,
bytes that are not an image, an empty image. Truncated JPEGs that still
hold half their rows are recovered (`try_recover_truncated`).

`header_pixels` is the one place that reads the pixel count an image's
header declares, so that a small file claiming a huge image is refused
before any pixel is allocated: JPEG through `tf.image.extract_jpeg_shape`,
PNG, BMP and WebP (its canvas) from their header bytes, GIF from its
logical screen and its first image. A GIF is cut after its first image
before decoding: giflib reads every frame of an animation (a 2.9 MB one took
3 GB), however few the decoder returns. Formats it does not know count 0
here and are checked after decoding. The decode runs only once the checks
passed (a control dependency or a `tf.cond` on them, never beside them).

Written by hand because `tf.io.decode_image` has neither limit, and the
export must stay within the ops stock TF Serving bundles (no Python, no
PIL).
"""

import tensorflow as tf

# Blocks (extensions: comments, loop counts, frame timings) a GIF may hold
# before its first image; real files have a handful.
GIF_MAX_BLOCKS_BEFORE_IMAGE = 256
# Why `check_image` refuses an image, by its refusal code.
REFUSALS = ("", "too many bytes", "too many pixels")

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


def _bmp_pixels(data):
    # BMP (BITMAPINFOHEADER): width and height, int32 at bytes 18 and 22; a
    # negative height means rows stored top-down.
    height = _unsigned(data, 22, 4)
    return _unsigned(data, 18, 4) * tf.where(height >= 2**31, 2**32 - height, height)


def _webp_pixels(data):
    # RIFF "WEBP", then the first chunk's fourcc at byte 12 and its data at 20.
    # VP8X (extended, animations included): canvas width - 1 and height - 1,
    # 24-bit little-endian at 24 and 27 (every frame lies within the canvas).
    # VP8L (lossless): signature 0x2f, then width - 1 and height - 1 in 14
    # bits each. VP8 (lossy): start code at 23, 14-bit width and height at 26, 28.
    fourcc = tf.strings.substr(data, 12, 4)
    extended = (_unsigned(data, 24, 3) + 1) * (_unsigned(data, 27, 3) + 1)
    bits = _unsigned(data, 21, 4)
    lossless = (bits % 2**14 + 1) * (bits // 2**14 % 2**14 + 1)
    lossy = (_unsigned(data, 26, 2) % 2**14) * (_unsigned(data, 28, 2) % 2**14)
    return tf.where(tf.equal(fourcc, b"VP8X"), extended, tf.where(tf.equal(fourcc, b"VP8L"), lossless, lossy))


def _gif_first_image(data):
    """`(bytes, pixels)`: the GIF cut after its first image (a trailer appended), and the
    pixels decoding it allocates (the larger of the logical screen and that image).

    `tf.io.decode_gif` (giflib) reads every frame of an animation, however
    few it returns; cut, it reads one. Where the first image ends is found by
    skipping the length-prefixed sub-blocks of each block: for every byte
    position, where a chain of sub-blocks starting there ends, by pointer
    jumping (at most `log2(bytes)` gathers, not one step per sub-block), then a walk
    of at most `GIF_MAX_BLOCKS_BEFORE_IMAGE` blocks to the first image.
    """
    raw = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)  # (N,)
    size = tf.size(raw)
    positions = tf.range(size)
    # A chain at j ends at its zero-length sub-block; N stands for "truncated".
    step = tf.concat([tf.where(tf.equal(raw, 0), positions, tf.minimum(positions + 1 + raw, size)), [size]], 0)

    def jump(_, step):  # each position's pointer to where its pointer's pointer goes: chains halve
        following = tf.gather(step, step)
        return tf.reduce_any(tf.not_equal(following, step)), following

    # At most log2(N) rounds; as many as the longest chain from any byte needs.
    step = tf.while_loop(lambda moved, _: moved, jump, (tf.constant(True), step))[1]
    padded = tf.concat([raw, tf.zeros([12], tf.int32)], 0)  # header reads past the end give 0

    def chain_end(j):
        return tf.gather(step, tf.minimum(j, size)) + 1

    def table(flags):  # a colour table's bytes from its packed flags
        return tf.where(flags >= 128, 3 * 2 ** (flags % 8 + 1), 0)

    def next_block(i, p):
        return i + 1, chain_end(p + 2)

    def extension(i, p):
        return tf.logical_and(i < GIF_MAX_BLOCKS_BEFORE_IMAGE, tf.equal(tf.gather(padded, tf.minimum(p, size)), 0x21))

    image = tf.while_loop(extension, next_block, (0, 13 + table(padded[10])))[1]
    image = tf.minimum(image, size)
    at = tf.gather(padded, image + tf.range(10))
    end = chain_end(image + 11 + table(at[9]))
    found = tf.logical_and(tf.equal(at[0], 0x2C), end <= size)
    cut = tf.strings.join([tf.strings.substr(data, 0, end), b"\x3b"])
    width = tf.maximum(_unsigned(data, 6, 2), tf.cast(at[5] + 256 * at[6], tf.int64))
    height = tf.maximum(_unsigned(data, 8, 2), tf.cast(at[7] + 256 * at[8], tf.int64))
    # No image found (cut short, or after too many blocks): no bytes, which the decoder refuses;
    # never the original ones, whose every frame it would read.
    return tf.where(found, cut, ""), width * height


def _is_gif(data):
    return tf.equal(tf.strings.substr(data, 0, 3), b"GIF")


def _is_bmp(data):
    return tf.equal(tf.strings.substr(data, 0, 2), b"BM")


def _is_webp(data):
    return tf.logical_and(tf.equal(tf.strings.substr(data, 0, 4), b"RIFF"),
                          tf.equal(tf.strings.substr(data, 8, 4), b"WEBP"))


def _jpeg_pixels(data):
    shape = tf.image.extract_jpeg_shape(data)
    return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)


def _by_format(data, jpeg, png, gif, bmp, webp, other):
    """The branch of `data`'s format (each a no-argument function), only that one run."""
    return tf.case(
        [(_is_jpeg(data), jpeg), (_is_png(data), png), (_is_gif(data), gif), (_is_bmp(data), bmp),
         (_is_webp(data), webp)],
        default=other, exclusive=False,
    )


def header_pixels(data):
    """The pixel count (int64) that one encoded image's header declares; 0 for formats not read here.

    For a GIF, the larger of its logical screen and its first image (the
    one decoded); for a WebP, its canvas.

    Example:
    >>> png = tf.io.encode_png(tf.zeros((20, 30, 3), tf.uint8))
    >>> int(header_pixels(png))
    600
    """
    return _by_format(
        data, lambda: _jpeg_pixels(data), lambda: _png_pixels(data), lambda: _gif_first_image(data)[1],
        lambda: _bmp_pixels(data), lambda: _webp_pixels(data), lambda: tf.constant(0, tf.int64),
    )


def check_image(data, max_bytes, max_pixels):
    """`(bytes to decode, refusal, pixels)` of one encoded image, from its length and header alone.

    `refusal` (int32) indexes `REFUSALS`: 0 when the image may be decoded,
    1 for more than `max_bytes` bytes, 2 for a header (`header_pixels`) of
    more than `max_pixels` pixels. The bytes are `data`, or a GIF cut after
    its first image (what `decode_checked` decodes). Nothing is decoded.
    """
    too_long = tf.strings.length(data) > tf.constant(max_bytes, tf.int32)
    # Too long: nothing else is read.
    data, pixels = tf.case(
        [(too_long, lambda: (data, tf.constant(0, tf.int64))), (_is_gif(data), lambda: _gif_first_image(data))],
        default=lambda: (data, header_pixels(data)),
    )
    refusal = tf.where(too_long, 1, tf.where(pixels > tf.constant(max_pixels, tf.int64), 2, 0))
    return data, refusal, pixels


def decode_checked(data, max_pixels):
    """`check_image`'s bytes (refusal 0) to float32 RGB `(H, W, 3)` in `[0, 1]`; raises on bytes
    that are not an image, an empty image, or (formats no header told) more than `max_pixels`."""
    limit = tf.constant(max_pixels, tf.int64)

    def other():  # GIF (first image only), BMP, WebP, or an error for anything else
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        size = tf.cast(tf.shape(image)[0], tf.int64) * tf.cast(tf.shape(image)[1], tf.int64)
        with tf.control_dependencies([tf.debugging.Assert(size <= limit, ["too many pixels"])]):
            return tf.ensure_shape(tf.identity(image), [None, None, 3])

    image = tf.cond(
        _is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, try_recover_truncated=True, acceptable_fraction=0.5),
        lambda: tf.cond(_is_png(data), lambda: tf.io.decode_png(data, channels=3), other),
    )
    tf.debugging.assert_positive(tf.reduce_prod(tf.shape(image)[:2]), message="empty image")
    return tf.image.convert_image_dtype(image, tf.float32)


def decode_image(data, max_bytes, max_pixels):
    """One image's bytes to float32 RGB `(H, W, 3)` in `[0, 1]`; raises on anything unusable.

    `check_image`, then `decode_checked` only once the check passed.

    Args:
        data: scalar `tf.string`. JPEG, PNG, GIF, BMP or WebP bytes.
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
    data, refusal, pixels = check_image(data, max_bytes, max_pixels)
    # The decode reads `data` only once the check passed (a control dependency,
    # not mere program order: the graph would run both at once).
    check = tf.debugging.Assert(
        tf.equal(refusal, 0),
        [tf.gather(tf.constant(REFUSALS), refusal), "; limits: max_bytes", max_bytes, "max_pixels", max_pixels,
         "; the header declares pixels:", pixels],
    )
    with tf.control_dependencies([check]):
        data = tf.identity(data)
    return decode_checked(data, max_pixels)
