"""The README's "Translate in Python" and "Classify in Python" blocks run as written,
on run folders laid out as the recipes write them today (tiny models)."""

import ast
import io
import json
import os
import re
import shutil

import numpy as np
from PIL import Image

from tests.export.conftest import tiny_translator  # noqa: F401  (the fixture)
from tests.tasks.conftest import ROOT

MAIN_VIT = os.path.join(ROOT, "tests", "models", "data", "vit_saved_by_main.keras")


def _python_block(section):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", body, re.S).group(1)
    assert len(code.strip().splitlines()) <= 4, code  # "about three lines"
    return code


def _run(code, capsys):
    exec(compile(code, "README.md", "exec"), {})
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_translate_in_python(tiny_translator, tmp_path, monkeypatch, capsys):
    model, source, target = tiny_translator
    run = tmp_path / "runs" / "translation"  # recipes/translation.py's layout
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    source.save(run / "source_tokenizer")
    target.save(run / "target_tokenizer")
    (run / "config.json").write_text(json.dumps(dict(beam_width=2, length_penalty=0.6, max_length=8)))
    monkeypatch.chdir(tmp_path)
    translations = ast.literal_eval(_run(_python_block("Translate in Python"), capsys))
    assert isinstance(translations, list) and len(translations) == 2 and all(isinstance(t, str) for t in translations)


def test_classify_in_python(tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "vit"  # recipes/image_classification.py's layout
    run.mkdir(parents=True)
    shutil.copy(MAIN_VIT, run / "model.keras")
    (run / "class_names.json").write_text(json.dumps(["zero", "one", "two"]))
    (run / "config.json").write_text(json.dumps(dict(image_size=8, top_k=2)))
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(buffer, format="PNG")
    (tmp_path / "digit.png").write_bytes(buffer.getvalue())
    monkeypatch.chdir(tmp_path)
    printed = _run(_python_block("Classify in Python"), capsys)  # a NumPy array of str: ['one' 'zero']
    labels = re.findall(r"'([^']*)'", printed)
    assert len(labels) == 2 and set(labels) <= {"zero", "one", "two"}, printed
