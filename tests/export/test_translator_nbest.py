"""The export's `translate_nbest` signature: n-best lists from the server, as `zoo.Translator` gives them.

The exhaustive tests use tests/decoding/beam_oracle.py (an oracle written
apart from zoo.decoding): with a beam as wide as a tiny target vocabulary
allows, the n best are exactly the enumeration's top n.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.decoding.beam_oracle import exhaustive, model_tables, padded, prefix_row
from tests.export.conftest import EN
from tests.helpers import run_without_zoo
from zoo.decoding import SearchSettings
from zoo.decoding.beam_search import NEG_INF
from zoo.export import audit_saved_model, read_warmup_requests
from zoo.models import TransformerTranslator
from zoo.tasks import Translator
from zoo.text import WordPieceTokenizer
from zoo.text.word_piece_tokenizer import RESERVED_TOKENS

W = 3  # the export's beam
BAD = [b"", b"   \t ", ("word " * 500).encode(), b"\xff\xfe\xfa broken"]

FRESH = r"""
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["translate_nbest"](sentences=tf.constant(json.loads(sys.argv[2])), n=tf.constant(2))
print(json.dumps({"translations": [[t.decode() for t in row] for row in out["translations"].numpy()],
                  "scores": out["scores"].numpy().tolist(), "lengths": out["lengths"].numpy().tolist()}))
