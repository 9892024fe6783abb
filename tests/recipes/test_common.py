"""The recipes' shared command line and training glue (fast: no recipe runs end to end)."""

import argparse
import dataclasses
import json
import os
import types

import keras
import numpy as np
import pytest

from recipes import commands, common, image_classification, run_folder, trained_model, training, translation
from zoo.layers import MultiHeadAttention
from zoo.models import TransformerTranslator, VisionTransformer

RECIPES = {
    "translation": (translation, translation.TranslationConfig),
    "image_classification": (image_classification, image_classification.ImageClassificationConfig),
}
CHOICES = {"preset", "overlong", "distribute", "determinism", "mixed_precision"}


def _help(recipe, *argv):
    with pytest.raises(SystemExit) as exit_info:
        recipe.parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    return exit_info


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("command", ["train", "evaluate", "export"])
def test_every_command_runs_in_the_default_output_directory(name, command, tmp_path, monkeypatch):
    """Leaving out --output was an AttributeError: the flag's SUPPRESS default left no `args.output`."""
    module, config_class = RECIPES[name]
    monkeypatch.chdir(tmp_path)
    args = module.parse_args([command, "--epochs", "3"])
    received = []
    commands.run_command(args, config_class, {command: lambda config, run=None: received.append(config) or "v/1"}, name)
    assert received[0].output == config_class.output == f"runs/{name}" and received[0].epochs == 3


def test_the_directory_used_is_the_output_even_when_the_saved_config_names_another(tmp_path):
    run = tmp_path / "moved"
    run.mkdir()
    config = translation.TranslationConfig(output="runs/elsewhere", epochs=5)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    args = translation.parse_args(["evaluate", "--output", str(run)])
    loaded = common.config_from_args(args, translation.TranslationConfig, str(run / "config.json"))
    assert loaded.output == str(run) and loaded.epochs == 5
    (run / "config.json").write_text('{"epochs": 0}')
    with pytest.raises(ValueError, match=r"--epochs must be at least 1. Received: 0"):
        common.config_from_args(args, translation.TranslationConfig, str(run / "config.json"))
    (run / "config.json").write_text('{"epochs": ')
    with pytest.raises(ValueError, match=r"config.json is not a saved config"):
        common.config_from_args(args, translation.TranslationConfig, str(run / "config.json"))
    (run / "config.json").write_text('[5]')
    with pytest.raises(ValueError, match=r"config.json is not a saved config: it holds a JSON list, not an object$"):
        common.config_from_args(args, translation.TranslationConfig, str(run / "config.json"))


def test_read_json_object_says_what_the_file_is_not_and_the_remedy(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"done": ["train"]}')
    assert common.read_json_object(path, "a run state") == {"done": ["train"]}
    path.write_bytes(b'{"done": "\xe9"}')  # not UTF-8
    with pytest.raises(ValueError, match=r"run.json is not a run state: 'utf-8' codec can't decode .*; delete it$"):
        common.read_json_object(path, "a run state", remedy="delete it")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_subcommand_help_describes_itself_and_each_flag(name, capsys):
    module, config_class = RECIPES[name]
    _help(module)
    top = capsys.readouterr().out
    commands = ["train", "evaluate", "export", "translate" if name == "translation" else "classify"]
    for command in commands:
        assert command in top
    for command in commands:
        _help(module, command)
        text = " ".join(capsys.readouterr().out.split())  # unwrapped
        description = text.split("options:")[0].split("]")[-1]
        assert len(description.split()) >= 8, f"{command} has no description: {text[:300]}"
        assert "--verbose" in text
        if command in ("translate", "classify"):
            assert "--model" in text and "highest version" in text
            continue
        for field in dataclasses.fields(config_class):
            flag = "--" + field.name.replace("_", "-")
            assert flag in text
            if field.type is bool:
                assert f"{flag}, --no-{flag[2:]}" in text
            else:
                assert f"(default: {field.default}" in text
            if field.name in CHOICES:
                choices = field.metadata["choices"]
                choices = choices() if callable(choices) else choices
                assert f"{flag} {{{','.join(choices)}}}" in text


