import os
import subprocess
import sys

import numpy as np
import pytest

from tests.tasks.conftest import ROOT
from zoo.data.translation_data import DataError, load_translation_data, make_batches, read_tsv
from zoo.text import WordPieceTokenizer

PAIRS = [("I buy three apples.", "Ich kaufe drei Äpfel."), ("She speaks French.", "Sie spricht Französisch.")] * 30


@pytest.fixture(scope="module")
def tokenizers():
    return (
        WordPieceTokenizer.from_corpus([s for s, _ in PAIRS], 60, lowercase=False),
        WordPieceTokenizer.from_corpus([t for _, t in PAIRS], 60, lowercase=False),
    )


def test_read_tsv_counts_blank_lines_and_skips_bad_ones_by_kind(tmp_path):
    path = tmp_path / "corpus.tsv"
    lines = [b"\xef\xbb\xbfa b\tc d", b"", b"  ", b"e f\tg h\textra column", b"no tab here", b"K\xe4se\tcheese",
             b"x\t ", b"\t y"] + [f"s{i}\tt{i}".encode() for i in range(40)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    pairs, report = read_tsv(str(path))
    assert pairs[:2] == [("a b", "c d"), ("e f", "g h")] and len(pairs) == 42  # BOM dropped, 3rd column ignored
    assert (report.lines, report.pairs, report.blank, report.extra_columns) == (48, 42, 2, 1)
    assert report.bad == {"no tab": 1, "not UTF-8": 1, "empty side": 2} and report.bad_lines == 4
    assert report.examples == [
        f"{path}:5: expected 'source<TAB>target', found no tab in 'no tab here'",
        f"{path}:6: not valid UTF-8 (invalid continuation byte at byte 1: b'K\\xe4se\\tcheese')",
        f"{path}:7: empty source or target in 'x\\t '",
        f"{path}:8: empty source or target in '\\t y'",
    ]
    text = str(report)
    assert text.splitlines()[0] == (
        f"{path}: 42 sentence pairs from 48 lines; 2 blank lines skipped; 4 bad lines skipped "
        "(1 no tab, 1 not UTF-8, 2 empty side); 1 with more than two columns (extra columns ignored)"
    )
    assert text.splitlines()[1:] == ["  " + example for example in report.examples]


def test_read_tsv_strict_and_mostly_bad_files_stop(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("a\tb\n" * 20 + "no tab here\n")
    with pytest.raises(DataError, match=r"corpus.tsv:21: expected 'source<TAB>target', found no tab in 'no tab here' "
                                         r"\(without --strict, bad lines are skipped\)"):
        read_tsv(str(path), strict=True)
    assert len(read_tsv(str(path))[0]) == 20
    csv = tmp_path / "corpus.csv"  # the wrong delimiter: every line bad
    csv.write_text("".join(f"source {i},target {i}\n" for i in range(40)) + "a\tb\n")
    with pytest.raises(DataError, match=r"40 of the 41 non-blank lines of .*corpus.csv are bad, more than 10%: is it "
                                         r"a UTF-8 file of source<TAB>target lines\? First: .*corpus.csv:1: "):
        read_tsv(str(csv))
    _, report = read_tsv(str(csv), max_bad_share=1.0)
    assert str(report).splitlines()[-1] == "  ... and 35 more"  # the first 5 named
    with pytest.raises(DataError, match="not found"):
        read_tsv(str(tmp_path / "missing.tsv"))
    (tmp_path / "blank.tsv").write_text("\n \n")
    with pytest.raises(DataError, match=r"blank.tsv: no sentence pairs found \(2 lines\)"):
        read_tsv(str(tmp_path / "blank.tsv"))


def test_loading_a_tsv_prints_true_counts(tmp_path, capsys):
    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"sentence {i}\tSatz {i}\n" + "\n" * (i % 2) for i in range(100)) + "oops\n")
    load_translation_data(f"tsv:{path}")
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: 100 sentence pairs from 151 lines; 50 blank lines skipped; 1 bad line skipped (1 no tab)",
        f"  {path}:151: expected 'source<TAB>target', found no tab in 'oops'",
    ]
    with pytest.raises(DataError, match="corpus.tsv:151"):
        load_translation_data(f"tsv:{path}", strict=True)


