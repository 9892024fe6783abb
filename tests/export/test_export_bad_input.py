"""What the exports do with bad input, checked against what they should equal.

Translator: a row of invalid UTF-8 translates exactly as its repaired text
(U+FFFD for each bad sequence), an over-long row exactly as its first
`max_length` tokens, in a batch or alone. (The image classifier's byte and
pixel limits: tests/preprocessing/test_image_decoding.py.)
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import EN
from zoo.decoding import SearchSettings
from zoo.models import TransformerTranslator
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
