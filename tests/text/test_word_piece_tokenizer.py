import itertools
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from tests.helpers import run_without_zoo
from zoo.text import RESERVED_TOKENS, WordPieceTokenizer
from zoo.text.word_piece_tokenizer import _SPACING_RULES

PAD, UNK, START, END = range(4)


def corpus():
    """About 400 English and German sentences with umlauts, ß and punctuation."""
    en = itertools.product(
        ["The dog", "My sister", "Our teacher", "The old man", "A small child"],
        ["sees", "likes", "buys", "finds"],
        ["the red apple", "three books", "a green house", "twenty-three cars", "the big tree"],
        [".", "!", ", doesn't it?", ", I think."],
    )
    de = itertools.product(
        ["Der Hund", "Meine Schwester", "Unser Lehrer", "Der alte Mann", "Ein kleines Kind"],
        ["sieht", "mag", "kauft", "findet"],
        ["drei Äpfel", "dreiundzwanzig Bücher", "ein schönes Haus", "die große Straße", "den grünen Baum"],
        [".", "!", ", oder?", ", glaube ich."],
    )
    return [f"{s} {v} {o}{p}" for s, v, o, p in itertools.chain(en, de)]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.from_corpus(corpus(), vocabulary_size=400)


@pytest.fixture(scope="module")
def cased_tokenizer():
    return WordPieceTokenizer.from_corpus(corpus(), vocabulary_size=400, lowercase=False)


def decode(strings):
    return [s.decode("utf-8") for s in strings.numpy()]


def test_vocabulary_starts_with_reserved_tokens(tokenizer):
    assert tokenizer.vocabulary[:4] == list(RESERVED_TOKENS)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id) == (0, 1, 2, 3)
    assert 4 < tokenizer.vocabulary_size <= 400
    assert tokenizer.vocabulary_size == len(set(tokenizer.vocabulary))


def test_round_trip_of_corpus(tokenizer):
    texts = corpus()
    ids = tokenizer.tokenize(texts)
    assert ids.dtype == tf.int32 and isinstance(ids, tf.RaggedTensor)
    assert UNK not in ids.flat_values.numpy()
    # case_fold_utf8 is full Unicode case folding, as str.casefold(): "ß" -> "ss".
    assert decode(tokenizer.detokenize(ids)) == [t.casefold() for t in texts]


def test_case_and_umlauts_survive_without_lowercase(tokenizer, cased_tokenizer):
    texts = ["Der Hund kauft drei Äpfel.", "My sister sees twenty-three cars, doesn't it?", "die große Straße"]
    assert decode(cased_tokenizer.detokenize(cased_tokenizer.tokenize(texts))) == texts
    assert decode(tokenizer.detokenize(tokenizer.tokenize(["Äpfel dreiundzwanzig"]))) == ["äpfel dreiundzwanzig"]
    assert UNK not in cased_tokenizer.tokenize(["Äpfel dreiundzwanzig"]).flat_values.numpy()


def test_unknown_characters_map_to_unk(tokenizer):
    ids = tokenizer.tokenize(["the dog 中 😀 sees", "€€€"]).to_list()
    the_dog, sees = tokenizer.tokenize(["the dog", "sees"]).to_list()
    assert ids[0] == the_dog + [UNK, UNK] + sees
    assert ids[1] == [UNK]
    assert decode(tokenizer.detokenize(ids[:1])) == ["the dog [UNK] [UNK] sees"]


def test_empty_and_whitespace_give_empty_rows(tokenizer):
    assert tokenizer.tokenize(["", "   ", "\t\n ", "\u200b"]).to_list() == [[], [], [], []]
    assert tokenizer.tokenize(tf.constant([], tf.string)).shape[0] == 0
    assert decode(tokenizer.detokenize(tf.ragged.constant([[], [PAD, PAD]], tf.int32))) == ["", ""]


def test_invalid_utf8_and_control_characters(tokenizer):
    ids = tokenizer.tokenize([b"\xff\xfe the dog", b"the\xffdog", b"the\x00dog", "the\u00addog".encode()]).to_list()
    the_dog = tokenizer.tokenize(["the dog"]).to_list()[0]
    assert ids[0] == [UNK] + the_dog  # the bad bytes cost one [UNK], not the word after them
    assert ids[1] == [the_dog[0], UNK, the_dog[1]]
    assert ids[2] == the_dog  # control character -> space
    assert ids[3] == tokenizer.tokenize(["thedog"]).to_list()[0]  # soft hyphen removed
    for text in decode(tokenizer.detokenize(ids)):
        assert text.encode("utf-8")


def test_scalar_input_gives_one_dense_row(tokenizer):
    ids = tokenizer.tokenize("The dog sees three books.")
    assert not isinstance(ids, tf.RaggedTensor) and ids.shape.rank == 1
    assert tokenizer.detokenize(ids).numpy().decode() == "the dog sees three books."


def test_detokenize_drops_reserved_ids_and_stops_at_first_end(tokenizer):
    dog, sees = tokenizer.tokenize(["dog", "sees"]).to_list()
    dense = tf.constant([[START] + dog + sees + [END] + dog + [PAD], [START] + dog + [PAD, PAD, PAD, PAD]])
    assert decode(tokenizer.detokenize(dense)) == ["dog sees", "dog"]
    ragged = tf.ragged.constant([[START] + dog + [END, END] + sees, dog + [START] + sees], dtype=tf.int64)
    assert decode(tokenizer.detokenize(ragged)) == ["dog", "dog sees"]
    # Out-of-range ids (which crash FastWordpieceTokenizer) read as [UNK].
    assert decode(tokenizer.detokenize([dog + [10_000, -1]])) == ["dog [UNK] [UNK]"]


