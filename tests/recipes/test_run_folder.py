"""What `train` does with an existing --output (recipes.run_folder), on folders written by hand (fast).

The end-to-end runs (real training, interruptions, a file-size limit) are in test_run_lifecycle.py.
"""

import dataclasses
import errno
import json
import os

import pytest

from recipes import disk_space, run_backup, run_folder, translation
from recipes.train_lock import train_lock


def _config(directory, **fields):
    config = translation.TranslationConfig(output=str(directory), **fields)
    os.makedirs(directory, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    return config


def _generation(directory, epoch, weights=b"weights"):
    """A backup generation as recipes.run_backup writes it (its weight file is a few bytes here)."""
    path = run_backup.generation_path(str(directory / "backup"), epoch)
    os.makedirs(path)
    with open(os.path.join(path, run_backup.WEIGHTS), "wb") as f:
        f.write(weights)
    state = {"format_version": run_backup.FORMAT_VERSION, "epoch": epoch,
             "files": {run_backup.WEIGHTS: run_backup.sha256(os.path.join(path, run_backup.WEIGHTS))}}
    with open(os.path.join(path, run_backup.STATE), "w") as f:
        json.dump(state, f)
    return path


def _finished(directory, epochs=3, done=("train", "evaluate", "export"), val_loss=1.5, with_backup=True):
    """A finished run's files: config, run.json, the task folder, metrics, export version 1, the last backup."""
    _config(directory, epochs=epochs)
    (directory / "model").mkdir()
    (directory / "model" / "task.json").write_text("{}")
    (directory / "metrics.json").write_text("{}")
    (directory / "export" / "translator" / "1").mkdir(parents=True)
    training = {"epochs": epochs, "epochs_done": epochs, "best_epoch": 2, "val_loss": val_loss, "seconds": 9.0}
    state = {"done": list(done), "training": training,
             "exports": [{"path": "export/translator/1", "val_loss": val_loss}]}
    (directory / "run.json").write_text(json.dumps(state))
    if with_backup:
        _generation(directory, epochs)


def _plan(directory, overwrite=False, **given):
    run = run_folder.RunFolder(str(directory), "translation")
    words = run.plan_train(given, overwrite)
    return run, words


def test_an_empty_folder_is_a_new_run_and_a_config_left_by_a_failed_one_is_ignored(tmp_path):
    run, words = _plan(tmp_path / "run")
    assert (run.plan, run.trains, words) == (run_folder.NEW, True, "new run")
    _config(tmp_path / "run", epochs=7)
    run, words = _plan(tmp_path / "run")
    assert run.plan == run_folder.NEW and "ignoring" in words and "finished no epoch" in words


def test_a_backup_resumes_from_the_newest_generation_that_reads_whole(tmp_path, capsys):
    _config(tmp_path, epochs=5)
    _generation(tmp_path, 1)
    newest = _generation(tmp_path, 2)
    run, words = _plan(tmp_path, epochs=5, batch_size=32)
    assert (run.plan, run.resume.epoch) == (run_folder.RESUME, 2) and words.startswith("resuming an interrupted run")
    assert words.endswith("; changed from its config.json: --batch-size")  # --epochs 5 is its own
    with open(os.path.join(newest, run_backup.WEIGHTS), "ab") as f:  # damaged after it was written
        f.write(b"!")
    run, _ = _plan(tmp_path)
    assert run.resume.epoch == 1
    assert capsys.readouterr().out == (
        f"warning: the backup {newest} is damaged (model.weights.h5 does not match its checksum); using an earlier "
        "one if there is one\n"
    )


def test_half_written_generations_are_named_and_removed_before_training(tmp_path, capsys):
    _config(tmp_path, epochs=5)
    _generation(tmp_path, 1)
    partial = tmp_path / "backup" / ".epoch-0002.partial"
    partial.mkdir()
    (partial / run_backup.WEIGHTS).write_bytes(b"half")
    run, _ = _plan(tmp_path)
    run.config = translation.TranslationConfig(output=str(tmp_path))
    run.prepare_training()
    assert capsys.readouterr().out.startswith(
        f"removing {partial}: a backup that was left half-written (interrupted, or out of space)")
    assert sorted(os.listdir(tmp_path / "backup")) == ["epoch-0001"] and run.resume.epoch == 1


def test_a_backup_of_keras_backup_and_restore_is_named(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    with pytest.raises(FileExistsError, match="backup of Keras' BackupAndRestore.*--overwrite starts the run again"):
        _plan(tmp_path)


def test_a_finished_run_is_refused_in_one_line_naming_what_it_holds_and_what_to_do(tmp_path):
    _finished(tmp_path)
    with pytest.raises(FileExistsError) as error:
        _plan(tmp_path, mixed_precision="mixed_bfloat16", epochs=3)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"{tmp_path} holds a finished run (trained 3 epochs, lowest validation loss 1.5000 at epoch 2; metrics in "
        f"{tmp_path}/metrics.json; exported {tmp_path}/export/translator/1); nothing was changed (flags that differ "
        "from its config.json: --mixed-precision). To train a new run in its place: --overwrite (export/ is kept); "
        "to train it more, --epochs above its 3; or choose another --output."
    )


def test_a_run_from_before_run_json_is_finished_when_its_files_say_so(tmp_path):
    _config(tmp_path, epochs=3)
    (tmp_path / "model.keras").write_bytes(b"")  # a run folder from before task folders
    (tmp_path / "metrics.json").write_text("{}")
    run, words = _plan(tmp_path)
    assert run.plan == run_folder.FINISH and words.startswith("trained earlier: finishing export without training")
    (tmp_path / "export" / "translator" / "1").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"holds a finished run \(trained; metrics in .*; exported"):
        _plan(tmp_path)
    with pytest.raises(FileExistsError, match="without a backup of its last epoch to continue from"):
        _plan(tmp_path, epochs=5)


