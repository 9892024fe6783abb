import json
import re

import pytest

from zoo.files import path_in_folder, read_json


def test_read_json_returns_the_value_of_the_expected_type(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"größe": [1, 2]}), encoding="utf-8")
    (tmp_path / "names.json").write_text('["cat", "dog"]')
    assert read_json(tmp_path / "a.json") == {"größe": [1, 2]}
    assert read_json(str(tmp_path / "names.json"), expected=list) == ["cat", "dog"]
    assert read_json(tmp_path / "names.json", expected=None) == ["cat", "dog"]


def test_read_json_names_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"^Missing config.json in {re.escape(str(tmp_path))}\.$"):
        read_json(tmp_path / "config.json")
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"broken.json is not valid JSON: Expecting value: line 1 column 7"):
        read_json(tmp_path / "broken.json")
    (tmp_path / "latin1.json").write_bytes('{"a": "é"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.json is not valid JSON: .*codec can't decode"):
        read_json(tmp_path / "latin1.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"list.json must hold a JSON object. Received: list"):
        read_json(tmp_path / "list.json")
    with pytest.raises(ValueError, match=r"list.json must hold a JSON string. Received: list"):
        read_json(tmp_path / "list.json", expected=str)
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(OSError, match=r"Cannot read .*folder.json: .*directory"):
        read_json(tmp_path / "folder.json")
    with pytest.raises(ValueError, match=r"expected must be one of \['dict', 'list', 'str'\] or None. Received: <class"):
        read_json(tmp_path / "list.json", expected=int)


def test_path_in_folder_refuses_names_that_lead_outside(tmp_path):
    assert path_in_folder(str(tmp_path), "vocab.txt", "vocabulary_file") == str(tmp_path / "vocab.txt")
    for name in ("../x", "/etc/passwd"):
        with pytest.raises(ValueError, match=rf"vocabulary_file='{name}' leads outside"):
            path_in_folder(str(tmp_path), name, "vocabulary_file")
    with pytest.raises(ValueError, match=r"must name a file inside .*Received: 3"):
        path_in_folder(str(tmp_path), 3, "vocabulary_file")
    assert path_in_folder("gs://bucket/t", "a/b.txt", "f") == "gs://bucket/t/a/b.txt"
    with pytest.raises(ValueError, match="leads outside gs://bucket/t"):
        path_in_folder("gs://bucket/t", "a/../../b.txt", "f")