"""


@pytest.fixture(scope="module")
def exported(tiny_translator, tmp_path_factory):
    translator = Translator(*tiny_translator, SearchSettings(beam_width=W, max_length=10))
    path = translator.export(str(tmp_path_factory.mktemp("nbest")))
    return path, tf.saved_model.load(path)


def _nbest(loaded, sentences, n):
    out = loaded.signatures["translate_nbest"](sentences=tf.constant(sentences, tf.string), n=tf.constant(n, tf.int32))
    return {key: value.numpy() for key, value in out.items()}


def test_first_column_is_the_default_signature(exported):
    _, loaded = exported
    sentences = EN + ["Nothing like the training data at all!"] + BAD
    out = _nbest(loaded, sentences, W)
    default = loaded.signatures["serving_default"](sentences=tf.constant(sentences))
    assert {key: (v.shape, v.dtype) for key, v in out.items()} == {
        "translations": ((len(sentences), W), object), "scores": ((len(sentences), W), np.float32),
        "lengths": ((len(sentences), W), np.int32), "truncated": ((len(sentences),), bool),
    }
    assert out["translations"][:, 0].tolist() == default["translations"].numpy().tolist()
    assert out["truncated"].tolist() == default["truncated"].numpy().tolist() and out["truncated"][-2]  # 500 words
    np.testing.assert_allclose(out["scores"][:, 0], default["scores"].numpy(), atol=1e-5)
    for scores, lengths in zip(out["scores"][: len(EN) + 1], out["lengths"][: len(EN) + 1]):
        reached = scores > NEG_INF / 2
        assert reached[0] and list(scores[reached]) == sorted(scores[reached], reverse=True)
        assert ((lengths >= 1) & (lengths <= 10))[reached].all() and (lengths[~reached] == 0).all()
    assert len(set(out["translations"][0])) > 1  # the hypotheses differ


def test_n_is_clamped_to_the_beam(exported):
    _, loaded = exported
    full = _nbest(loaded, EN, W)
    for n, columns in ((0, 1), (-7, 1), (1, 1), (2, 2), (W, W), (99, W), (2**31 - 1, W)):
        out = _nbest(loaded, EN, n)
        assert out["translations"].shape == (len(EN), columns), n
        assert out["translations"].tolist() == full["translations"][:, :columns].tolist()
        np.testing.assert_allclose(out["scores"], full["scores"][:, :columns], atol=1e-6)


def test_bad_rows_never_fail_the_batch(exported):
    _, loaded = exported
    out = _nbest(loaded, BAD + [EN[0].encode()], 2)
    for row in (0, 1):  # empty and whitespace: one empty translation, then unreached slots
        assert out["translations"][row].tolist() == [b"", b""]
        assert out["scores"][row].tolist() == [0.0, NEG_INF] and out["lengths"][row].tolist() == [0, 0]
    assert out["translations"][2][0] and out["translations"][3][0]  # truncated and repaired: translated
    alone = _nbest(loaded, [EN[0]], 2)
    assert out["translations"][-1].tolist() == alone["translations"][0].tolist()  # bad neighbours change nothing
    np.testing.assert_allclose(out["scores"][-1], alone["scores"][0], atol=1e-5)
    empty = _nbest(loaded, [], 2)
    assert {key: value.shape for key, value in empty.items()} == {
        **{k: (0, 2) for k in ("translations", "scores", "lengths")}, "truncated": (0,)
    }


def test_signature_warmup_and_op_audit(exported):
    path, loaded = exported
    signature = loaded.signatures["translate_nbest"]
    inputs = signature.structured_input_signature[1]
    assert (inputs["sentences"].shape.as_list(), inputs["sentences"].dtype) == ([None], tf.string)
    assert (inputs["n"].shape.as_list(), inputs["n"].dtype) == ([], tf.int32)
    assert set(loaded.signatures) == {"serving_default", "translate_ids", "translate_nbest"}
    requests = read_warmup_requests(path)
    assert [name for name, _ in requests] == ["serving_default", "translate_nbest"]
    for name, request in requests:  # each answers on the loaded model
        out = loaded.signatures[name](**{key: tf.constant(value) for key, value in request.items()})
        assert out["translations"].shape[0] == len(request["sentences"])
    assert requests[1][1]["n"].shape == () and requests[1][1]["n"].dtype == np.int32
    ops = audit_saved_model(path)  # raises on an op TF Serving lacks
    assert not [op for op in ops if op.startswith("Xla")]


def test_fresh_process_without_zoo_answers_as_translator_n_best(exported, tiny_translator):
    path, _ = exported
    sentences = EN[:2] + [""]
    fresh = run_without_zoo(FRESH, path, json.dumps(sentences), cwd=os.path.dirname(path))
    translator = Translator(*tiny_translator, SearchSettings(beam_width=W, max_length=10))
    lists = translator.translate(sentences, n_best=2, return_scores=True)
    for row, hypotheses in zip(range(len(sentences)), lists):
        reached = [s > NEG_INF / 2 for s in fresh["scores"][row]]
        assert [t for t, ok in zip(fresh["translations"][row], reached) if ok] == [t for t, _ in hypotheses]
        np.testing.assert_allclose([s for s, ok in zip(fresh["scores"][row], reached) if ok],
                                   [s for _, s in hypotheses], atol=1e-4)
    assert lists[-1] == [("", 0.0)] and fresh["lengths"][-1] == [0, 0]


# -- against an exhaustive enumeration ---------------------------------------
V, L = 6, 3  # [PAD], [UNK], [START], [END], "ja", "nein"; at most 3 tokens
END = 3
WIDE = V * (V - 1) ** (L - 1)  # every candidate of the last step: the beam never drops one


@pytest.fixture(scope="module")
def tiny_vocabulary(tiny_translator):
    _, source, _ = tiny_translator
    target = WordPieceTokenizer(list(RESERVED_TOKENS) + ["ja", "nein"])
    assert target.vocabulary_size == V
    import keras

    keras.utils.set_random_seed(11)
    model = TransformerTranslator(source.vocabulary_size, V, num_encoder_layers=1, num_decoder_layers=1, d_model=16,
                                  num_heads=2, d_ff=32, max_length=8, dropout=0.0)
    sentences = EN[:3]
    ids, _ = Translator(model, source, target).preprocessor.source_ids(tf.constant(sentences))
    dense = tf.pad(ids.to_tensor(default_value=0), [[0, 0], [0, 1]]).numpy()  # as the export feeds the search
    return model, source, target, sentences, model_tables(model, dense, L)


def _oracle(tables, row, alpha, form="gnmt", include_unended=False):
    return exhaustive(lambda prefix: tables[row, prefix_row(prefix, V)], V, L, END, alpha, form, include_unended)


@pytest.mark.parametrize("n", [5, WIDE])
def test_n_best_is_the_exhaustive_top_n(tiny_vocabulary, n):
    model, source, target, sentences, tables = tiny_vocabulary
    graph = Translator(model, source, target, SearchSettings(beam_width=WIDE, max_length=L, alpha=0.6)).graph()
    out = graph.translate_nbest(tf.constant(sentences), tf.constant(n))
    for row in range(len(sentences)):
        hypotheses = _oracle(tables, row, 0.6)
        assert len(hypotheses) == 1 + (V - 1) + (V - 1) ** 2  # ended after 1, 2 or 3 tokens
        scores = [h.score for h in hypotheses]
        assert min(np.diff(scores[: n + 1]) * -1) > 2e-5  # gaps far above float32 error: the order is defined
        top = hypotheses[:n]
        texts = target.detokenize(tf.constant([padded(h.tokens, L, 0) for h in top])).numpy().tolist()
        reached = min(n, len(hypotheses))
        assert out["translations"][row, :reached].numpy().tolist() == texts
        np.testing.assert_allclose(out["scores"][row, :reached], [h.score for h in top], atol=2e-6)
        assert out["lengths"][row, :reached].numpy().tolist() == [len(h.tokens) for h in top]
        # Past the 31 hypotheses there are none: unreached slots.
        assert (out["scores"][row, reached:].numpy() == NEG_INF).all()
        assert (out["lengths"][row, reached:].numpy() == 0).all()
        assert set(out["translations"][row, reached:].numpy().tolist()) <= {b""}


def test_with_no_hypothesis_ended_the_alive_ones_are_the_top_unended(tiny_vocabulary):
    """The end token banned: nothing finishes, so the n-best are the beams alive at max_length,
    scored there (power penalty, alpha 1: log P / 3). 5 ** 3 = 125 exist; a beam of 130 leaves
    5 slots that no hypothesis reached, whose NEG_INF score must not be divided by the penalty."""
    model, source, target, sentences, tables = tiny_vocabulary
    options = dict(suppress_token_ids=(END,), length_penalty_form="power")
    translator = Translator(model, source, target, SearchSettings(beam_width=130, max_length=L, alpha=1.0, **options))
    out = translator.graph().translate_nbest(tf.constant(sentences[:2]), tf.constant(130))
    for row in range(2):
        unended = [h for h in _oracle(tables, row, 1.0, "power", include_unended=True) if END not in h.tokens]
        assert len(unended) == 125
        np.testing.assert_allclose(out["scores"][row, :125], [h.score for h in unended], atol=1e-5)
        assert (out["lengths"][row, :125].numpy() == L).all()
        assert (out["scores"][row, 125:].numpy() == NEG_INF).all() and (out["lengths"][row, 125:].numpy() == 0).all()
    assert [len(hypotheses) for hypotheses in translator.translate(sentences[:2], n_best=130)] == [125, 125]


def test_warmup_requests_name_a_malformed_entry(tmp_path):
    from zoo.export import write_warmup_requests

    expected = r"\(signature_name, \{input: array\}\). Received: tuple \('translate_nbest',\)"
    with pytest.raises(TypeError, match=expected):
        write_warmup_requests(str(tmp_path), [{"sentences": [b"a"]}, ("translate_nbest",)], model_name="m")
    assert not os.path.exists(tmp_path / "assets.extra")  # checked before anything is written
