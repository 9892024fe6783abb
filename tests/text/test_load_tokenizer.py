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


def _point_at(folder, key, value):
    config = json.loads((folder / "tokenizer.json").read_text())
    (folder / "tokenizer.json").write_text(json.dumps({**config, key: value}))


def test_files_a_tokenizer_json_names_must_be_inside_its_folder(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("[PAD]\n[UNK]\n[START]\n[END]\nroot:x:0:0:root:/root:/bin/bash\n")  # a vocabulary, too
    WordPieceTokenizer.from_corpus(["I buy three apples."] * 5, 40).save(tmp_path / "t")
    folder = tmp_path / "t"
    for name in (str(secret), "../secret.txt", "/etc/passwd"):
        _point_at(folder, "vocabulary_file", name)
        with pytest.raises(ValueError, match=rf"tokenizer.json: vocabulary_file='{name}' leads outside .*t; a saved "
                                             r"folder's files must be inside it") as error:
            load_tokenizer(folder)
        assert "root:x" not in str(error.value)  # the name, never the contents
    (folder / "link.txt").symlink_to(secret)
    _point_at(folder, "vocabulary_file", "link.txt")
    with pytest.raises(ValueError, match="vocabulary_file='link.txt' leads outside"):
        load_tokenizer(folder)
    _point_at(folder, "vocabulary_file", None)
    with pytest.raises(ValueError, match="vocabulary_file must name a file inside .*t. Received: None"):
        load_tokenizer(folder)
    config = json.loads((folder / "tokenizer.json").read_text())
    del config["vocabulary_file"]
    (folder / "tokenizer.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"lacks \['vocabulary_file'\]; a WordPieceTokenizer needs"):
        load_tokenizer(folder)


def test_a_sentencepiece_model_file_outside_the_folder_is_refused(tmp_path):
    from zoo.text import SentencePieceTokenizer

    texts = ["the cat sat on the mat.", "the dog sat on the log.", "a cat saw a dog."] * 10
    SentencePieceTokenizer.from_corpus(texts, 20).save(tmp_path / "t")
    (tmp_path / "t" / "sentencepiece.model").rename(tmp_path / "elsewhere.model")
    _point_at(tmp_path / "t", "model_file", "../elsewhere.model")
    with pytest.raises(ValueError, match="model_file='../elsewhere.model' leads outside"):
        load_tokenizer(tmp_path / "t")
