"""How a run's saved config and the command line combine, and the recipes'
`evaluate` and `export` subcommands and training flags, through `main(argv)`.

The rule (README: "The run's config is saved in `<output>/config.json`;
`evaluate` and `export` reuse it"), for `evaluate`, `export` and a `train`
that resumes a run (a backup of a finished epoch exists) alike:
1. a flag given on the command line wins, even when it equals the default;
2. a field not given comes from the saved run's `config.json`;
3. only a field neither gives (e.g. a config saved by an older version)
   takes the dataclass default.
A `train` that starts a run ignores a `config.json` left by one that
finished no epoch. `evaluate` and `export` never rewrite `config.json`: it
records the training.

The quick tests replace the three commands by functions that return the
config they are handed; the slow ones run tiny trainings end to end and
observe only files, exports and the printed log.
"""

import contextlib
import dataclasses
import io
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import image_classification, translation

CONFIGS = {translation: translation.TranslationConfig, image_classification: image_classification.ImageClassificationConfig}
# Per recipe: two int fields whose saved values differ from their defaults.
FIELDS = {translation: ("epochs", "beam_width"), image_classification: ("epochs", "top_k")}


def _handed_config(recipe, argv, monkeypatch):
    handed = []
    for command in ("train", "evaluate", "export"):
        monkeypatch.setattr(recipe, command, lambda config, run=None: handed.append(config) or "export/x/1")
    recipe.main(argv)
    return handed[-1]


def _backup(directory, epoch=1):
    """A backup of a finished epoch, as recipes.run_backup writes it (no weight files): the run resumes."""
    from recipes import run_backup

    path = run_backup.generation_path(os.path.join(directory, "backup"), epoch)
    os.makedirs(path)
    with open(os.path.join(path, run_backup.STATE), "w") as f:
        json.dump({"format_version": run_backup.FORMAT_VERSION, "epoch": epoch, "files": {}}, f)


def _save(directory, config_class, **fields):
    """Writes `<directory>/config.json` as a run would (`output` defaults to the directory)."""
    os.makedirs(directory, exist_ok=True)
    saved = dataclasses.asdict(config_class(**{"output": str(directory), **fields}))
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(saved, f)
    return saved


def _flag(name):
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("recipe", [translation, image_classification], ids=["translation", "image"])
@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_flags_win_over_the_saved_config_which_wins_over_defaults(recipe, command, tmp_path, monkeypatch):
    config_class, (first, second) = CONFIGS[recipe], FIELDS[recipe]
    defaults = config_class()
    saved_first, saved_second = getattr(defaults, first) + 5, getattr(defaults, second) + 2
    _save(tmp_path, config_class, **{first: saved_first, second: saved_second, "seed": 11})
    _backup(tmp_path)
    config = _handed_config(recipe, [command, "--output", str(tmp_path), _flag(first), "1"], monkeypatch)
    assert getattr(config, first) == 1  # given
    assert getattr(config, second) == saved_second and config.seed == 11  # saved
    # A flag equal to the default still wins over the saved value.
    default_first = str(getattr(defaults, first))
    config = _handed_config(recipe, [command, "--output", str(tmp_path), _flag(first), default_first], monkeypatch)
    assert getattr(config, first) == getattr(defaults, first) and getattr(config, second) == saved_second


@pytest.mark.parametrize("recipe", [translation, image_classification], ids=["translation", "image"])
def test_fields_missing_from_an_older_saved_config_take_their_defaults(recipe, tmp_path, monkeypatch):
    config_class, (first, second) = CONFIGS[recipe], FIELDS[recipe]
    saved = _save(tmp_path, config_class, **{first: 2})
    _backup(tmp_path)
    del saved[second]
    saved["field_of_another_version"] = 1  # unknown entries are ignored
    with open(tmp_path / "config.json", "w") as f:
        json.dump(saved, f)
    config = _handed_config(recipe, ["evaluate", "--output", str(tmp_path)], monkeypatch)
    assert getattr(config, first) == 2 and getattr(config, second) == getattr(config_class(), second)


