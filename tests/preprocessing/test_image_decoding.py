"""The image decoder's limits (`ImagePreprocessor.max_bytes` / `max_pixels`): they hold at their boundaries
for every format, headers are read before decoding, and a rejected image leaves the others of its batch as
they would be alone (what the export, `predict` and training batches all run)."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.preprocessing import hostile_images
from zoo.preprocessing import ImagePreprocessor, decode_image, header_pixels

HEIGHT, WIDTH = 20, 30  # 600 pixels
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
PREPROCESSOR = ImagePreprocessor(32, (0.5,) * 3, (0.5,) * 3, ("cat", "dog", "bird"))


@pytest.fixture(scope="module")
def encoded():
    rgb = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)

    def encode(fmt, array=rgb, **options):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt, **options)
        return buffer.getvalue()

    images = {fmt: encode(fmt) for fmt in FORMATS}
    # Top-down BMP rows: the header stores a negative height.
    bmp = bytearray(images["BMP"])
    offset = int.from_bytes(bmp[10:14], "little")
    bmp[22:26] = (-HEIGHT).to_bytes(4, "little", signed=True)
    bmp[offset:] = np.frombuffer(bytes(bmp[offset:]), np.uint8).reshape(HEIGHT, -1)[::-1].tobytes()
    images["BMP top-down"] = bytes(bmp)
    images["WEBP lossless"] = encode("WEBP", lossless=True)
    images["small PNG"] = encode("PNG", np.zeros((4, 5, 3), np.uint8))  # 20 pixels, always within the limits
    return images


def _prepare(batch, **limits):
    inputs, valid = PREPROCESSOR.replace(**limits).prepare_bytes(tf.constant(batch))
    return inputs.numpy(), valid.numpy()


def test_pixel_limit_at_its_boundary_for_every_format(encoded):
    names = ["small PNG", *FORMATS, "BMP top-down"]
    batch = [encoded[name] for name in names]
    at_limit, at_valid = _prepare(batch, max_pixels=HEIGHT * WIDTH)
    over, over_valid = _prepare(batch, max_pixels=HEIGHT * WIDTH - 1)
    assert dict(zip(names, at_valid.tolist())) == dict.fromkeys(names, True)
    assert dict(zip(names, over_valid.tolist())) == {name: name == "small PNG" for name in names}
    assert not over[1:].any()  # refused: zeros
    np.testing.assert_allclose(over[0], at_limit[0], atol=1e-6)
    # Bottom-up and top-down BMPs (negative header height) hold the same pixels.
    np.testing.assert_allclose(at_limit[names.index("BMP")], at_limit[names.index("BMP top-down")], atol=1e-6)


def test_byte_limit_at_its_boundary(encoded):
    # Bytes after the end of an image are ignored by the decoders: pad each
    # format to exactly the limit, and to one byte more.
    limit = max(len(encoded[fmt]) for fmt in FORMATS)
    names = [f"{fmt} {size}" for fmt in FORMATS for size in ("at limit", "over")]
    batch = [encoded[fmt] + b"\0" * (limit - len(encoded[fmt]) + (size == "over")) for fmt in FORMATS
             for size in ("at limit", "over")]
    inputs, valid = _prepare(batch, max_bytes=limit)
    assert dict(zip(names, valid.tolist())) == {name: name.endswith("at limit") for name in names}
    alone, _ = _prepare([encoded[fmt] for fmt in FORMATS])
    np.testing.assert_allclose(inputs[::2], alone, atol=1e-6)


def test_headers_are_read_before_decoding(encoded):
    """The pixel count comes from the header, so a small file declaring a huge
    image is refused before any pixel is allocated."""
    for fmt in (*FORMATS, "BMP top-down", "WEBP lossless"):
        assert int(header_pixels(tf.constant(encoded[fmt]))) == HEIGHT * WIDTH, fmt
    huge_gif = encoded["GIF"][:6] + (65535).to_bytes(2, "little") * 2 + encoded["GIF"][10:]
    huge_bmp = encoded["BMP"][:18] + (100_000).to_bytes(4, "little") * 2 + encoded["BMP"][26:]
    huge_png = encoded["PNG"][:16] + (100_000).to_bytes(4, "big") * 2 + encoded["PNG"][24:]
    assert int(header_pixels(tf.constant(huge_gif))) == 65535**2
    assert int(header_pixels(tf.constant(huge_bmp))) == 100_000**2
    assert int(header_pixels(tf.constant(huge_png))) == 100_000**2
    unknown = b"not an image, but long enough to hold a header"
    assert int(header_pixels(tf.constant(unknown))) == 0  # formats not read here: checked once decoded
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many pixels"):
        decode_image(tf.constant(huge_gif), max_bytes=2**20, max_pixels=2**30)


def test_decode_gives_rgb_in_unit_range_for_every_format(encoded):
    rgb = np.asarray(Image.open(io.BytesIO(encoded["PNG"])))
    for fmt in ("PNG", "BMP", "BMP top-down"):  # lossless
        image = PREPROCESSOR.decode(tf.constant(encoded[fmt])).numpy()
        assert image.dtype == np.float32 and image.shape == (HEIGHT, WIDTH, 3)
        np.testing.assert_allclose(image * 255, rgb, atol=1e-4)
    gray = tf.io.encode_png(rgb[..., :1]).numpy()
    np.testing.assert_allclose(PREPROCESSOR.decode(tf.constant(gray)).numpy(), np.repeat(rgb[..., :1], 3, -1) / 255,
                               atol=1e-6)
    # pixels() makes arrays what decode() makes of their PNGs: gray in three channels, alpha dropped.
    for array in (rgb, rgb[..., :1], np.dstack([rgb, rgb[..., :1]])):
        png = tf.io.encode_png(array).numpy()
        np.testing.assert_array_equal(PREPROCESSOR.pixels(array).numpy(), PREPROCESSOR.decode(tf.constant(png)).numpy())


def test_webp_and_gif_headers_of_every_kind():
    """WebP: lossy (VP8), lossless (VP8L) and extended (VP8X) headers; GIF: the
    larger of the screen and the first image, later frames not read."""
    frames = [Image.fromarray(np.full((HEIGHT, WIDTH, 3), shade, np.uint8)) for shade in (0, 120, 240)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    animated_webp = buffer.getvalue()
    assert animated_webp[12:16] == b"VP8X"
    assert int(header_pixels(tf.constant(animated_webp))) == HEIGHT * WIDTH
    assert int(header_pixels(tf.constant(hostile_images.webp(16_000, 9_000)))) == 16_000 * 9_000
    assert int(header_pixels(tf.constant(hostile_images.gif((3, 2), 5, (7, 11), first_size=(1, 1))))) == 6
    assert int(header_pixels(tf.constant(hostile_images.gif((3, 2), 5, (1, 1), first_size=(7, 11))))) == 7 * 11


def test_an_animated_gif_decodes_its_first_frame_only_and_over_limit_files_are_refused_before_decoding():
    shades = (10, 130, 250)
    frames = [Image.fromarray(np.full((HEIGHT, WIDTH), shade, np.uint8), mode="L") for shade in shades]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    animation = buffer.getvalue()
    assert tf.io.decode_gif(animation).shape[0] == 3
    first = PREPROCESSOR.decode(tf.constant(animation)).numpy()
    np.testing.assert_allclose(first, shades[0] / 255, atol=1 / 255)
    # The files, with fewer frames (the full ones: tests/export/test_serving_survival.py): a
    # decode that runs would take gigabytes; the header says no, with the reason, and the other
    # images of the batch are as if alone.
    files = [hostile_images.gif((1000, 1000), 2_000, (1000, 1000), first_size=(1, 1)),
             hostile_images.gif((1, 1), 2_000, (4000, 4000), first_size=(1, 1)),
             hostile_images.png(20_000, 20_000), hostile_images.webp(16_000, 16_000)]
    inputs, valid, reasons = PREPROCESSOR.prepare_bytes(tf.constant([*files, animation]), with_reasons=True)
    reasons = [r.decode() for r in reasons.numpy()]
    assert valid.numpy().tolist() == [True, True, False, False, True], reasons
    assert reasons[2] == reasons[3] == f"more than max_pixels={PREPROCESSOR.max_pixels} pixels in its header"
    np.testing.assert_allclose(inputs[-1], PREPROCESSOR.prepare(first), atol=1e-6)
    # More blocks before the first image than a GIF has: not decoded at all (giflib would read every frame).
    head = 13 + (3 * 2 ** (animation[10] % 8 + 1) if animation[10] >= 128 else 0)  # the colour table's end
    comment = b"\x21\xfe\x01x\x00"
    few, many = (animation[:head] + comment * count + animation[head:] for count in (3, 300))
    assert PREPROCESSOR.prepare_bytes(tf.constant([few, many]))[1].numpy().tolist() == [True, False]
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many pixels"):
        decode_image(tf.constant(files[2]), max_bytes=2**20, max_pixels=2**20)