def test_classify_help_says_what_digit_images_look_like(capsys):
    _help(image_classification, "classify")
    text = " ".join(capsys.readouterr().out.split())
    assert "white" in text and "black background" in text and "thick" in text and "filling the frame" in text


def test_preset_choices_are_the_models_presets():
    assert translation.PRESETS() == tuple(TransformerTranslator.presets())
    assert image_classification.PRESETS() == tuple(VisionTransformer.presets())


def test_boolean_flags_are_switches_and_optional_ones_reset():
    assert translation.parse_args(["train", "--lowercase"]).lowercase is True
    assert translation.parse_args(["train", "--no-lowercase"]).lowercase is False
    assert not hasattr(translation.parse_args(["train"]), "lowercase")  # the saved config decides
    args = image_classification.parse_args(["train", "--no-random-crop", "--rand-augment", "--dropout", "none"])
    assert (args.random_crop, args.rand_augment, args.dropout) == (False, True, None)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "csv:corpus.csv"], "argument --data: expected one of builtin, tsv:PATH, tfds:NAME; "
                                                "received 'csv:corpus.csv'"),
        (["train", "--data", "tsv:"], "argument --data: expected one of"),
        (["train", "--epochs", "0"], "argument --epochs: must be at least 1, received '0'"),
        (["train", "--batch-size", "many"], "argument --batch-size: expected int, received 'many'"),
        (["train", "--overlong", "cut"], "argument --overlong: invalid choice: 'cut'"),
        (["train", "--preset", "transformer_small"], "argument --preset: invalid choice: 'transformer_small'"),
        (["train", "--lowercase", "true"], "unrecognized arguments: true"),
        (["translate"], "the following arguments are required: --model"),
    ],
)
def test_flag_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        translation.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--help` lists the flags" in err


def test_command_line_turns_errors_into_one_line_and_a_status(capsys):
    with pytest.raises(SystemExit) as exit_info:
        with common.command_line():
            raise FileNotFoundError("No trained model at runs/x/model.keras; run train first.")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "error: No trained model at runs/x/model.keras; run train first. (--verbose shows the traceback)\n"
    )
    # A layer error inside Keras' "Exception encountered when calling" frame keeps only the message.
    mha, x = MultiHeadAttention(num_heads=2, key_dim=4), np.ones((1, 3, 8), "float32")
    mha(x, x)
    with pytest.raises(SystemExit):
        with common.command_line():
            mha(x[..., :4], x)
    err = capsys.readouterr().err
    assert err.startswith("error: MultiHeadAttention was built for query of width 8") and err.count("\n") == 1
    assert "Exception encountered" not in err and "Arguments received" not in err
    with pytest.raises(RuntimeError, match="kept"):  # --verbose: the exception and its traceback
        with common.command_line(verbose=True):
            raise RuntimeError("kept")
    with pytest.raises(SystemExit):
        with common.command_line():
            raise RuntimeError("unexpected")
    assert capsys.readouterr().err.startswith("error: RuntimeError: unexpected")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, as planned
def test_a_ctrl_c_that_python_swallows_still_ends_the_phase_and_the_command(capsys):
    """A KeyboardInterrupt raised in a `__del__` (or a gc callback: JAX's, in CI) is dropped by Python."""
    import gc
    import signal

    class SendsCtrlC:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, in __del__: its exception is dropped

    after = []
    with pytest.raises(SystemExit) as exit_info:
        with common.command_line():
            common.on_interrupt("interrupted before evaluate finished")
            SendsCtrlC()
            gc.collect()
            after.append("the block went on")  # as it does in a real run: nothing stopped it here
            with common.interrupts_deferred():  # a change of state is made whole, then the Ctrl-C ends it
                after.append("state written")
            after.append("not reached")
    assert exit_info.value.code == 130 and after == ["the block went on", "state written"]
    err = capsys.readouterr().err
    assert err.endswith("interrupted before evaluate finished\n")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back; the next command starts clean
    with common.command_line():
        common.raise_if_interrupted()


def test_startup_noise_pattern_hides_notices_and_keeps_the_rest():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795996742.660727    6094 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1795996742.661054    6094 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.",
    ]
    kept = ["E0000 00:00:1795996748.592156 6094 some_op.cc:52] a real failure", "Traceback (most recent call last):"]
    assert all(common._STARTUP_NOISE.match(line) for line in noise)
    assert not any(common._STARTUP_NOISE.match(line) for line in kept)


def _diverging_fit(tmp_path, epochs, patience):
    """A linear model trained on y = x.w and validated on y = -x.w: validation loss rises every epoch."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], "float32")[:, None]
    import tensorflow as tf

    # Filtered: of unknown length, as the recipes' bucketed batches are.
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).filter(lambda *_: True)
    validation = tf.data.Dataset.from_tensor_slices((x, -y)).batch(16).filter(lambda *_: True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    config = translation.TranslationConfig(output=str(tmp_path), patience=patience, epochs=epochs)
    run = run_folder.RunFolder(str(tmp_path), "translation")
    run.plan_train({})
    run.config = config
    run.prepare_training()
    history = training.fit(model, train, validation, config, run)
    return model, history


def test_early_stopping_says_when_and_why_and_keeps_the_best_weights_and_the_last_backup(tmp_path, capsys, recwarn):
    model, history = _diverging_fit(tmp_path, epochs=10, patience=2)
    out = capsys.readouterr().out
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]  # the end of an epoch is not a problem
    assert len(history.epoch) == 3  # epoch 1 best, 2 and 3 worse: stopped
    assert history.history["loss"][0] > 0 and "4/4" in out  # 4 batches an epoch: counted in one pass
    best = os.path.join(str(tmp_path), "checkpoints", "best.weights.h5")
    assert (
        "Training stopped early after epoch 3 of 10: validation loss did not improve for 2 epochs; "
        f"kept the weights of epoch 1 (lowest validation loss, {history.history['val_loss'][0]:.4f}), also in {best}."
    ) in out
    # The best epoch's weights, and the backup of the last epoch only (for --epochs to continue from).
    assert os.listdir(os.path.join(str(tmp_path), "checkpoints")) == ["best.weights.h5"]
    assert os.listdir(os.path.join(str(tmp_path), "backup")) == ["epoch-0003"]
    state = json.load(open(tmp_path / "run.json"))["training"]
    assert (state["epochs_done"], state["best_epoch"], state["stopped_early"]) == (3, 1, True)
    assert state["val_loss"] == pytest.approx(history.history["val_loss"][0])
    kept = [w.copy() for w in model.get_weights()]
    model.load_weights(best)
    for a, b in zip(kept, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Killed before the model was saved: the same command resumes after the last epoch, trains no more (early
    # stopping had stopped it) and ends with the same weights and the same summary.
    again, _ = _diverging_fit(tmp_path, epochs=10, patience=2)
    out = capsys.readouterr().out
    assert f"resuming after epoch 3 of 10 from {tmp_path}/backup/epoch-0003: no epoch is left to train" in out
    assert "Training stopped early after epoch 3 of 10" in out and "Epoch " not in out
    for a, b in zip(kept, again.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_summary_of_a_run_that_used_every_epoch():
    stopper = types.SimpleNamespace(stopped_epoch=0, patience=3, best_weights=[1], best_epoch=6, best=0.25)
    assert training.training_summary(stopper, 8, 8, "runs/t") == (
        "Training ran 8 of 8 epochs; kept the weights of epoch 7 (lowest validation loss, 0.2500), "
        "also in runs/t/checkpoints/best.weights.h5."
    )
    stopper.best_weights = None
    assert training.training_summary(stopper, 1, 1, "runs/t") == (
        "Training ran 1 of 1 epochs; kept the last epoch's weights."
    )


def test_saved_model_version_takes_the_highest_version_or_names_what_it_expected(tmp_path):
    for version in ("1", "2", "10"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "tmp-3").mkdir()
    assert trained_model.saved_model_version(str(tmp_path), "x") == str(tmp_path / "10")
    assert trained_model.saved_model_version(str(tmp_path / "2"), "x") == str(tmp_path / "2")
    with pytest.raises(FileNotFoundError, match=r"No SavedModel at '.*missing'. Expected an export directory such as "
                                                r"runs/t/export/translator/1"):
        trained_model.saved_model_version(str(tmp_path / "missing"), "runs/t/export/translator/1")


def test_data_spec_type():
    parse = common.data_spec("builtin", "tsv:PATH", "tfds:NAME")
    assert parse("builtin") == "builtin" and parse("tsv:a.tsv") == "tsv:a.tsv" and parse("tfds:x/y") == "tfds:x/y"
    for bad in ("", "tsv", "tsv:", "folder:x", "BUILTIN"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


DETERMINISM = r"""
import hashlib, json, sys
import numpy as np
from recipes import image_classification as ic, training, translation as tr

out, corpus, determinism = sys.argv[1:]


def digest(model):
    return hashlib.sha1(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()


def image_run():
    config = ic.ImageClassificationConfig(output=out + "/vit", batch_size=16, rand_augment=True, mixup_alpha=0.2,
                                          determinism=determinism)
    training.seed_everything(config.seed, config.determinism)
    data, batches = ic.load_run(config)
    model = ic.build_model(config, len(data.class_names))
    ic.compile_model(model, config, steps_per_epoch=3)
    model.fit(batches["train"].repeat(), epochs=1, steps_per_epoch=3, verbose=0)
    return digest(model)


def translation_run():
    config = tr.TranslationConfig(output=out + "/translation", data="tsv:" + corpus, num_layers=1, batch_size=16,
                                  determinism=determinism)
    training.seed_everything(config.seed, config.determinism)
    _, source, target, batches = tr.load_run(config)
    model = tr.build_model(config, source, target)
    tr.compile_model(model, config)
    model.fit(batches["train"].repeat(), epochs=1, steps_per_epoch=3, verbose=0)
    return digest(model)


print(json.dumps({"image": [image_run(), image_run()], "translation": [translation_run(), translation_run()]}))
"""


@pytest.mark.slow
def test_training_on_cpu_is_deterministic(tmp_path):
    """Two short trainings of each recipe, as `train` seeds them, give the same weights bit for bit.

    Without op determinism the image recipe's augmentation (Keras random
    layers in a parallel tf.data map) differs from run to run.
    """
    import json
    import subprocess
    import sys

    from tests.recipes.parity import ROOT

    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"sentence number {i}\tSatz Nummer {i}\n" for i in range(300)))
    result = subprocess.run([sys.executable, "-c", DETERMINISM, str(tmp_path), str(corpus), "auto"], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = json.loads(result.stdout.strip().splitlines()[-1])
    assert digests["image"][0] == digests["image"][1]
    assert digests["translation"][0] == digests["translation"][1]


@pytest.mark.parametrize("tool, argv, message", [
    ("convert_vit.py", ["hf", "/nonexistent"], "Expected an HF checkpoint folder"),
    ("convert_marian.py", ["/nonexistent"], "MarianMT checkpoint folder not found: /nonexistent"),
    ("convert_vit.py", ["timm", "vit.pth", "--pretrained-cfg", "/nonexistent/cfg.json"], "Missing cfg.json in /nonexistent."),
])
def test_conversion_tools_report_errors_in_one_line(tool, argv, message, tmp_path, monkeypatch, capsys):
    import runpy
    import sys

    from tests.recipes.parity import ROOT

    monkeypatch.setattr(sys, "argv", [tool, *argv, "--output", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(os.path.join(ROOT, "tools", tool), run_name="__main__")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
