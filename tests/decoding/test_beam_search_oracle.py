"""Beam search against an exhaustive oracle and a plain-Python beam search.

Vocabulary 5, at most 4 tokens: 85 ended hypotheses (341 counting those cut
at max_length), few enough to enumerate. A beam as wide as the search space
(every candidate of a step kept) must return exactly the oracle's ranking;
narrower beams must return what `reference_beam_search` (tests/decoding/
beam_oracle.py, written from the documented rules, not from zoo's code)
returns, finished pool included.
"""

import keras
import numpy as np
import pytest
from keras import ops

from tests.decoding.beam_oracle import (
    TableModel,
    exhaustive,
    model_tables,
    num_prefixes,
    padded,
    prefix_row,
    random_tables,
    reference_beam_search,
)
from zoo.decoding import beam_search
from zoo.models import TransformerTranslator

V, L, PAD, START, END = 5, 4, 0, 1, 2
WIDE = V * (V - 1) ** (L - 1)  # every candidate of the last step: the beam never drops one
# End-token biases: sentences whose best hypotheses end early, late, or not at all.
END_BIAS = [-1.0, 0.0, 0.5, 1.0, -0.5, 0.2, -2.0, 2.0]

RULES = {
    "zoo default (gnmt, alpha 0.6)": dict(alpha=0.6),
    "zoo raw log P (alpha 0)": dict(alpha=0.0),
    "zoo strong penalty (alpha 2)": dict(alpha=2.0),
    "transformers (power 1.0, early_stopping=False)": dict(
        alpha=1.0, length_penalty_form="power", search_rules="transformers"
    ),
    "transformers (power 2.0, early_stopping=False)": dict(
        alpha=2.0, length_penalty_form="power", search_rules="transformers"
    ),
    'transformers (power 1.0, early_stopping="never")': dict(
        alpha=1.0, length_penalty_form="power", search_rules="transformers", early_stopping="never"
    ),
    "transformers (gnmt 0.6, early_stopping=True)": dict(
        alpha=0.6, search_rules="transformers", early_stopping=True
    ),
}


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _reference_args(rules):
    return dict(
        alpha=rules["alpha"], form=rules.get("length_penalty_form", "gnmt"),
        rules=rules.get("search_rules", "zoo"), early_stopping=rules.get("early_stopping", False),
    )


def _oracle(model, sentence, rules):
    args = _reference_args(rules)
    return exhaustive(
        model.next_log_probs(sentence), V, L, END, args["alpha"], args["form"],
        include_unended=args["rules"] == "transformers",  # they finish at max_length there
    )


def _search(model, width, rules, which=None):
    _, _, beams, scores = beam_search(
        model, model.source_ids(which), L, beam_width=width, return_all_beams=True, **rules
    )
    return _np(beams), _np(scores)


def _real(beams, scores):
    """Per sentence, `[(tokens, score)]` of the pool entries that hold a hypothesis."""
    return [
        [(list(b), float(s)) for b, s in zip(row_beams, row_scores) if s > -1e8]
        for row_beams, row_scores in zip(beams, scores)
    ]


def _assert_same(got, expected, what):
    assert [g[0] for g in got] == [padded(h.tokens, L, PAD) for h in expected], what
    np.testing.assert_allclose([g[1] for g in got], [h.score for h in expected], atol=2e-5, err_msg=what)


@pytest.fixture(scope="module")
def table_model():
    return TableModel(random_tables(len(END_BIAS), V, L, END, seed=10, end_bias=END_BIAS), PAD, START, END)


def test_tables_are_discriminating(table_model):
    """The oracle's best is unique (no near-ties), its length varies across
    sentences and with alpha, and narrow beams miss it sometimes: the
    comparisons below can fail."""
    lengths = set()
    for i in range(table_model.num_tables):
        for rules in RULES.values():
            ranked = _oracle(table_model, i, rules)
            assert ranked[0].score - ranked[1].score > 1e-3
            lengths.add(len(ranked[0].tokens))
    assert lengths == {1, 2, 3, 4}
    missed = sum(
        reference_beam_search(table_model.next_log_probs(i), V, L, END, 2, **_reference_args(rules))[0].tokens
        != _oracle(table_model, i, rules)[0].tokens
        for i in range(table_model.num_tables) for rules in RULES.values()
    )
    assert missed >= 3


