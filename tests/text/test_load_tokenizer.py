import json

import pytest

from zoo.text import WordPieceTokenizer, load_tokenizer


def test_loads_the_class_its_config_names_and_names_missing_files(tmp_path):
    tokenizer = WordPieceTokenizer.from_corpus(["I buy three apples."] * 5, 40)
    tokenizer.save(tmp_path / "t")
    loaded = load_tokenizer(tmp_path / "t")
    assert type(loaded) is WordPieceTokenizer and loaded.vocabulary == tokenizer.vocabulary
    with pytest.raises(FileNotFoundError, match="Missing tokenizer.json in .*nowhere"):
        load_tokenizer(tmp_path / "nowhere")
    (tmp_path / "t" / "vocabulary.txt").unlink()
    with pytest.raises(FileNotFoundError, match="vocabulary.txt"):
        load_tokenizer(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").write_text(json.dumps({"class": "BertTokenizer"}))
    with pytest.raises(ValueError, match="names class='BertTokenizer'; expected one of .*'WordPieceTokenizer'"):
        load_tokenizer(tmp_path / "t")
    (tmp_path / "t" / "tokenizer.json").write_text("{")
    with pytest.raises(ValueError, match="tokenizer.json is not valid JSON"):
        load_tokenizer(tmp_path / "t")
