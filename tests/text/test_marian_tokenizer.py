"""The in-graph Marian tokenizer against transformers' `MarianTokenizer`."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.text import MarianTokenizer

pytest.importorskip("sentencepiece")
pytest.importorskip("transformers")

from tests.convert.marian_checkpoint import hf_tokenizer, import_transformers, write_tokenizer_files

import_transformers()

TEXTS = [
    "the cat sees a dog.",
    "",
    "   ",
    "  big red  house\tand tree  ",
    "friend€ xyz ÄÖ",  # pieces outside the vocabulary -> <unk>
    ">>de<< the cat",  # a language code in the vocabulary
    ">>zz<< the dog",  # one that is not
    "Hello World!",
    "under the old table?",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("marian_tokenizer"))
    vocabulary = write_tokenizer_files(directory, extra_tokens=(">>de<<",))
    return directory, vocabulary, hf_tokenizer(directory)


def test_ids_equal_transformers(files):
    directory, vocabulary, hf = files
    source, _ = MarianTokenizer.from_marian_dir(directory)
    ours = source.tokenize(tf.constant(TEXTS)).to_list()
    assert ours == [hf(text)["input_ids"] for text in TEXTS]
    assert ours[1] == [source.end_id] == [0] and ours[5][0] == vocabulary[">>de<<"]
    assert source.unk_id in ours[4] and source.unk_id == ours[6][0]
    assert source.tokenize("the cat").numpy().tolist() == hf("the cat")["input_ids"]  # a scalar: dense ids
    assert (source.pad_id, source.start_id, source.vocabulary_size) == (len(vocabulary) - 1,) * 2 + (len(vocabulary),)


def test_detokenize_equals_transformers_decode(files):
    directory, vocabulary, hf = files
    _, target = MarianTokenizer.from_marian_dir(directory)
    pad = vocabulary["<pad>"]
    rng = np.random.default_rng(0)
    rows = [rng.integers(2, pad, size=n).tolist() for n in (1, 4, 9, 15)]
    rows += [[pad, 5, 9, 1, 12, 0, pad, pad], [7, 0], [pad], [3, 1, 1]]  # start, unk, end, padding
    ours = [t.decode() for t in target.detokenize(tf.ragged.constant(rows)).numpy()]
    assert ours == [hf.decode(row, skip_special_tokens=True) for row in rows]
    # Unlike transformers (which only drops `</s>`), a row ends at its first end id.
    assert target.detokenize(tf.constant([0, 7])).numpy() == b"" != hf.decode([0, 7], skip_special_tokens=True)
    # Source-side text comes back from its own ids.
    source, _ = MarianTokenizer.from_marian_dir(directory)
    assert source.detokenize(source.tokenize(["the cat sees a dog."])).numpy()[0] == b"the cat sees a dog."
    # Out-of-range and negative ids do not crash (they count as <unk>, which is dropped).
    assert target.detokenize(tf.constant([[5, 10**6, -3, 0]])).numpy()[0].decode() == hf.decode([5], skip_special_tokens=True)


def test_invalid_utf8_is_repaired_not_fatal(files):
    directory, _, hf = files
    source, _ = MarianTokenizer.from_marian_dir(directory)
    ids = source.tokenize(tf.constant([b"\xff\xfe the cat", b"the \xc3 dog"])).to_list()
    # Each bad byte becomes U+FFFD, then the text tokenizes as transformers does.
    assert ids == [hf("\ufffd\ufffd the cat")["input_ids"], hf("the \ufffd dog")["input_ids"]]


def test_save_load_and_config_errors(files, tmp_path):
    directory, vocabulary, _ = files
    source, _ = MarianTokenizer.from_marian_dir(directory)
    source.save(tmp_path / "source")
    loaded = MarianTokenizer.load(tmp_path / "source")
    assert loaded.tokenize(tf.constant(TEXTS)).to_list() == source.tokenize(tf.constant(TEXTS)).to_list()
    with pytest.raises(ValueError, match=r"lacks the special tokens \['<pad>'\]"):
        MarianTokenizer(source.model_proto, {k: v for k, v in vocabulary.items() if k != "<pad>"})
    with pytest.raises(TypeError, match="model_proto must be bytes"):
        MarianTokenizer("source.spm", vocabulary)
