import keras
import numpy as np
import pytest
from keras import ops

from zoo.decoding import beam_search, generate, length_penalty, make_sampler
from zoo.models import TransformerTranslator

V, B, S, L = 30, 3, 6, 8
PAD, START, END = 0, 2, 3


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    m = TransformerTranslator(
        V, V, num_encoder_layers=1, num_decoder_layers=2, d_model=32, num_heads=4, d_ff=64,
        dropout=0.0, output_bias=True,
    )
    # Make the end token likely enough that hypotheses end at different steps.
    bias = np.zeros(V, "float32")
    bias[END] = 2.5
    m.logits_bias.assign(bias)
    return m


def _sources():
    rng = np.random.default_rng(0)
    src = rng.integers(4, V, size=(B, S)).astype("int32")
    src[1, 4:] = PAD
    src[2, 2:] = PAD
    return src


def full_recompute_greedy(model, source_ids, max_length):
    """Reference: re-run the whole decoder on the prefix at every step."""
    tokens = np.full((len(source_ids), 1), START, "int32")
    for _ in range(max_length):
        logits = _np(model({"source_ids": source_ids, "target_ids": tokens}))
        tokens = np.concatenate([tokens, logits[:, -1].argmax(-1)[:, None].astype("int32")], 1)
    out = tokens[:, 1:]
    for row in out:  # pad after the first end token
        ends = np.where(row == END)[0]
        if len(ends):
            row[ends[0] + 1 :] = PAD
    return out


def test_cached_greedy_equals_full_recompute(model):
    src = _sources()
    np.testing.assert_array_equal(_np(generate(model, src, L)), full_recompute_greedy(model, src, L))


def test_beam_width_one_equals_greedy(model):
    src = _sources()
    tokens, scores = beam_search(model, src, L, beam_width=1, alpha=0.0)
    np.testing.assert_array_equal(_np(tokens), _np(generate(model, src, L)))
    # Its score is the greedy sequence's log-probability.
    greedy = _np(tokens)
    target_in = np.concatenate([np.full((B, 1), START), greedy[:, :-1]], 1).astype("int32")
    log_probs = _np(ops.log_softmax(model({"source_ids": src, "target_ids": target_in}), axis=-1))
    real = np.cumsum(greedy == END, axis=1) - (greedy == END) == 0
    expected = (np.take_along_axis(log_probs, greedy[..., None], -1)[..., 0] * real).sum(1)
    np.testing.assert_allclose(_np(scores), expected, rtol=1e-4, atol=1e-4)


def test_beam_search_never_scores_below_greedy(model):
    src = _sources()
    _, greedy_scores = beam_search(model, src, L, beam_width=1, alpha=0.0)
    _, beam_scores = beam_search(model, src, L, beam_width=4, alpha=0.0)
    assert np.all(_np(beam_scores) >= _np(greedy_scores) - 1e-5)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_batch_equals_one_by_one(model, method):
    src = _sources()

    def run(x):
        if method == "greedy":
            return _np(generate(model, x, L))
        return _np(beam_search(model, x, L, beam_width=3)[0])

    batched = run(src)
    for i in range(B):
        length = int((src[i] != PAD).sum())
        np.testing.assert_array_equal(run(src[i : i + 1, :length]), batched[i : i + 1])