@pytest.mark.parametrize("rules", RULES.values(), ids=RULES.keys())
def test_wide_beam_returns_the_exhaustive_ranking(table_model, rules):
    beams, scores = _search(table_model, WIDE, rules)
    best, best_score = beam_search(table_model, table_model.source_ids(), L, beam_width=WIDE, **rules)
    np.testing.assert_array_equal(_np(best), beams[:, 0])
    for i, got in enumerate(_real(beams, scores)):
        ranked = _oracle(table_model, i, rules)
        assert got[0][0] == padded(ranked[0].tokens, L, PAD), f"sentence {i}"
        assert float(_np(best_score)[i]) == pytest.approx(ranked[0].score, abs=2e-5)
        # The whole pool is the exact top-WIDE (all 85 ended ones under zoo's rules).
        _assert_same(got, ranked[: len(got)], f"sentence {i}")
        assert len(got) == min(WIDE, len(ranked))


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("rules", RULES.values(), ids=RULES.keys())
def test_narrow_beams_equal_the_reference_beam_search(table_model, rules, width):
    batched = _real(*_search(table_model, width, rules))
    for i in range(table_model.num_tables):
        expected = reference_beam_search(table_model.next_log_probs(i), V, L, END, width, **_reference_args(rules))
        _assert_same(batched[i], expected, f"sentence {i} in the batch, beam width {width}")
        if rules is RULES["zoo default (gnmt, alpha 0.6)"] and width > 1:
            # Alone too: under zoo's rules the batch searches on while any
            # sentence may improve, which would hide a sentence stopped too early.
            alone = _real(*_search(table_model, width, rules, which=[i]))[0]
            _assert_same(alone, expected, f"sentence {i} alone, beam width {width}")


@pytest.mark.parametrize("width", [6, 12])
def test_zoo_rules_with_more_beams_than_first_step_candidates(table_model, width):
    # The first step offers V candidates for W beams, so some beams start
    # dead; with 12 beams the 2W kept candidates of step 2 include theirs
    # too. A dead beam must never finish or be reported.
    rules = RULES["zoo default (gnmt, alpha 0.6)"]
    beams, scores = _search(table_model, width, rules)
    for i, got in enumerate(_real(beams, scores)):
        expected = reference_beam_search(table_model.next_log_probs(i), V, L, END, width, **_reference_args(rules))
        _assert_same(got, expected, f"sentence {i}, beam width {width}")
    # Pool slots that hold no hypothesis are padding, not a dead beam's ending.
    assert np.all(beams[scores <= -1e8] == PAD)


def test_zoo_rules_fall_back_to_alive_beams_when_nothing_ends():
    # A sentence whose end token is never among the kept candidates returns
    # its best alive beam, scored log P / penalty(max_length).
    tables = random_tables(2, V, L, END, seed=1, end_bias=[-30.0, 0.0])
    model = TableModel(tables, PAD, START, END)
    rules = dict(alpha=0.6)
    beams, scores = _search(model, 2, rules)
    expected = reference_beam_search(model.next_log_probs(0), V, L, END, 2, **_reference_args(rules))
    assert END not in expected[0].tokens and len(expected[0].tokens) == L
    _assert_same(_real(beams, scores)[0], expected, "sentence without an end")


@pytest.fixture(scope="module")
def real_model():
    """A tiny random translator with a 5-token target vocabulary, its tables read by full passes."""
    keras.utils.set_random_seed(5)
    model = TransformerTranslator(
        12, V, num_encoder_layers=1, num_decoder_layers=2, d_model=16, num_heads=2, d_ff=32, dropout=0.0,
        max_length=8, output_bias=True, pad_token_id=PAD, start_token_id=START, end_token_id=END,
    )
    bias = np.zeros(V, "float32")
    bias[END] = 0.5
    model.logits_bias.assign(bias)
    source = np.array([[4, 5, 6, 7, 0], [8, 9, 10, 0, 0], [11, 3, 4, 5, 6]], "int32")
    return model, source, TableModel(model_tables(model, source, L), PAD, START, END)


@pytest.mark.parametrize("rules", [RULES["zoo default (gnmt, alpha 0.6)"],
                                   RULES["transformers (power 1.0, early_stopping=False)"]], ids=["zoo", "transformers"])
