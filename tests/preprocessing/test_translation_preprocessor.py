"""TranslationPreprocessor: training batches and serving requests read the same ids.

With the WordPiece tokenizers the recipe learns and with Marian's (end id 0
appended to every row, pad the last id, start == pad): the same sentence
gives the same source ids in a training batch and in a serving request,
over-long ones included; targets become `[start] + content` and
`content + [end]` with one end id, padded with the pad id at weight 0.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.convert.marian_checkpoint import SOURCE_WORDS, TARGET_WORDS, sentences
from zoo.data.translation_data import DataError, bucket_widths, make_batches
from zoo.preprocessing import TranslationPreprocessor
from zoo.text import MarianTokenizer, WordPieceTokenizer

MAX_LENGTH = 8
LONG = " ".join(["the green river and the old tree"] * 3)  # far more than 8 tokens on both kinds
LONG_DE = " ".join(["der grün Fluss und das alt Haus"] * 3)


@pytest.fixture(scope="module")
def wordpiece():
    # The words of the Marian tokenizers' corpus, so that a sentence is short or long for both kinds.
    return TranslationPreprocessor(
        WordPieceTokenizer.from_corpus(sentences(SOURCE_WORDS), 200, lowercase=False),
        WordPieceTokenizer.from_corpus(sentences(TARGET_WORDS, seed=1), 200, lowercase=False),
        MAX_LENGTH,
    )


@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    pytest.importorskip("sentencepiece")
    from tests.convert.marian_checkpoint import write_tokenizer_files

    directory = str(tmp_path_factory.mktemp("marian_tokenizers"))
    write_tokenizer_files(directory)
    return TranslationPreprocessor(*MarianTokenizer.from_marian_dir(directory), MAX_LENGTH)


def _pairs():
    sources = ["the cat", LONG, "friend", "big red house and tree near the river with the old green window", "a",
               LONG + " again"]
    targets = ["die Katze", "der Fluss", LONG_DE, "das Haus", "der", "neu"]  # 4 too long: 3 sources, 1 target
    return list(zip(sources, targets))


def _unpadded(rows, pad):
    return sorted(tuple(int(t) for t in row if t != pad) for row in rows)


@pytest.mark.parametrize("kind", ["wordpiece", "marian"])
def test_a_sentence_has_the_same_source_ids_in_training_and_serving(kind, request):
    preprocessor = request.getfixturevalue(kind)
    pairs = _pairs()
    sources = [s for s, _ in pairs]
    served, empty, truncated = (x.numpy() for x in preprocessor.serving_inputs(tf.constant(sources)))
    assert served.shape[1] == MAX_LENGTH and not empty.any()
    assert truncated.tolist() == [False, True, False, True, False, True]  # also what the log counts
    for (source, target), row in zip(pairs, served):  # pair by pair: the same row, padding included
        inputs, _, _ = preprocessor.training_batch(tf.constant([source]), tf.constant([target]))
        alone = preprocessor.serving_inputs(tf.constant([source]))[0].numpy()
        np.testing.assert_array_equal(inputs["source_ids"].numpy(), alone)
        np.testing.assert_array_equal(alone[0], row[: alone.shape[1]])
    batches, stats = make_batches(pairs, preprocessor, batch_size=4, shuffle=False)
    trained = [row for inputs, _, _ in batches for row in inputs["source_ids"].numpy()]
    pad = preprocessor.source_pad_id
    assert _unpadded(trained, pad) == _unpadded(served, pad) and stats.truncated == 4
    if kind == "marian":  # truncated before the end id, which stays (as transformers truncates)
        long_row = served[1]
        assert long_row[-1] == preprocessor.source_tokenizer.end_id == 0 and (long_row[:-1] != 0).all()


def test_marian_targets_have_one_end_id_and_pad_with_the_pad_id(marian):
    pad, start, end = marian.pad_id, marian.start_id, marian.end_id
    assert (start, end) == (pad, 0) and pad == marian.target_tokenizer.vocabulary_size - 1
    pairs = _pairs()
    sources, targets = (tf.constant(side) for side in zip(*pairs))
    inputs, labels, weights = marian.training_batch(sources, targets)
    decoder_input, labels, weights = inputs["target_ids"].numpy(), labels.numpy(), weights.numpy()
    content = marian.target_tokenizer.tokenize(tf.constant([t for _, t in pairs])).to_list()
    assert all(row[-1] == end and end not in row[:-1] for row in content)  # the tokenizer appends it
    for row_in, row_out, w, ids in zip(decoder_input, labels, weights, content):
        n = int(w.sum())
        expected = ids[:-1][: MAX_LENGTH - 1]  # the content, cut to leave room for start / end
        assert row_out[:n].tolist() == expected + [end] and row_in[:n].tolist() == [start] + expected
        assert (row_out[n:] == pad).all() and (row_in[n:] == pad).all() and (w[n:] == 0).all() and (w[:n] == 1).all()
    assert (weights.sum(axis=1) == MAX_LENGTH).sum() == 1  # the long target: cut to 7 ids + end
    source_padding = inputs["source_ids"].numpy() == pad
    assert source_padding.any() and (np.diff(source_padding.astype(int), axis=1) >= 0).all()  # right-padded


def test_empty_and_overlong_pairs(marian, wordpiece):
    pairs = _pairs() + [("", "leer"), ("the cat", "   ")]
    for preprocessor in (marian, wordpiece):
        _, stats = make_batches(pairs, preprocessor, 4, shuffle=False)
        assert (stats.pairs, stats.truncated, stats.dropped_empty) == (6, 4, 2)
        dropped, stats = make_batches(pairs, preprocessor, 4, overlong="drop", shuffle=False)
        assert (stats.pairs, stats.dropped_too_long, stats.dropped_empty) == (2, 4, 2)
        assert sum(int(labels.shape[0]) for _, labels, _ in dropped) == 2
        assert len(list(dropped)) == dropped.cardinality() >= 1  # the batch count is known ahead
        inputs, labels, weights = preprocessor.training_batch(tf.constant(["", LONG]), tf.constant(["x", "y"]), "drop")
        assert labels.shape[0] == 0 and inputs["source_ids"].shape[0] == 0


def test_batches_take_pairs_files_and_datasets(wordpiece, tmp_path):
    pairs = _pairs()
    rows = lambda ds: _unpadded([r for inputs, _, _ in ds for r in inputs["source_ids"].numpy()], 0)  # noqa: E731
    listed, stats = wordpiece.batches(pairs, 4)
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs) + "no tab\n" + "".join(f"s{i}\tt{i}\n" for i in range(9)))
    lines = []
    from_file, file_stats = wordpiece.batches(str(path), 4, log=lines.append)
    assert stats.pairs == 6 and file_stats.pairs == 15 and "1 bad line" in lines[0] and "15 pairs kept" in lines[1]
    assert set(rows(listed)) <= set(rows(from_file))
    sources, targets = tf.constant([s for s, _ in pairs]), tf.constant([t for _, t in pairs])
    one_by_one, none = wordpiece.batches(tf.data.Dataset.from_tensor_slices((sources, targets)), 4)
    batched, _ = wordpiece.batches(tf.data.Dataset.from_tensor_slices((sources, targets)).batch(5), 4)
    assert none is None and rows(one_by_one) == rows(batched) == rows(listed)
    assert [int(labels.shape[0]) for _, labels, _ in batched] == [5, 1]  # a dataset of batches keeps its own
    all_dropped, _ = wordpiece.batches(tf.data.Dataset.from_tensor_slices((["", " "], ["x", "y"])), 4)
    assert list(all_dropped) == []  # no step without tokens


@pytest.mark.parametrize("kind", ["wordpiece", "marian"])
def test_training_batches_are_padded_to_a_few_widths(kind, request):
    # A compiled train step (JAX, XLA) compiles once per shape: batches take the widths of their bucket.
    base = request.getfixturevalue(kind)
    preprocessor = TranslationPreprocessor(base.source_tokenizer, base.target_tokenizer, 20)
    widths = bucket_widths(20)
    assert widths == [7, 11, 15, 20]
    pairs = _pairs()
    listed, _ = preprocessor.batches(pairs, 2)
    shapes = {(tuple(x["source_ids"].shape), tuple(x["target_ids"].shape), tuple(y.shape), tuple(w.shape))
              for x, y, w in listed}
    assert {shape[0][1] for shape in shapes} <= set(widths) and all(len({s[1] for s in shape}) == 1 for shape in shapes)
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    streamed, _ = preprocessor.batches(tf.data.Dataset.from_tensor_slices((sources, targets)), 2)
    pads = {"source_ids": preprocessor.source_pad_id, "target_ids": preprocessor.pad_id}
    for i, (inputs, labels, weights) in enumerate(streamed):
        x, y, w = preprocessor.training_batch(tf.constant(sources[2 * i : 2 * i + 2]),
                                              tf.constant(targets[2 * i : 2 * i + 2]))
        width = int(labels.shape[1])
        assert width == min(n for n in widths if n >= max(x["source_ids"].shape[1], y.shape[1]))
        for got, unpadded, pad in [*((inputs[k], x[k], pads[k]) for k in pads), (labels, y, pads["target_ids"]),
                                   (weights, w, 0)]:
            n = unpadded.shape[1]
            assert got.shape == (unpadded.shape[0], width)
            np.testing.assert_array_equal(got[:, :n], unpadded)
            assert (got.numpy()[:, n:] == pad).all()


@pytest.mark.parametrize(
    "data, error, message",
    [
        ([("a", "b"), ("c", 3)], TypeError, r"pairs of str. Received: tuple \('c', 3\) at index 1"),
        ([("a", "b", "c")], TypeError, r"Received: tuple \('a', 'b', 'c'\) at index 0"),
        ({"a": "b"}, TypeError, "a list of \\(source, target\\) string pairs, a TSV file path or a tf.data.Dataset. "
                                "Received: dict"),
        ([], DataError, "No sentence pairs"),
        ([("", "x"), ("y", "  ")], DataError, "No usable sentence pairs after tokenization"),
        (tf.data.Dataset.range(3), TypeError, r"must yield \(source, target\) tf.string pairs.*Received: element_spec"),
        (tf.data.Dataset.from_tensor_slices(([[[b"a"]]], [[[b"b"]]])), TypeError, "shapes \\(\\) or \\(None,\\)"),
    ],
)
def test_bad_training_data_is_one_clear_error(wordpiece, data, error, message):
    with pytest.raises(error, match=message):
        wordpiece.batches(data, 4)


def test_bad_files_and_arguments(wordpiece, tmp_path):
    empty, bad = tmp_path / "empty.tsv", tmp_path / "bad.tsv"
    empty.write_text("")
    bad.write_text("no tabs\nat all\n")
    with pytest.raises(DataError, match="empty.tsv: no sentence pairs found"):
        wordpiece.batches(str(empty), 4)
    with pytest.raises(DataError, match="2 of the 2 non-blank lines of .*bad.tsv are bad"):
        wordpiece.batches(bad, 4)
    with pytest.raises(DataError, match="TSV file not found"):
        wordpiece.batches(str(tmp_path / "missing.tsv"), 4)
    with pytest.raises(ValueError, match="batch_size must be a positive int. Received: batch_size=0"):
        wordpiece.batches(_pairs(), 0)
    with pytest.raises(ValueError, match="overlong must be 'truncate' or 'drop'. Received: overlong='cut'"):
        wordpiece.training_batch(tf.constant(["a"]), tf.constant(["b"]), overlong="cut")
    with pytest.raises(ValueError, match="max_length must be an int >= 2.*Received: max_length=1"):
        TranslationPreprocessor(wordpiece.source_tokenizer, wordpiece.target_tokenizer, 1)
    with pytest.raises(TypeError, match="target_tokenizer must be a zoo.text tokenizer.*Received: object, without tok"):
        TranslationPreprocessor(wordpiece.source_tokenizer, object(), 8)