def test_all_beams_are_sorted_and_end_properly(model):
    src = _sources()
    best, best_score, beams, scores = beam_search(model, src, L, beam_width=4, return_all_beams=True)
    beams, scores = _np(beams), _np(scores)
    assert beams.shape == (B, 4, L) and scores.shape == (B, 4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    np.testing.assert_array_equal(_np(best), beams[:, 0])
    for row in beams.reshape(-1, L):
        ends = np.where(row == END)[0]
        if len(ends):
            assert np.all(row[ends[0] + 1 :] == PAD)


def test_length_penalty_formula():
    np.testing.assert_allclose(_np(length_penalty(7, 0.6)), ((5 + 7) / 6) ** 0.6, rtol=1e-6)
    assert float(_np(length_penalty(7, 0.0))) == 1.0


def test_sampling_is_reproducible_with_a_seed(model):
    src = _sources()
    runs = [_np(generate(model, src, L, sampler=make_sampler("top_k", k=5, seed=7, temperature=1.5)))
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    top_p = _np(generate(model, src, L, sampler=make_sampler("top_p", p=0.9, seed=3)))
    assert top_p.shape == (B, L)
    with pytest.raises(ValueError, match="Unknown sampler 'nucleus'"):
        make_sampler("nucleus")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="XLA via tf.function")
def test_beam_search_compiles_with_xla(model):
    import tensorflow as tf

    src = _sources()
    compiled = tf.function(lambda x: beam_search(model, x, L, beam_width=3), jit_compile=True)
    tokens, scores = compiled(tf.constant(src))
    eager_tokens, eager_scores = beam_search(model, src, L, beam_width=3)
    np.testing.assert_array_equal(tokens.numpy(), _np(eager_tokens))
    np.testing.assert_allclose(scores.numpy(), _np(eager_scores), atol=1e-4)


def test_length_penalty_forms_and_bad_options(model):
    np.testing.assert_allclose(_np(length_penalty(7, 0.6, "power")), 7**0.6, rtol=1e-6)
    np.testing.assert_allclose(_np(length_penalty(7, 1.0, "power")), 7.0, rtol=1e-6)
    with pytest.raises(ValueError, match="length_penalty_form must be one of .* Received: 'average'"):
        length_penalty(3, 1.0, "average")
    with pytest.raises(ValueError, match="search_rules must be one of .* Received: 'fairseq'"):
        beam_search(model, _sources(), L, search_rules="fairseq")
    with pytest.raises(ValueError, match="early_stopping must be .* Received: early_stopping=True, search_rules='zoo'"):
        beam_search(model, _sources(), L, early_stopping=True)


def test_suppressed_tokens_are_never_generated_and_end_can_be_forced(model):
    from zoo.decoding.cached_step import process_scores

    src = _sources()
    greedy = _np(generate(model, src, L))
    banned = int(np.bincount(greedy[greedy != PAD]).argmax())  # a token greedy does pick
    for tokens in (
        _np(generate(model, src, L, suppress_token_ids=(banned,))),
        _np(beam_search(model, src, L, beam_width=3, suppress_token_ids=(banned,))[0]),
        _np(beam_search(model, src, L, 3, 1.0, length_penalty_form="power", search_rules="transformers",
                        suppress_token_ids=(banned,))[0]),
    ):
        assert banned not in tokens
    # Forced end: the last allowed token is END for every row that had not ended.
    forced = _np(generate(model, src, 3, force_end_at_max_length=True))
    assert np.all(np.any(forced == END, axis=1))
    scores = process_scores(ops.zeros((2, 5)), 4, 5, 3, (1,), True)
    np.testing.assert_array_equal(_np(scores), [[-np.inf] * 3 + [0.0, -np.inf]] * 2)
    scores = process_scores(ops.zeros((1, 5)), 2, 5, 3, (1,), True)  # not the last step: only suppression
    np.testing.assert_array_equal(_np(scores), [[0.0, -np.inf, 0.0, 0.0, 0.0]])


def test_transformers_rules_finish_every_hypothesis_at_max_length(model):
    # Under transformers' rules a sentence that never ends still returns its
    # best beam, scored log P / L ** alpha at L, and end tokens cut rows as usual.
    src = _sources()
    _, _, beams, scores = beam_search(
        model, src, L, beam_width=3, alpha=1.0, length_penalty_form="power", search_rules="transformers",
        return_all_beams=True,
    )
    beams, scores = _np(beams), _np(scores)
    assert np.all(scores > -1e8) and np.all(np.diff(scores, axis=1) <= 1e-6)
    for row in beams.reshape(-1, L):
        ends = np.where(row == END)[0]
        if len(ends):
            assert np.all(row[ends[0] + 1 :] == PAD)
        else:
            assert np.all(row != PAD)  # ran to max_length