@pytest.mark.parametrize("recipe", [translation, image_classification], ids=["translation", "image"])
def test_output_flag_and_optional_fields(recipe, tmp_path, monkeypatch):
    # The run lives where --output says, whatever the copied config.json says;
    # None-able fields take a flag over a saved value, and keep a saved one.
    config_class = CONFIGS[recipe]
    _save(tmp_path, config_class, output="/somewhere/else", dropout=0.3)
    config = _handed_config(recipe, ["export", "--output", str(tmp_path)], monkeypatch)
    assert config.output == str(tmp_path) and config.dropout == 0.3
    config = _handed_config(recipe, ["train", "--output", str(tmp_path), "--dropout", "0.2"], monkeypatch)
    assert config.dropout == 0.2
    fresh = tmp_path / "fresh"
    config = _handed_config(recipe, ["train", "--output", str(fresh), "--epochs", "3"], monkeypatch)
    assert config == config_class(output=str(fresh), epochs=3)  # no saved run: flags over defaults


@pytest.mark.parametrize("recipe", [translation, image_classification], ids=["translation", "image"])
def test_train_ignores_a_config_left_by_a_run_that_finished_no_epoch(recipe, tmp_path, monkeypatch, capsys):
    """A `train` that failed before its first epoch (bad data, a typo) used to leave config.json, which
    every later `train` on that --output silently reused."""
    config_class, (first, _) = CONFIGS[recipe], FIELDS[recipe]
    _save(tmp_path, config_class, **{first: 7, "seed": 11})
    config = _handed_config(recipe, ["train", "--output", str(tmp_path)], monkeypatch)
    assert config == config_class(output=str(tmp_path))
    printed = capsys.readouterr().out
    assert f"(new run; ignoring {tmp_path}/config.json, left by a run that finished no epoch)" in printed


# -- end to end --------------------------------------------------------------


