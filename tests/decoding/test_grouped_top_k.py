"""The grouped top-k of beam search: the same values and indices as one top_k, ties and suppressed tokens included."""

import importlib

import keras
import numpy as np
import pytest
from keras import ops

from zoo.decoding import beam_search
from zoo.decoding.beam_search import group_size, grouped_top_k
from zoo.models import TransformerTranslator

beam_search_module = importlib.import_module("zoo.decoding.beam_search")  # the package exports the function


def test_group_size_divides_the_vocabulary_or_declines():
    assert group_size(58101, 4, 8, 4) == 107  # OPUS-MT: 58101 = 3 * 107 * 181; its pad suppressed in 4 beams
    assert 8000 % group_size(8000, 4, 8) == 0
    assert group_size(30, 4, 8) is None  # small: searching the groups' members would not pay
    assert group_size(50021, 4, 8) is None  # prime: no group size


@pytest.mark.parametrize("seed", range(4))
def test_grouped_top_k_equals_top_k_with_ties_and_banned_ids(seed):
    rng = np.random.default_rng(seed)
    vocab, beams, k = 60, 3, 6
    for size in (2, 5, 6, 12):
        for banned in ((), (7,), (0, 59)):
            # Integer scores: many ties, which top_k breaks by the lower index.
            scores = rng.integers(-3, 3, size=(2, beams * vocab)).astype("float32")
            scores[:, rng.choice(beams * vocab, 8)] += rng.integers(1, 3, size=8)  # groups with higher maxima
            scores[1] -= 1e9  # a dead beam's scale, where rounding makes ties too
            reference = scores.copy()
            for token in banned:
                reference.reshape(2, beams, vocab)[:, :, token] = -np.inf
            want_values, want_index = ops.top_k(reference, k)
            values, index = grouped_top_k(scores, k, size, beams * len(banned), (vocab, banned) if banned else ())
            np.testing.assert_array_equal(np.asarray(values), np.asarray(want_values))
            np.testing.assert_array_equal(np.asarray(index), np.asarray(want_index))


def test_a_suppressed_token_heading_a_group_in_every_beam_leaves_the_best_found():
    beams, vocab, k = 4, 10000, 8
    select = beam_search_module.candidate_selector(1, beams, vocab, k, max_length=10, end_id=3, suppress_token_ids=(0,))
    size = group_size(vocab, beams, k, spare=beams)
    log_probs = np.random.default_rng(0).uniform(-10, -5, (beams, vocab)).astype("float32")
    log_probs[:, 0] = -0.1  # token 0, suppressed, is the best score of every beam
    flat = log_probs.reshape(-1)
    flat[(np.arange(k) + 5) * size + 3] = -1.0 - np.arange(k)  # the best allowed: each in a group of its own
    reference = log_probs.copy()
    reference[:, 0] = -np.inf
    want_values, want_index = ops.top_k(reference.reshape(1, -1), k)
    values, index = select(log_probs, np.zeros((1, beams), "float32"), 0)  # one spare group would miss 3 of 8
    np.testing.assert_array_equal(np.asarray(index), np.asarray(want_index))
    np.testing.assert_array_equal(np.asarray(values), np.asarray(want_values))


def test_beam_search_with_groups_equals_the_plain_top_k(monkeypatch):
    vocab, pad, start, end = 600, 0, 2, 3
    keras.utils.set_random_seed(3)
    model = TransformerTranslator(
        vocab, vocab, num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_ff=32, dropout=0.0,
        output_bias=True, pad_token_id=pad, start_token_id=start, end_token_id=end,
    )
    bias = np.zeros(vocab, "float32")
    bias[end] = 3.0  # hypotheses end at different steps
    model.logits_bias.assign(bias)
    source = np.random.default_rng(0).integers(4, vocab, size=(3, 5)).astype("int32")
    source[1, 3:] = pad
    options = [dict(search_rules="zoo"), dict(search_rules="transformers", suppress_token_ids=(pad, 9),
                                              force_end_at_max_length=True, length_penalty_form="power")]
    for opts in options:
        assert group_size(vocab, 3, 6, 3 * len(opts.get("suppress_token_ids", ()))) is not None
        grouped = beam_search(model, source, 6, beam_width=3, return_all_beams=True, **opts)
        with monkeypatch.context() as patch:
            patch.setattr(beam_search_module, "group_size", lambda *args: None)
            plain = beam_search(model, source, 6, beam_width=3, return_all_beams=True, **opts)
        for a, b in zip(grouped, plain):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if keras.backend.backend() == "tensorflow":  # in graphs, as exports run it (the forced step is a tf.cond)
        import tensorflow as tf

        def traced():
            search = tf.function(lambda s: beam_search(model, s, 6, beam_width=3, return_all_beams=True, **options[1]))
            return search(tf.constant(source))

        grouped = traced()
        with monkeypatch.context() as patch:
            patch.setattr(beam_search_module, "group_size", lambda *args: None)
            plain = traced()
        for a, b in zip(grouped, plain):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