def test_phases_left_are_finished_without_training(tmp_path):
    _finished(tmp_path, done=("train",))
    run, words = _plan(tmp_path)
    assert (run.plan, run.trains) == (run_folder.FINISH, False)
    assert words == (f"trained earlier: finishing evaluate and export without training; config from "
                     f"{tmp_path}/config.json and flags")


def test_more_epochs_continue_from_the_last_epoch(tmp_path):
    _finished(tmp_path, epochs=3)
    run, words = _plan(tmp_path, epochs=5)
    assert (run.plan, run.resume.epoch, run.continuing) == (run_folder.CONTINUE, 3, True)
    assert words.startswith("continuing the finished run from epoch 3 to 5")
    with pytest.raises(FileExistsError):
        _plan(tmp_path, epochs=2)  # not above its own: nothing to do


def test_overwrite_sets_the_run_aside_until_the_new_one_finishes_an_epoch(tmp_path, capsys):
    _finished(tmp_path)
    (tmp_path / "logs").mkdir()
    run, words = _plan(tmp_path, overwrite=True)
    assert run.plan == run_folder.NEW and "set aside" in words
    run.config = translation.TranslationConfig(output=str(tmp_path), epochs=2)
    run.prepare_training()
    assert sorted(os.listdir(tmp_path)) == [".earlier-run", "export"]
    (tmp_path / "logs").mkdir()  # the new run's
    run.put_back_earlier_run()  # it stopped before its first epoch
    earlier = ["backup", "config.json", "export", "logs", "metrics.json", "model", "run.json"]
    assert sorted(os.listdir(tmp_path)) == earlier
    assert "is back as it was" in capsys.readouterr().out
    # Again; a kill leaves the earlier run aside: the next command puts it back.
    run, _ = _plan(tmp_path, overwrite=True)
    run.config = translation.TranslationConfig(output=str(tmp_path), epochs=2)
    run.prepare_training()
    run_folder.RunFolder(str(tmp_path), "translation").recover()
    assert (tmp_path / "model" / "task.json").exists() and not (tmp_path / ".earlier-run").exists()
    # Once the new run's first backup is complete, the earlier run goes; its exports' records stay.
    run, _ = _plan(tmp_path, overwrite=True)
    run.config = translation.TranslationConfig(output=str(tmp_path), epochs=2)
    run.prepare_training()
    run.commit(1)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "export", "run.json"]
    state = json.loads((tmp_path / "run.json").read_text())
    assert state == {"done": [], "exports": [{"path": "export/translator/1", "val_loss": 1.5}]}
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 2


def test_train_exports_only_a_model_with_a_lower_validation_loss(tmp_path):
    _finished(tmp_path, done=("train", "evaluate"), val_loss=1.5)
    run = run_folder.RunFolder(str(tmp_path), "translation")
    state = run.state()
    assert "not lower than that of" in run.export_refusal(state)  # the same model as export 1
    state["training"]["val_loss"] = 1.2
    assert run.export_refusal(state) is None
    (tmp_path / "export" / "translator" / "2").mkdir()  # written by an earlier version: no record
    assert "without a record of its validation loss" in run.export_refusal(state)
    exported = []
    run.finish(evaluate=lambda: exported.append("evaluate"), export=lambda: exported.append("export"))
    assert exported == []  # evaluate was done; export refused, and recorded as done
    assert json.loads((tmp_path / "run.json").read_text())["done"] == ["train", "evaluate", "export"]


def test_a_full_disk_and_a_file_size_limit_are_one_line_naming_the_folder(tmp_path):
    full = disk_space.out_of_space(OSError(errno.ENOSPC, "No space left on device"), "the backup of epoch 2",
                                   str(tmp_path), 32_900_000, "What to do.", free=1_200_000)
    assert str(full) == (
        f"No room to write the backup of epoch 2 in {tmp_path} (No space left on device: 1.2 MB free there; it "
        "needs about 32.9 MB). What to do."
    )
    h5py_like = RuntimeError("Can't write data (file write failed: errno = 27, error message = 'File too large')")
    assert "File too large" in str(disk_space.out_of_space(h5py_like, "x", str(tmp_path)))
    assert disk_space.out_of_space(ValueError("shapes differ"), "x", str(tmp_path)) is None
    with pytest.raises(disk_space.OutOfSpaceError, match=r"No room to write x in .* \(No space left on device"):
        disk_space.check_room("x", str(tmp_path), needed=10**18, largest_file=1)


def test_one_train_at_a_time_and_a_killed_ones_lock_is_taken_over(tmp_path):
    import subprocess
    import sys

    with train_lock(str(tmp_path)):
        assert (tmp_path / ".train.pid").read_text() == str(os.getpid())
        message = f"Another train \\(process {os.getpid()}\\) is running on {tmp_path}"
        with pytest.raises(FileExistsError, match=message):
            with train_lock(str(tmp_path)):
                pass
    assert not (tmp_path / ".train.pid").exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".train.pid").write_text(gone.stdout.strip())  # a train that was killed
    with train_lock(str(tmp_path)):
        assert (tmp_path / ".train.pid").read_text() == str(os.getpid())
    with train_lock(str(tmp_path / "new")):  # a train refused at once
        assert (tmp_path / "new" / ".train.pid").exists()
    assert not (tmp_path / "new").exists()  # leaves nothing behind
