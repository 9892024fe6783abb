"""A run's life through real `train` processes: interrupted in each phase, under a file-size limit, run again.

One tiny image run (both recipes share this code, recipes.run_folder and recipes.training) with random
augmentation and dropout, so that a resumed run must restore the data stream and the seeds as well as the
weights:
- `straight`: the command run once, then again on its finished run;
- `resumed`: the same command interrupted (SIGINT) during epoch 2, run under `ulimit -f` (the backup of
  epoch 2 does not fit), then run until training ends and interrupted during evaluate, run again and
  interrupted during export, and run a last time.
"""

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from tests.recipes.parity import ROOT

pytestmark = pytest.mark.slow

FLAGS = ["--epochs", "3", "--steps-per-epoch", "3", "--batch-size", "16", "--image-size", "16", "--rand-augment",
         "--dropout", "0.1", "--determinism", "on", "--top-k", "3"]


# As a user runs it: the recipe hides TensorFlow's start-up logs itself (tests/conftest.py sets a level).
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def _command(out):
    return [sys.executable, "-m", "recipes.image_classification", "train", "--output", out, *FLAGS]


def _run(out, file_size_limit=None):
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit,) * 2)) if file_size_limit else None
    result = subprocess.run(_command(out), cwd=ROOT, capture_output=True, text=True, timeout=900, preexec_fn=limit,
                            env=ENV)
    return result.returncode, result.stdout, result.stderr


def _interrupted(out, ready):
    """Runs the command and sends SIGINT once `ready()` holds; returns (status, stdout, stderr)."""
    process = subprocess.Popen(_command(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=ENV)
    deadline = time.time() + 600
    while not ready() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=600)
    return process.returncode, stdout, stderr


def _done(out, phase):
    path = os.path.join(out, "run.json")
    try:
        return phase in json.load(open(path))["done"]
    except (OSError, ValueError):
        return False


def _digests(out):
    """sha256 of every file of a run but TensorBoard's logs."""
    found = {}
    for directory, _, files in os.walk(out):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.relpath(path, out).startswith("logs"):
                found[os.path.relpath(path, out)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def _versions(out):
    """The export versions written (a version is staged under another name until it is whole)."""
    base = os.path.join(out, "export", "image_classifier")
    return sorted(name for name in os.listdir(base) if name.isdigit()) if os.path.isdir(base) else []


def _arrays(path):
    """Every array of an HDF5 weights file (weights and optimizer state), by name."""
    arrays = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    straight, resumed = str(root / "straight"), str(root / "resumed")
    found = {"straight": _run(straight)}
    before = _digests(straight)
    found["again"] = _run(straight)
    found["unchanged"] = before == _digests(straight)
    backup = os.path.join(resumed, "backup")
    found["in_epoch_2"] = _interrupted(resumed, lambda: os.path.isdir(os.path.join(backup, "epoch-0001")))
    found["kept"] = sorted(os.listdir(backup))
    weights = os.path.join(backup, found["kept"][-1], "model.weights.h5")
    found["limited"] = _run(resumed, file_size_limit=os.path.getsize(weights) // 2)
    found["after_limit"] = sorted(os.listdir(backup))
    found["in_evaluate"] = _interrupted(resumed, lambda: _done(resumed, "train"))
    found["in_export"] = _interrupted(resumed, lambda: _done(resumed, "evaluate"))
    found["versions_then"] = _versions(resumed)
    found["last"] = _run(resumed)
    return straight, resumed, found


def test_train_on_a_finished_run_changes_nothing_and_says_why(runs):
    straight, _, found = runs
    status, stdout, stderr = found["straight"]
    assert status == 0, stderr[-3000:]
    status, stdout, stderr = found["again"]
    assert status == 1 and stdout == ""
    assert stderr.startswith(f"error: {straight} holds a finished run (trained 3 epochs, lowest validation loss ")
    assert "nothing was changed" in stderr and "--overwrite" in stderr and stderr.count("\n") == 1
    assert found["unchanged"]  # model, metrics, plots, checkpoints, config, exports: byte for byte


def test_a_run_interrupted_in_epoch_2_resumes_to_the_same_weights_bit_for_bit(runs):
    straight, resumed, found = runs
    status, stdout, stderr = found["in_epoch_2"]
    assert status == 130 and found["kept"] == ["epoch-0001"], (stdout[-2000:], stderr[-2000:])
    assert stderr.endswith(
        f"interrupted after the backup of epoch 1 (in {resumed}/backup): `python -m recipes.image_classification "
        f"train --output {resumed}` resumes from it (the run's flags are saved in {resumed}/config.json)\n")
    status, stdout, stderr = found["in_evaluate"]
    assert f"resuming at epoch 2 of 3 from {resumed}/backup/epoch-0001" in stdout, stderr[-3000:]
    assert "Epoch 1/3" not in stdout and "Epoch 2/3" in stdout
    assert "training took" in stdout and "s in all with the earlier runs' epochs" in stdout
    # The last epoch's backup (weights and optimizer state) and the saved model: the same arrays.
    for name in ("backup/epoch-0003/model.weights.h5", "checkpoints/best.weights.h5"):
        expected, got = _arrays(os.path.join(straight, name)), _arrays(os.path.join(resumed, name))
        assert expected.keys() == got.keys() and len(expected) > 100
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{name}: {key}")
    straight_run, resumed_run = (json.load(open(os.path.join(d, "run.json"))) for d in (straight, resumed))
    assert resumed_run["training"]["val_loss"] == straight_run["training"]["val_loss"]
    assert resumed_run["training"]["best_epoch"] == straight_run["training"]["best_epoch"]


def test_a_file_size_limit_during_training_is_one_line_and_the_next_run_resumes(runs):
    _, resumed, found = runs
    status, stdout, stderr = found["limited"]
    assert status == 1, (stdout[-2000:], stderr[-2000:])
    assert stderr.startswith(f"error: No room to write the backup of epoch 2 in {resumed}/backup (File too large: "
                             "past the file-size limit of ") and stderr.count("\n") == 1
    assert "The backup of epoch 1 is intact" in stderr and "resumes from it once there is room" in stderr
    assert found["after_limit"] == ["epoch-0001"]  # intact, nothing half-written left
    assert f"resuming at epoch 2 of 3 from {resumed}/backup/epoch-0001" in found["in_evaluate"][1]


def test_interrupted_evaluate_and_export_finish_without_training(runs):
    _, resumed, found = runs
    status, _, stderr = found["in_evaluate"]
    assert status == 130 and stderr.endswith(
        f"interrupted before evaluate finished: training is finished and the model saved in {resumed}/model; "
        f"`python -m recipes.image_classification train --output {resumed}` evaluates and exports it without "
        "training again\n")
    status, stdout, stderr = found["in_export"]
    assert status == 130 and "Epoch" not in stdout
    assert f"(trained earlier: finishing evaluate and export without training; config from" in stdout
    assert stderr.endswith(
        "interrupted before export finished: no version was written (a version is written whole or not at all); "
        f"`python -m recipes.image_classification train --output {resumed}` exports without training again\n")
    assert found["versions_then"] == []
    status, stdout, stderr = found["last"]
    assert status == 0 and "Epoch" not in stdout and "finishing export without training" in stdout, stderr[-3000:]
    assert _versions(resumed) == ["1"]
    assert json.load(open(os.path.join(resumed, "run.json")))["done"] == ["train", "evaluate", "export"]
    assert set(json.load(open(os.path.join(resumed, "metrics.json")))) == {"top1", "top3", "test_images"}
