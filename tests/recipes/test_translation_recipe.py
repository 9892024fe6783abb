"""End to end: the translation recipe trains, evaluates, plots, exports, serves, resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from recipes import translation
from tests.recipes.parity import ROOT, assert_mirrored_matches_single_device

SMOKE = ["--epochs", "1", "--steps-per-epoch", "4", "--eval-sentences", "8", "--beam-width", "2"]


def _recipe(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "recipes.translation", *args], cwd=ROOT, capture_output=True, text=True, **kwargs
    )


@pytest.mark.slow
def test_train_evaluate_export_and_translate(tmp_path):
    out = str(tmp_path / "run")
    translation.main(["train", "--output", out, "--num-layers", "1", *SMOKE])
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["sentences"] == 8 and 0.0 <= metrics["bleu"] <= 100.0 and "tok:13a" in metrics["bleu_signature"]
    assert os.path.getsize(os.path.join(out, "cross_attention.png")) > 10_000
    assert os.path.exists(os.path.join(out, "checkpoints", "epoch_001.weights.h5"))
    assert os.listdir(os.path.join(out, "logs"))  # TensorBoard
    version = os.path.join(out, "export", "translator", "1")
    assert os.path.exists(os.path.join(version, "assets.extra", "tf_serving_warmup_requests"))
    # The translate command runs the export as TF Serving would, args or stdin.
    by_args = _recipe("translate", "--model", version, "I buy three apples.", "", timeout=300)
    assert by_args.returncode == 0, by_args.stderr[-2000:]
    assert len(by_args.stdout.splitlines()) == 2
    by_stdin = _recipe("translate", "--model", version, input="I buy three apples.\n", timeout=300)
    assert by_stdin.stdout.splitlines()[0] == by_args.stdout.splitlines()[0]
    # `export` again writes the next version, never over the first.
    translation.main(["export", "--output", out])
    assert sorted(os.listdir(os.path.join(out, "export", "translator"))) == ["1", "2"]


@pytest.mark.slow
def test_killed_training_resumes_where_it_stopped(tmp_path):
    out = str(tmp_path / "run")
    command = ["train", "--output", out, "--num-layers", "1", "--epochs", "4", "--steps-per-epoch", "3",
               "--eval-sentences", "4", "--beam-width", "1"]
    first = subprocess.Popen([sys.executable, "-m", "recipes.translation", *command], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Keras' BackupAndRestore writes the weights, then this file, at each epoch end.
    metadata = os.path.join(out, "backup", "training_metadata.json")
    deadline = time.time() + 600
    while not (os.path.exists(metadata) and os.path.getsize(metadata)) and first.poll() is None \
            and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # right after epoch 1, long before epoch 4
    first.wait()
    assert os.path.exists(metadata), first.stdout.read()[-3000:]
    resumed_from = json.load(open(metadata))["epoch"]
    assert resumed_from >= 1 and not os.path.exists(os.path.join(out, "model.keras"))  # really interrupted
    second = _recipe(*command, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert "Epoch 1/4" not in log and f"Epoch {resumed_from + 1}/4" in log  # continued, not restarted
    assert os.path.exists(os.path.join(out, "model.keras"))


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_single_device():
    assert_mirrored_matches_single_device(
        """
        from recipes.translation import TranslationConfig, compile_model
        from zoo.models import TransformerTranslator

        rng = np.random.default_rng(0)
        source = rng.integers(4, 30, (32, 7)).astype("int32")
        target = rng.integers(4, 30, (32, 6)).astype("int32")
        inputs = {"source_ids": source, "target_ids": target}
        data = tf.data.Dataset.from_tensor_slices((inputs, np.roll(target, -1, 1))).batch(8)

        def build():
            model = TransformerTranslator(30, 30, 1, 1, 16, 2, 32, dropout=0.0, max_length=8)
            compile_model(model, TranslationConfig(warmup_steps=2))
            return model
        """
    )


def test_bad_recipe_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="Unknown TransformerTranslator preset 'transformer_small'"):
        translation.build_model(translation.TranslationConfig(preset="transformer_small"),
                                *[type("T", (), {"vocabulary_size": 10, "pad_id": 0, "start_id": 2, "end_id": 3})] * 2)
    from zoo.data.translation_data import DataError

    with pytest.raises(DataError, match="TSV file not found"):
        translation.main(["train", "--output", str(tmp_path / "x"), "--data", f"tsv:{tmp_path}/missing.tsv"])
    with pytest.raises(ValueError, match="Unknown --distribute 'tpu-pod'"):
        with __import__("recipes.common").common.strategy_scope("tpu-pod"):
            pass
