import itertools
import json
import random

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import run_without_zoo
from zoo.text import SentencePieceTokenizer

pytest.importorskip("sentencepiece")


def corpus():
    """400 English and German sentences with umlauts, ß and punctuation."""
    en = itertools.product(
        ["The dog", "My sister", "Our teacher", "The old man", "A small child", "Every farmer", "Her uncle"],
        ["sees", "likes", "buys", "finds", "paints", "carries", "wants"],
        ["the red apple", "three books", "a green house", "twenty-three cars", "the big tree",
         "seven yellow flowers", "a wooden chair", "the quiet river"],
        [".", "!", ", doesn't it?", ", I think.", " today.", " (again)."],
    )
    de = itertools.product(
        ["Der Hund", "Meine Schwester", "Unser Lehrer", "Der alte Mann", "Ein kleines Kind", "Jeder Bauer",
         "Ihr Onkel"],
        ["sieht", "mag", "kauft", "findet", "malt", "trägt", "möchte"],
        ["drei Äpfel", "dreiundzwanzig Bücher", "ein schönes Haus", "die große Straße", "den grünen Baum",
         "sieben gelbe Blumen", "einen hölzernen Stuhl", "den stillen Fluss"],
        [".", "!", ", oder?", ", glaube ich.", " heute.", " (schon wieder)."],
    )
    rng = random.Random(0)
    return [f"{s} {v} {o}{p}" for words in (en, de) for s, v, o, p in rng.sample(list(words), 200)]


@pytest.fixture(scope="module")
def tokenizer():
    return SentencePieceTokenizer.from_corpus(corpus(), vocabulary_size=150, model_type="unigram")


def decode(strings):
    return [s.decode("utf-8") for s in strings.numpy()]


def test_reserved_ids_are_read_from_the_model(tokenizer):
    # keras-hub trains with pad=0, unk=1, <s>=2, </s>=3, the project's ids.
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id) == (0, 1, 2, 3)
    assert tokenizer.vocabulary_size == 150


def test_round_trip_of_corpus(tokenizer):
    texts = corpus()
    ids = tokenizer.tokenize(texts)
    assert ids.dtype == tf.int32 and isinstance(ids, tf.RaggedTensor)
    assert tokenizer.unk_id not in ids.flat_values.numpy()
    reserved = {tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id}
    assert not reserved & set(ids.flat_values.numpy().tolist())
    assert decode(tokenizer.detokenize(ids)) == texts


def test_survives_the_eager_kernel_cache_being_cleared(tokenizer):
    texts = ["Der Hund mag drei Äpfel."]
    before = tokenizer.tokenize(texts).to_list()
    fresh = SentencePieceTokenizer(tokenizer.model_proto)
    tf.random.set_seed(1)  # clears eager kernel caches, which owned the tensorflow-text resource
    assert tokenizer.tokenize(texts).to_list() == fresh.tokenize(texts).to_list() == before
    assert decode(fresh.detokenize(fresh.tokenize(texts))) == texts


def test_bpe_and_lowercase_models():
    texts = corpus()
    bpe = SentencePieceTokenizer.from_corpus(texts, vocabulary_size=150, model_type="bpe")
    assert decode(bpe.detokenize(bpe.tokenize(texts[::7]))) == texts[::7]
    lower = SentencePieceTokenizer.from_corpus(texts, vocabulary_size=120, lowercase=True)
    assert decode(lower.detokenize(lower.tokenize(["Drei Äpfel"]))) == ["drei äpfel"]


def test_empty_invalid_utf8_and_unknown_characters(tokenizer):
    assert tokenizer.tokenize(["", "   ", "\t\n"]).to_list() == [[], [], []]
    ids = tokenizer.tokenize([b"\xff\xfe Der Hund", b"Der\xffHund", "Der Hund 中".encode()])
    text = decode(tokenizer.detokenize(ids))
    assert all("Der" in t and "Hund" in t for t in text)
    assert tokenizer.unk_id in ids[2].numpy()


def test_scalar_input_gives_one_dense_row(tokenizer):
    ids = tokenizer.tokenize("Der Hund mag drei Äpfel.")
    assert not isinstance(ids, tf.RaggedTensor) and ids.shape.rank == 1
    assert tokenizer.detokenize(ids).numpy().decode() == "Der Hund mag drei Äpfel."


def test_detokenize_drops_reserved_ids_and_stops_at_first_end(tokenizer):
    pad, start, end = tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id
    dog, sees = tokenizer.tokenize(["The dog", "sees"]).to_list()
    first = [start] + dog + sees + [end] + dog + [pad]
    dense = tf.constant([first, [start] + dog + [pad] * (len(first) - len(dog) - 1)])
    assert decode(tokenizer.detokenize(dense)) == ["The dog sees", "The dog"]
    ragged = tf.ragged.constant([dog + [end, end] + sees, dog + [start] + sees], dtype=tf.int64)
    assert decode(tokenizer.detokenize(ragged)) == ["The dog", "The dog sees"]
    # Out-of-range ids (which the op rejects) read as unk, shown as " ⁇ ".
    assert "⁇" in decode(tokenizer.detokenize([dog + [10_000, -1]]))[0]


def test_tokenize_in_tf_function_and_tf_data(tokenizer):
    texts = corpus()[::9]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(strings):
        ids = tokenizer.tokenize(strings)
        return ids.to_tensor(), tokenizer.detokenize(ids)

    dense, text = round_trip(tf.constant(texts))
    np.testing.assert_array_equal(dense.numpy(), tokenizer.tokenize(texts).to_tensor().numpy())
    assert decode(text) == texts
    single = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.tokenize)
    assert [x.numpy().tolist() for x in single] == tokenizer.tokenize(texts).to_list()


def test_save_load_and_from_file(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer.json").read_text())
    assert config["pad_id"] == 0 and config["end_id"] == 3
    texts = corpus()[::13] + ["Ein Kind mag 中 Äpfel"]
    for restored in (SentencePieceTokenizer.load(tmp_path),
                     SentencePieceTokenizer.from_file(tmp_path / "sentencepiece.model")):
        assert restored.model_proto == tokenizer.model_proto
        assert restored.tokenize(texts).to_list() == tokenizer.tokenize(texts).to_list()
        assert (restored.pad_id, restored.start_id, restored.end_id) == (0, 2, 3)


def test_reserved_ids_can_be_overridden_and_are_checked(tokenizer):
    custom = SentencePieceTokenizer(tokenizer.model_proto, start_id=0)
    assert custom.start_id == 0 and custom.pad_id == 0
    with pytest.raises(ValueError, match=r"end_id must be in \[0, 150\). Received: end_id=150"):
        SentencePieceTokenizer(tokenizer.model_proto, end_id=150)
    with pytest.raises(TypeError, match="must be bytes"):
        SentencePieceTokenizer("not bytes")


class _Exported(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(self, strings):
        return self.tokenizer.detokenize(self.tokenizer.tokenize(strings))


def test_saved_model_loads_with_tensorflow_text_alone(tokenizer, tmp_path):
    texts = corpus()[::40]
    tf.saved_model.save(_Exported(tokenizer), str(tmp_path / "model"))
    loaded = run_without_zoo(
        f"""
        text = tf.saved_model.load("model").round_trip(tf.constant({texts!r}))
        print(json.dumps([t.decode("utf-8") for t in text.numpy()]))
        """,
        cwd=tmp_path,
    )
    assert loaded == texts