@pytest.mark.parametrize("width", [2, WIDE])
def test_real_translator_matches_the_oracle_and_reference(real_model, rules, width):
    # The cached decoder inside beam search against tables from full passes.
    model, source, tables = real_model
    _, _, beams, scores = beam_search(model, source, L, beam_width=width, return_all_beams=True, **rules)
    for i, got in enumerate(_real(_np(beams), _np(scores))):
        if width == WIDE:
            expected = _oracle(tables, i, rules)[: len(got)]
        else:
            expected = reference_beam_search(tables.next_log_probs(i), V, L, END, width, **_reference_args(rules))
        assert [g[0] for g in got] == [padded(h.tokens, L, PAD) for h in expected], f"sentence {i}"
        np.testing.assert_allclose([g[1] for g in got], [h.score for h in expected], atol=1e-4)


def _table_with(rows):
    """One random table (ends unlikely) with the given rows `{prefix: probabilities}` set by hand."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(1, num_prefixes(V, L), V))
    logits[..., END] -= 2.0
    tables = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    for prefix, probabilities in rows.items():
        tables[0, prefix_row(prefix, V)] = np.log(np.array(probabilities) / np.sum(probabilities))
    return TableModel(tables.astype("float32"), PAD, START, END)


def test_zoo_early_stop_bound_uses_the_most_favourable_length():
    """The best translation is found only by searching past a full pool.

    With 2 beams and the default rules (gnmt, alpha 0.6): after step 2 the
    pool holds `(END,)` (log P -2.0, score -2.0) and `(3, END)` (log P
    -2.139, score -1.950), and the best alive beam `(3, 3)` has log P -2.40.
    Scored at the current length it cannot win (-2.40 / pen(2) = -2.19 <
    -2.0), but at max_length it could (-2.40 / pen(4) = -1.88), and it does:
    `(3, 3, 4, END)` has log P -2.451, score -1.921, the best of all.
    """
    model = _table_with({
        (): [0.0647, 0.2, np.exp(-2.0), 0.32, 0.28],
        (3,): [0.12, 0.115, 0.368, 0.283, 0.114],
        (4,): [0.22, 0.21, 0.2, 0.19, 0.18],
        (3, 3): [0.0075, 0.0075, 0.0075, 0.0075, 0.97],
        (3, 3, 4): [0.005, 0.005, 0.98, 0.005, 0.005],
    })
    rules = RULES["zoo default (gnmt, alpha 0.6)"]
    assert _oracle(model, 0, rules)[0].tokens == (3, 3, 4, END)
    reference = reference_beam_search(model.next_log_probs(0), V, L, END, 2, **_reference_args(rules))
    assert [h.tokens for h in reference] == [(3, 3, 4, END), (3, END)]
    _assert_same(_real(*_search(model, 2, rules))[0], reference, "trap sentence")


@pytest.mark.parametrize("early_stopping, expected", [(False, [(END,), (3, END)]), ("never", [(3, 3, 4, END), (END,)])])
def test_transformers_heuristic_scores_at_the_current_length_unless_never(early_stopping, expected):
    """transformers' rules, 2 beams, power penalty 1.0: after step 2 the pool
    holds `(END,)` (score -0.777) and `(3, END)` (log P -1.62, score -0.810)
    and the best alive beam `(3, 3)` has log P -1.665. At the current length
    (-1.665 / 2 = -0.833) it cannot beat -0.810, so `early_stopping=False`
    closes the sentence; `"never"` scores it at max_length (-0.416) and goes
    on to `(3, 3, 4, END)`: log P -1.875, score -0.469."""
    model = _table_with({
        (): [0.03, 0.03, 0.46, 0.44, 0.04],
        (3,): [0.04, 0.04, 0.45, 0.43, 0.04],
        (3, 3): [0.02, 0.02, 0.05, 0.01, 0.9],
        (3, 3, 4): [0.025, 0.025, 0.9, 0.025, 0.025],
    })
    rules = dict(alpha=1.0, length_penalty_form="power", search_rules="transformers", early_stopping=early_stopping)
    reference = reference_beam_search(model.next_log_probs(0), V, L, END, 2, **_reference_args(rules))
    assert [h.tokens for h in reference] == expected
    _assert_same(_real(*_search(model, 2, rules))[0], reference, "trap sentence")