def test_tsv_source_splits_disjointly(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"sentence {i}\tSatz {i}\n" for i in range(200)))
    splits = load_translation_data(f"tsv:{path}")
    sources = [{s for s, _ in splits[k]} for k in ("train", "validation", "test")]
    assert sum(map(len, sources)) == 200
    assert not (sources[0] & sources[1]) and not (sources[0] & sources[2]) and not (sources[1] & sources[2])
    with pytest.raises(DataError, match="Unknown data source 'csv:x'"):
        load_translation_data("csv:x")


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_lf_crlf_and_cr_all_end_lines(tmp_path, end):
    # "Å" is C3 85 in UTF-8: a 0x85 byte (Latin-1's NEL) must not end a line either.
    lines = [f"sentence {i} Å\tSatz {i}".encode() for i in range(3000)] + [b"", b"K\xe4se\tcheese"]
    path = tmp_path / "corpus.tsv"
    path.write_bytes(end.join(lines) + end)
    pairs, report = read_tsv(str(path))
    assert len(pairs) == 3000 and pairs[-1] == ("sentence 2999 Å", "Satz 2999")
    assert (report.lines, report.blank, report.extra_columns, report.bad) == (3002, 1, 0, {"not UTF-8": 1})
    assert report.examples == [
        f"{path}:3002: not valid UTF-8 (invalid continuation byte at byte 1: b'K\\xe4se\\tcheese')"
    ]


def test_a_tsv_too_small_to_split_is_one_clear_error(tmp_path):
    path = tmp_path / "two.tsv"
    path.write_text(
        "I buy apples.\tIch kaufe Äpfel.\nWe go home.\tWir gehen nach Hause.\nWe go home.\tWir gehen heim.\n"
    )
    with pytest.raises(DataError, match=rf"{path} has 2 distinct source sentences; splitting it into train, validation "
                                         r"and test needs at least 3 \(one each\)"):
        load_translation_data(f"tsv:{path}")
    path.write_text(path.read_text() + "She reads.\tSie liest.\n")
    splits = load_translation_data(f"tsv:{path}")
    assert [len({s for s, _ in splits[k]}) for k in ("train", "validation", "test")] == [1, 1, 1]


def test_the_recipe_on_a_two_pair_tsv_ends_in_one_line(tmp_path):
    """It ended in `error: StopIteration` (the WordPiece learner, on an empty training split)."""
    path = tmp_path / "two.tsv"
    path.write_text("I buy apples.\tIch kaufe Äpfel.\nWe go home.\tWir gehen nach Hause.\n")
    result = subprocess.run(
        [sys.executable, "-m", "recipes.translation", "train", "--data", f"tsv:{path}", "--output",
         str(tmp_path / "run"), "--epochs", "1", "--steps-per-epoch", "1", "--d-model", "16", "--num-layers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {path} has 2 distinct source sentences; splitting it into train, validation and test needs at "
        "least 3 (one each). (--verbose shows the traceback)"
    )


def test_word_piece_learning_on_no_words_is_a_value_error():
    with pytest.raises(ValueError, match="from_corpus needs texts with at least one word"):
        WordPieceTokenizer.from_corpus(["", "  ", "\t"], 60)


def test_teacher_forcing_masks_and_counts(tokenizers):
    from zoo.preprocessing import TranslationPreprocessor

    source_tok, target_tok = tokenizers
    preprocessor = TranslationPreprocessor(source_tok, target_tok, max_length=8)
    pairs = PAIRS[:4] + [("", "leer"), ("word " * 30, "Wort")]
    ds, stats = make_batches(pairs, preprocessor, batch_size=8, shuffle=False)
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
    dropped, stats = make_batches(pairs, preprocessor, 8, overlong="drop", shuffle=False)
    assert (stats.pairs, stats.dropped_too_long) == (4, 1)
    with pytest.raises(ValueError, match="overlong must be 'truncate' or 'drop'"):
        make_batches(pairs, preprocessor, 8, overlong="cut")
    with pytest.raises(DataError, match=r"No usable sentence pairs after tokenization \(0 pairs kept.*2 dropped as empty"):
        make_batches([("", "leer"), ("Hallo", " ")], preprocessor, 8)
    with pytest.raises(TypeError, match="takes a zoo.preprocessing.TranslationPreprocessor. Received: tuple"):
        make_batches(pairs, tokenizers, 8)


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        splits = load_translation_data("tfds:ted_hrlr_translate/pt_to_en")
    assert set(splits) == {"train", "validation", "test"}
    source, target = splits["train"][0]
    assert isinstance(source, str) and isinstance(target, str)
    assert len(splits["train"]) == 12