@pytest.mark.parametrize(
    "spaced, clean",
    [
        ("hello , world .", "hello, world."),
        ("really ? yes ! no ; well : fine", "really? yes! no; well: fine"),
        ("( hello ) [ a ] { b }", "(hello) [a] {b}"),
        ('he said " hello , world . "', 'he said "hello, world."'),
        ("er sagte „ hallo “ .", "er sagte „hallo“."),
        ("“ quoted ” and « guillemets »", "“quoted” and «guillemets»"),
        ("don ' t , it ’ s , geht ' s", "don't, it’s, geht's"),
        ("twenty - three , a - b - c", "twenty-three, a-b-c"),
        ("3 . 50 euros at 10 : 30 , 1 , 000 , 2 , 3", "3.50 euros at 10:30, 1,000, 2, 3"),
        ("wait . . .", "wait..."),
    ],
)
def test_spacing_rules(spaced, clean):
    text = tf.constant([spaced])
    for pattern, rewrite in _SPACING_RULES:
        text = tf.strings.regex_replace(text, pattern, rewrite)
    assert decode(text) == [clean]


def test_fast_wordpiece_pretokenization_and_detokenization():
    """Documents what the wrapped op does, which the wrapper builds on."""
    vocab = list(RESERVED_TOKENS) + ["hello", ",", "world", ".", "##s", "a", "$", "€", "b"]
    op = tf_text.FastWordpieceTokenizer(vocab, token_out_type=tf.int32, support_detokenization=True)
    ids = op.tokenize(["hello,worlds.", "a$b", "a€b", "a中b", "a\x01b", "  "]).to_list()
    assert ids == [[4, 5, 6, 8, 7], [9, 10, 12], [UNK], [9, UNK, 12], [UNK], []]
    assert op.detokenize([[4, 5, 6, 8, 7]]).numpy().tolist() == [b"hello , worlds ."]


def test_tokenize_in_tf_function_and_tf_data(tokenizer):
    texts = corpus()[:8]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        ids = tokenizer.tokenize(strings)
        return ids.to_tensor(), tokenizer.detokenize(ids)

    dense, text = round_trip(tf.constant(texts))
    np.testing.assert_array_equal(dense.numpy(), tokenizer.tokenize(texts).to_tensor().numpy())
    assert decode(text) == [t.casefold() for t in texts]

    batched = tf.data.Dataset.from_tensor_slices(texts).batch(4).map(tokenizer.tokenize)
    assert [row for b in batched for row in b.to_list()] == tokenizer.tokenize(texts).to_list()
    single = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.tokenize)
    assert [x.numpy().tolist() for x in single] == tokenizer.tokenize(texts).to_list()


def test_save_and_load(tokenizer, cased_tokenizer, tmp_path):
    for tok, directory in ((tokenizer, tmp_path / "uncased"), (cased_tokenizer, tmp_path / "cased")):
        tok.save(directory)
        assert json.loads((directory / "tokenizer.json").read_text())["lowercase"] == tok.lowercase
        restored = WordPieceTokenizer.load(directory)
        assert restored.vocabulary == tok.vocabulary and restored.lowercase == tok.lowercase
        texts = corpus()[::37] + ["Ein kleines Kind mag Äpfel 中"]
        assert restored.tokenize(texts).to_list() == tok.tokenize(texts).to_list()


def test_invalid_vocabularies_are_rejected():
    with pytest.raises(ValueError, match=r"must start with the reserved tokens.*Received.*'hello'"):
        WordPieceTokenizer(["hello", "[PAD]", "[UNK]", "[START]", "[END]"])
    with pytest.raises(ValueError, match=r"duplicate.*'a'"):
        WordPieceTokenizer(list(RESERVED_TOKENS) + ["a", "b", "a"])
    with pytest.raises(ValueError, match="whitespace"):
        WordPieceTokenizer(list(RESERVED_TOKENS) + ["a b"])
    with pytest.raises(ValueError, match="vocabulary_size"):
        WordPieceTokenizer.from_corpus(["a b"], vocabulary_size=4)


class _Exported(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(self, strings):
        ids = self.tokenizer.tokenize(strings)
        return {"ids": ids.to_tensor(), "text": self.tokenizer.detokenize(ids)}


def test_saved_model_loads_with_tensorflow_text_alone(tokenizer, tmp_path):
    texts = [t.encode() for t in corpus()[::50] + ["", "Der Hund 中 mag Äpfel."]] + [b"\xff\xfe the dog"]
    tf.saved_model.save(_Exported(tokenizer), str(tmp_path / "model"))
    loaded = run_without_zoo(
        f"""
        outputs = tf.saved_model.load("model").round_trip(tf.constant({texts!r}))
        print(json.dumps({{"ids": outputs["ids"].numpy().tolist(),
                          "text": [t.decode("utf-8") for t in outputs["text"].numpy()]}}))
        """,
        cwd=tmp_path,
    )
    ids = tokenizer.tokenize(texts)
    assert loaded["ids"] == ids.to_tensor().numpy().tolist()
    assert loaded["text"] == decode(tokenizer.detokenize(ids))
