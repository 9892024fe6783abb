"""What the exports do with bad input, checked against what they should equal.

Translator: a row of invalid UTF-8 translates exactly as its repaired text
(U+FFFD for each bad sequence), an over-long row exactly as its first
`max_length` tokens, in a batch or alone. Image classifier: the byte and
pixel limits hold at their boundaries for every format, and a rejected image
leaves the others of its batch as they would be alone.
"""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.export.conftest import EN
from zoo.data.image_preprocessing import ImagePreprocessing
from zoo.export.image_classifier import ImageClassifierModule
from zoo.decoding import SearchSettings
from zoo.models import TransformerTranslator, VisionTransformer
from zoo.tasks import Translator


@pytest.fixture(scope="module")
def translator(tiny_translator):
    return Translator(*tiny_translator, SearchSettings(beam_width=2, max_length=10)).graph()


def _translate(module, rows):
    out = module.serving_default(tf.constant(rows))
    return [t.decode() for t in out["translations"].numpy()], out["scores"].numpy()


def test_invalid_utf8_translates_as_its_repaired_text(translator):
    bad = [b"I buy \xc3 three apples.", b"\xff\xfe She speaks French.", b"We travel \xed\xa0\x80 to Spain."]
    repaired = [row.decode("utf-8", errors="replace").encode() for row in bad]
    assert all("\ufffd" in row.decode() for row in repaired)
    got, got_scores = _translate(translator, bad + [EN[3].encode()])
    expected, expected_scores = _translate(translator, repaired + [EN[3].encode()])
    assert got == expected and all(got)
    np.testing.assert_allclose(got_scores, expected_scores, atol=1e-5)
    # The scores tell inputs apart (the tiny random model's words may not):
    # dropping the bad bytes instead of marking them gives other scores.
    _, dropped_scores = _translate(translator, [row.decode("utf-8", errors="ignore").encode() for row in bad])
    assert np.all(np.abs(dropped_scores - got_scores[:3]) > 1e-4)


def test_over_long_rows_translate_as_their_first_max_length_tokens(translator):
    source = translator.preprocessor.source_tokenizer
    limit = translator.model.max_length
    long_text = " ".join(EN * 4)
    ids = source.tokenize(tf.constant([long_text]))[0].numpy()
    assert len(ids) > limit + 5
    truncated = source.detokenize(tf.constant([ids[:limit]])).numpy()[0].decode()
    # The truncated text is those tokens (the comparison below is about truncation only).
    np.testing.assert_array_equal(source.tokenize(tf.constant([truncated]))[0].numpy(), ids[:limit])
    one_more = source.detokenize(tf.constant([ids[: limit + 1]])).numpy()[0].decode()
    got, got_scores = _translate(translator, [long_text, one_more, EN[0]])
    expected, expected_scores = _translate(translator, [truncated, truncated, EN[0]])
    assert got == expected
    np.testing.assert_allclose(got_scores, expected_scores, atol=1e-5)
    # A text of exactly max_length tokens is not cut: it differs from one token less.
    shorter = source.detokenize(tf.constant([ids[: limit - 1]])).numpy()[0].decode()
    assert _translate(translator, [shorter])[1][0] != pytest.approx(expected_scores[0], abs=1e-6)


def test_over_long_rows_with_learned_positions(tiny_translator):
    """Sources are padded to the longest row and never past max_length, where a learned
    position table ends (one pad column more failed: `indices[16] = 16 is not in [0, 16)`)."""
    _, source, target = tiny_translator
    model = TransformerTranslator(source.vocabulary_size, target.vocabulary_size, num_encoder_layers=1,
                                  num_decoder_layers=1, d_model=32, num_heads=4, d_ff=64, max_length=16,
                                  dropout=0.0, position="learned")
    module = Translator(model, source, target, SearchSettings(beam_width=2, max_length=10)).graph()
    long_text = " ".join(EN * 4)
    ids, empty, truncated = module.prepare(tf.constant([long_text, "", EN[0]]))
    assert ids.shape[1] == model.max_length
    assert empty.numpy().tolist() == [False, True, False] and truncated.numpy().tolist() == [True, False, False]
    first = source.detokenize(ids[:1]).numpy()[0].decode()
    got, got_scores = _translate(module, [long_text, "", EN[0]])
    expected, expected_scores = _translate(module, [first, "", EN[0]])
    assert got == expected and got[1] == ""
    np.testing.assert_allclose(got_scores, expected_scores, atol=1e-5)
    assert module.prepare(tf.constant(["", " "]))[0].shape == (2, 1)  # a batch of empty rows has one column