def _main(recipe, argv):
    """Runs a recipe command; returns what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        recipe.main(argv)
    return printed.getvalue()


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _versions(output, name):
    return sorted(os.listdir(os.path.join(output, "export", name)), key=int)


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    from zoo.data.builtin_translation import generate_pairs, write_tsv

    root = tmp_path_factory.mktemp("translation")
    tsv = str(root / "pairs.tsv")
    write_tsv(generate_pairs(400, seed=1), tsv)
    output = str(root / "run")
    printed = _main(translation, [
        "train", "--output", output, "--data", f"tsv:{tsv}", "--num-layers", "1", "--d-model", "32",
        "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16", "--vocabulary-size", "400",
        "--max-length", "20", "--overlong", "drop", "--eval-sentences", "4", "--beam-width", "2",
        "--length-penalty", "1.0",
    ])
    return output, printed


def _translate(version, sentences):
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    out = tf.saved_model.load(version).signatures["serving_default"](sentences=tf.constant(sentences))
    return [t.decode() for t in out["translations"].numpy()], out["scores"].numpy()


@pytest.mark.slow
def test_translation_train_saves_its_config_and_drops_overlong_pairs(translation_run):
    output, printed = translation_run
    saved = _read_json(os.path.join(output, "config.json"))
    assert (saved["overlong"], saved["max_length"], saved["eval_sentences"], saved["length_penalty"]) == ("drop", 20, 4, 1.0)
    assert saved["patience"] == translation.TranslationConfig().patience  # not given: the default
    # --overlong drop: pairs over 20 tokens are dropped, none truncated.
    train = re.search(r"train: (\d+) pairs kept, (\d+) truncated, (\d+) dropped as too long", printed)
    assert train and int(train[1]) > 0 and int(train[2]) == 0 and int(train[3]) > 0, printed[-2000:]


@pytest.mark.slow
def test_translation_evaluate_uses_the_saved_config_and_flags(translation_run):
    output, _ = translation_run
    saved = open(os.path.join(output, "config.json")).read()
    _main(translation, ["evaluate", "--output", output])
    assert _read_json(os.path.join(output, "metrics.json"))["sentences"] == 4  # saved, not the default 1000
    _main(translation, ["evaluate", "--output", output, "--eval-sentences", "2"])
    assert _read_json(os.path.join(output, "metrics.json"))["sentences"] == 2
    assert open(os.path.join(output, "config.json")).read() == saved


@pytest.mark.slow
def test_translation_export_after_train_uses_the_saved_config_and_flags(translation_run):
    output, _ = translation_run
    sentences = ["I buy three apples.", "We are travelling to Spain by train."]
    first = _translate(os.path.join(output, "export", "translator", "1"), sentences)  # written by train
    _main(translation, ["export", "--output", output])
    _main(translation, ["export", "--output", output, "--length-penalty", "0.0"])
    assert _versions(output, "translator") == ["1", "2", "3"]
    again = _translate(os.path.join(output, "export", "translator", "2"), sentences)
    assert again[0] == first[0]
    np.testing.assert_allclose(again[1], first[1], atol=1e-6)  # the saved length penalty 1.0, not 0.6
    raw = _translate(os.path.join(output, "export", "translator", "3"), sentences)
    assert np.all(np.abs(raw[1] - first[1]) > 1e-3)  # log P, not log P / penalty


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    output = str(tmp_path_factory.mktemp("image") / "run")
    try:
        printed = _main(image_classification, [
            "train", "--output", output, "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16",
            "--image-size", "16", "--top-k", "3", "--mixed-precision", "mixed_bfloat16",
            "--gradient-clip-norm", "0.5",
        ])
    finally:
        keras.config.set_dtype_policy("float32")  # the recipe sets the global policy
    return output, printed


def _trained_model(output):
    """The compiled model of the run's task folder (`<output>/model/model.keras`)."""
    return keras.saving.load_model(os.path.join(output, "model", "model.keras"))


@pytest.mark.slow
def test_image_training_flags_reach_the_model(image_run):
    output, _ = image_run
    model = _trained_model(output)
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model.optimizer.global_clipnorm == pytest.approx(0.5)
    saved = _read_json(os.path.join(output, "config.json"))
    assert (saved["image_size"], saved["top_k"], saved["mixed_precision"]) == (16, 3, "mixed_bfloat16")


@pytest.mark.slow
def test_image_evaluate_uses_the_saved_config_and_flags(image_run):
    output, _ = image_run
    metrics = os.path.join(output, "metrics.json")
    assert set(_read_json(metrics)) == {"top1", "top3", "test_images"}  # written by train
    _main(image_classification, ["evaluate", "--output", output])
    assert set(_read_json(metrics)) == {"top1", "top3", "test_images"}  # saved top_k, not the default 5
    _main(image_classification, ["evaluate", "--output", output, "--top-k", "2"])
    assert set(_read_json(metrics)) == {"top1", "top2", "test_images"}


@pytest.mark.slow
def test_image_export_uses_the_saved_config_and_flags(image_run):
    from zoo.data.image_data import load_image_data

    output, _ = image_run
    _main(image_classification, ["export", "--output", output, "--top-k", "2"])
    assert _versions(output, "image_classifier") == ["1", "2"]
    images = load_image_data("builtin").test[0][:3]
    request = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    outputs = [
        tf.saved_model.load(os.path.join(output, "export", "image_classifier", v)).signatures["serving_default"](
            image_bytes=request
        )
        for v in ("1", "2")
    ]
    assert outputs[0]["top_k_labels"].shape == (3, 3) and outputs[1]["top_k_labels"].shape == (3, 2)
    # Both resize to the saved image size (16), not the default 32.
    np.testing.assert_allclose(outputs[1]["probabilities"].numpy(), outputs[0]["probabilities"].numpy(), atol=1e-6)
