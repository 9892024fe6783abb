"""The README's "Translate in Python" and "Classify in Python" blocks run as written,
on task folders where the recipes save them (tiny models), and so does its `zoo.plots` call."""

import ast
import io
import os
import re

import numpy as np
from PIL import Image

from tests.export.conftest import tiny_translator  # noqa: F401  (the fixture)
from tests.tasks.conftest import ROOT, run_fresh

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
    import zoo
    from zoo.decoding import SearchSettings

    run = tmp_path / "runs" / "translation"  # where recipes/translation.py saves its task folder: <output>/model
    zoo.Translator(*tiny_translator, SearchSettings(beam_width=2, max_length=8)).save(run / "model")
    monkeypatch.chdir(tmp_path)
    translations = ast.literal_eval(_run(_python_block("Translate in Python"), capsys))
    assert isinstance(translations, list) and len(translations) == 2 and all(isinstance(t, str) for t in translations)


def test_classify_in_python(tmp_path, monkeypatch, capsys):
    import keras

    import zoo
    from zoo.preprocessing.image_preprocessor import DEFAULT_MEAN, DEFAULT_STD, ImagePreprocessor

    run = tmp_path / "runs" / "vit"  # where recipes/image_classification.py saves its task folder: <output>/model
    preprocessor = ImagePreprocessor(8, DEFAULT_MEAN, DEFAULT_STD, ["zero", "one", "two"])
    zoo.ImageClassifier(keras.saving.load_model(MAIN_VIT), preprocessor, top_k=2).save(run / "model")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(buffer, format="PNG")
    (tmp_path / "digit.png").write_bytes(buffer.getvalue())
    monkeypatch.chdir(tmp_path)
    printed = _run(_python_block("Classify in Python"), capsys)  # a NumPy array of str: ['one' 'zero']
    labels = re.findall(r"'([^']*)'", printed)
    assert len(labels) == 2 and set(labels) <= {"zero", "one", "two"}, printed


ROLLOUT = """
import re, sys
import numpy as np
import zoo

lazy = "zoo.plots" not in sys.modules
classifier = zoo.ImageClassifier.load(sys.argv[1])
images = list(np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
true_labels = [0, 1, 2]
call = re.search(r"`(zoo\\.plots\\.plot_rollout_grid\\(.*?\\))`", open(sys.argv[2], encoding="utf-8").read(), re.S)[1]
exec(call)
print(lazy, call)
"""


def test_the_rollout_call_runs_after_import_zoo(tmp_path):
    """`import zoo` then `zoo.plots....` was an AttributeError: nothing imported zoo.plots (a fresh process)."""
    import keras

    import zoo
    from zoo.preprocessing.image_preprocessor import DEFAULT_MEAN, DEFAULT_STD, ImagePreprocessor

    preprocessing = ImagePreprocessor(8, DEFAULT_MEAN, DEFAULT_STD, ["zero", "one", "two"])
    zoo.ImageClassifier(keras.saving.load_model(MAIN_VIT), preprocessing, top_k=2).save(tmp_path / "model")
    script = f"import os; os.chdir({str(tmp_path)!r})\n" + ROLLOUT
    lazy, call = run_fresh(script, tmp_path / "model", os.path.join(ROOT, "README.md")).split(" ", 1)
    assert lazy == "True" and call.startswith("zoo.plots.plot_rollout_grid(")  # imported on first use
    assert (tmp_path / "rollout.png").stat().st_size > 1_000


def test_the_device_commands_parse_and_name_engines_of_their_backend():
    """Every recipe command of "Training on GPUs and several devices" takes its flags, and its
    --distribute / --mesh exist on the backend the command runs on."""
    import importlib
    import shlex

    from zoo import distribution

    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    body = text.split("## Training on GPUs and several devices\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", body, re.S):
        exported = re.search(r"^export .*KERAS_BACKEND=(\w+)", block, re.M)
        for line in re.findall(r"^(?!#).*python -m recipes\..*$", block, re.M):
            backend = re.match(r"(?:KERAS_BACKEND=(\w+) )?", line).group(1) or (exported and exported.group(1))
            backend = backend or "tensorflow"
            name, argv = re.search(r"python -m recipes\.(\w+) (.*)$", line).groups()
            args = importlib.import_module(f"recipes.{name}").parse_args(shlex.split(argv))
            distribution.check_options(getattr(args, "distribute", "none"), getattr(args, "mesh", None), backend)
            commands.append((backend, name, getattr(args, "distribute", "none")))
    assert ("jax", "image_classification", "none") in commands and ("tensorflow", "translation", "mirrored") in commands
    assert {("jax", "translation", d) for d in ("data-parallel", "model-parallel")} <= set(commands)


def test_the_fine_tuning_commands_parse():
    """Every recipe command of "Fine-tune a pretrained model" takes its flags, and they name fine-tuning."""
    import importlib
    import shlex

    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    body = text.split("## Fine-tune a pretrained model\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for line in re.findall(r"^python -m recipes\..*$", body, re.M):
        name, argv = re.search(r"python -m recipes\.(\w+) (.*)$", line).groups()
        args = importlib.import_module(f"recipes.{name}").parse_args(shlex.split(argv))
        assert args.init_from, line
        commands.append((name, args.command, getattr(args, "lora_rank", None), getattr(args, "freeze_backbone", None),
                         getattr(args, "architecture", None)))
    assert {(n, c) for n, c, *_ in commands} == {(n, c) for n in ("translation", "image_classification")
                                                 for c in ("train", "evaluate")}
    assert any(rank for _, _, rank, _, _ in commands) and any(frozen for *_, frozen, _ in commands)
    assert any(architecture for *_, architecture in commands)
    assert "### Transfer, measured" in body
