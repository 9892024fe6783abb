import numpy as np
import pytest

from zoo.data.translation_data import DataError, load_translation_data, make_batches, read_tsv
from zoo.text import WordPieceTokenizer

PAIRS = [("I buy three apples.", "Ich kaufe drei Äpfel."), ("She speaks French.", "Sie spricht Französisch.")] * 30


@pytest.fixture(scope="module")
def tokenizers():
    return (
        WordPieceTokenizer.from_corpus([s for s, _ in PAIRS], 60, lowercase=False),
        WordPieceTokenizer.from_corpus([t for _, t in PAIRS], 60, lowercase=False),
    )


def test_read_tsv_counts_empty_lines_and_names_bad_lines(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_bytes("a b\tc d\n\n  \ne f\tg h\textra column\n".encode())
    pairs, empty = read_tsv(str(good))
    assert pairs == [("a b", "c d"), ("e f", "g h")] and empty == 2
    no_tab = tmp_path / "no_tab.tsv"
    no_tab.write_text("a\tb\nno tab here\n")
    with pytest.raises(DataError, match=r"no_tab.tsv:2: expected 'source<TAB>target', found no tab in 'no tab here'"):
        read_tsv(str(no_tab))
    latin1 = tmp_path / "latin1.tsv"
    latin1.write_bytes(b"ok\tok\nK\xe4se\tcheese\n")
    with pytest.raises(DataError, match=r"latin1.tsv:2: not valid UTF-8"):
        read_tsv(str(latin1))
    with pytest.raises(DataError, match="not found"):
        read_tsv(str(tmp_path / "missing.tsv"))
    with pytest.raises(DataError, match="empty source or target"):
        (tmp_path / "half.tsv").write_text("a\t \n")
        read_tsv(str(tmp_path / "half.tsv"))


def test_tsv_source_splits_disjointly(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"sentence {i}\tSatz {i}\n" for i in range(200)))
    splits = load_translation_data(f"tsv:{path}")
    sources = [{s for s, _ in splits[k]} for k in ("train", "validation", "test")]
    assert sum(map(len, sources)) == 200
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])
    with pytest.raises(DataError, match="Unknown data source 'csv:x'"):
        load_translation_data("csv:x")


def test_teacher_forcing_masks_and_counts(tokenizers):
    source_tok, target_tok = tokenizers
    pairs = PAIRS[:4] + [("", "leer"), ("word " * 30, "Wort")]
    ds, stats = make_batches(pairs, source_tok, target_tok, batch_size=8, max_length=8, shuffle=False)
    assert (stats.pairs, stats.truncated, stats.dropped_empty) == (5, 1, 1)
    inputs, labels, weights = next(iter(ds))
    source, decoder_in = inputs["source_ids"].numpy(), inputs["target_ids"].numpy()
    labels, weights = labels.numpy(), weights.numpy()
    assert source.shape[1] <= 8 and decoder_in.shape[1] <= 8
    np.testing.assert_array_equal(decoder_in[:, 0], target_tok.start_id)
    for row_in, row_out, w in zip(decoder_in, labels, weights):
        n = int(w.sum())
        np.testing.assert_array_equal(row_in[1:n], row_out[: n - 1])  # shifted by one
        assert row_out[n - 1] == target_tok.end_id and np.all(row_out[n:] == 0) and np.all(w[n:] == 0)
    dropped, stats = make_batches(pairs, source_tok, target_tok, 8, 8, overlong="drop", shuffle=False)
    assert (stats.pairs, stats.dropped_too_long) == (4, 1)
    with pytest.raises(ValueError, match="overlong must be 'truncate' or 'drop'"):
        make_batches(pairs, source_tok, target_tok, 8, 8, overlong="cut")


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        splits = load_translation_data("tfds:ted_hrlr_translate/pt_to_en")
    assert set(splits) == {"train", "validation", "test"}
    source, target = splits["train"][0]
    assert isinstance(source, str) and isinstance(target, str)
    assert len(splits["train"]) == 12