CLASSES = ["cat", "dog", "bird"]
HEIGHT, WIDTH = 20, 30  # 600 pixels
FORMATS = ("PNG", "JPEG", "GIF", "BMP")


@pytest.fixture(scope="module")
def classifier():
    model = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=1, num_classes=3)
    preprocessing = ImagePreprocessing(32, (0.5,) * 3, (0.5,) * 3, tuple(CLASSES))
    return lambda **limits: ImageClassifierModule(model, preprocessing, top_k=2, **limits)


@pytest.fixture(scope="module")
def encoded():
    rgb = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)

    def encode(fmt, array=rgb):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt)
        return buffer.getvalue()

    images = {fmt: encode(fmt) for fmt in FORMATS}
    # Top-down BMP rows: the header stores a negative height.
    bmp = bytearray(images["BMP"])
    offset = int.from_bytes(bmp[10:14], "little")
    bmp[22:26] = (-HEIGHT).to_bytes(4, "little", signed=True)
    bmp[offset:] = np.frombuffer(bytes(bmp[offset:]), np.uint8).reshape(HEIGHT, -1)[::-1].tobytes()
    images["BMP top-down"] = bytes(bmp)
    images["small PNG"] = encode("PNG", np.zeros((4, 5, 3), np.uint8))  # 20 pixels, always within the limits
    return images


def _classify(module, images):
    return {k: v.numpy() for k, v in module.serving_default(tf.constant(images)).items()}


def test_pixel_limit_at_its_boundary_for_every_format(classifier, encoded):
    names = ["small PNG", *FORMATS, "BMP top-down"]
    batch = [encoded[name] for name in names]
    at_limit = _classify(classifier(max_pixels=HEIGHT * WIDTH), batch)
    over = _classify(classifier(max_pixels=HEIGHT * WIDTH - 1), batch)
    assert dict(zip(names, at_limit["valid"].tolist())) == dict.fromkeys(names, True)
    assert dict(zip(names, over["valid"].tolist())) == {name: name == "small PNG" for name in names}
    assert np.all(over["probabilities"][1:] == 0) and np.all(over["top_k_labels"][1:] == b"")
    np.testing.assert_allclose(over["probabilities"][0], at_limit["probabilities"][0], atol=1e-6)
    # Bottom-up and top-down BMPs (negative header height) hold the same pixels.
    np.testing.assert_allclose(at_limit["probabilities"][4], at_limit["probabilities"][5], atol=1e-6)


def test_byte_limit_at_its_boundary(classifier, encoded):
    # Bytes after the end of an image are ignored by the decoders: pad each
    # format to exactly the limit, and to one byte more.
    limit = max(len(encoded[fmt]) for fmt in FORMATS)
    names = [f"{fmt} {size}" for fmt in FORMATS for size in ("at limit", "over")]
    batch = [encoded[fmt] + b"\0" * (limit - len(encoded[fmt]) + (size == "over")) for fmt in FORMATS
             for size in ("at limit", "over")]
    out = _classify(classifier(max_bytes=limit), batch)
    assert dict(zip(names, out["valid"].tolist())) == {name: name.endswith("at limit") for name in names}
    alone = _classify(classifier(), [encoded[fmt] for fmt in FORMATS])
    np.testing.assert_allclose(out["probabilities"][::2], alone["probabilities"], atol=1e-6)


def test_gif_and_bmp_headers_are_read_before_decoding(encoded):
    """The pixel count comes from the header, so a small file declaring a huge
    image is refused before any pixel is allocated (what the PNG and JPEG
    paths do with their headers)."""
    from zoo.export.image_classifier import _gif_or_bmp_pixels

    for fmt in ("GIF", "BMP", "BMP top-down"):
        assert int(_gif_or_bmp_pixels(tf.constant(encoded[fmt]))) == HEIGHT * WIDTH
    huge_gif = encoded["GIF"][:6] + (65535).to_bytes(2, "little") * 2 + encoded["GIF"][10:]
    huge_bmp = encoded["BMP"][:18] + (100_000).to_bytes(4, "little") * 2 + encoded["BMP"][26:]
    assert int(_gif_or_bmp_pixels(tf.constant(huge_gif))) == 65535**2
    assert int(_gif_or_bmp_pixels(tf.constant(huge_bmp))) == 100_000**2
    assert int(_gif_or_bmp_pixels(tf.constant(encoded["PNG"]))) == 0  # other formats: their own checks
