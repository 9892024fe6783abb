"""zoo.tasks.task.Task: a folder that appears whole under kill -9 and is checked file by file on load.

`TinyTask` is the smallest real task (a Keras model, settings, one file of
its own), so that the base class's save and load are tested apart from
what Translator and ImageClassifier add.
"""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.tasks.conftest import ROOT
from zoo.export import staging_folder
from zoo.tasks import Task


class TinyTask(Task):
    files = ("notes/tag.txt",)

    def __init__(self, model, tag):
        super().__init__(model)
        self.tag = tag

    def get_settings(self):
        return {"tag": self.tag}

    def _write_files(self, directory):
        os.makedirs(os.path.join(directory, "notes"))
        with open(os.path.join(directory, "notes", "tag.txt"), "w") as f:
            f.write(self.tag)

    @classmethod
    def _from_folder(cls, directory, model, settings):
        with open(os.path.join(directory, "notes", "tag.txt")) as f:
            assert f.read() == settings["tag"]
        return cls(model, settings["tag"])


def tiny_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def _hidden(parent):
    return sorted(name for name in os.listdir(parent) if name.startswith("."))


# The child saves "new" over the folder and is killed at `point` (patches installed once model.keras is
# written, so that only the save's own renames and removals count).
_SAVE_AND_DIE = """
import os, shutil, signal, sys
from tests.tasks.test_task import TinyTask, tiny_model
folder, point = sys.argv[1:]
die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
write_files = TinyTask._write_files
def write_then_arm(self, directory):
    if point == "writing":
        die()
    write_files(self, directory)
    if point == "between the renames":
        rename, calls = os.rename, []
        def rename_once(a, b):
            if calls:
                die()
            calls.append(a)
            rename(a, b)
        os.rename = rename_once
    if point == "after the swap":
        shutil.rmtree = die
TinyTask._write_files = write_then_arm
TinyTask(tiny_model(1), "new").save(folder, overwrite=True)
"""


@pytest.mark.parametrize(
    "point, expected",
    [("writing", "old"), ("between the renames", "new"), ("after the swap", "new")],
)
def test_a_save_killed_at_any_point_leaves_the_old_or_the_new_folder(tmp_path, point, expected):
    folder = str(tmp_path / "task")
    TinyTask(tiny_model(0), "old").save(folder)
    child = subprocess.run([sys.executable, "-c", _SAVE_AND_DIE, folder, point], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert len(_hidden(tmp_path)) == 1  # the killed save's staging folder
    assert os.path.exists(folder) == (point != "between the renames")
    loaded = TinyTask.load(folder)  # completes the interrupted swap
    assert loaded.tag == expected
    want = tiny_model(0 if expected == "old" else 1).get_weights()
    for got, weights in zip(loaded.model.get_weights(), want):
        np.testing.assert_array_equal(got, weights)
    TinyTask(loaded.model, "next").save(tmp_path / "sibling")  # any save beside it removes the dead save's folder
    assert _hidden(tmp_path) == []
    assert TinyTask.load(folder).tag == expected


def test_a_folder_missing_while_its_save_is_alive_is_not_touched(tmp_path):
    """A save that is still running (its lock held) between its two renames is neither completed nor
    removed; if it stops there with an exception, it puts the old folder back."""
    folder = tmp_path / "task"
    TinyTask(tiny_model(0), "old").save(folder)
    with pytest.raises(OSError, match="no room"):
        with staging_folder.StagingFolder(folder) as staging:  # a live writer, in the middle of its swap
            TinyTask(tiny_model(1), "new").save(os.path.join(staging.path, "new-task"))
            os.rename(os.path.join(staging.path, "new-task"), staging.new)
            os.rename(folder, os.path.join(staging.path, "old"))
            with pytest.raises(FileNotFoundError, match=r"a save to it is running or was interrupted: \.task\.st"):
                TinyTask.load(folder)
            assert os.path.isdir(staging.new) and os.path.isdir(os.path.join(staging.path, "old"))
            raise OSError("no room")
    assert TinyTask.load(folder).tag == "old" and _hidden(tmp_path) == []


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return TinyTask(tiny_model(0), "saved").save(tmp_path_factory.mktemp("saved") / "task")


def _copy(saved, tmp_path):
    import shutil

    return shutil.copytree(saved, tmp_path / "copy")


def test_save_records_every_file_and_load_checks_it(saved, tmp_path):
    meta = json.loads(open(os.path.join(saved, "task.json")).read())
    assert sorted(meta["files"]) == ["model.keras", "notes/tag.txt"]
    assert meta["files"]["model.keras"]["bytes"] == os.path.getsize(os.path.join(saved, "model.keras"))
    folder = _copy(saved, tmp_path)
    model = folder / "model.keras"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit in the weights
    model.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"copy/model.keras is damaged: its bytes differ from those save\(\) wrote"):
        TinyTask.load(folder)
    model.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match=rf"model.keras is damaged: {len(data) // 2:,} bytes where save\(\) wrote "
                                         rf"{len(data):,} \(truncated\?\)"):
        TinyTask.load(folder)
    data[len(data) // 2] ^= 0x10
    model.write_bytes(bytes(data))
    assert TinyTask.load(folder).tag == "saved"
    (folder / "notes" / "tag.txt").write_text("saveD")
    with pytest.raises(ValueError, match="notes/tag.txt is damaged"):
        TinyTask.load(folder)


def test_folders_without_checksums_load_and_say_what_a_truncated_model_is(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    meta = json.loads((folder / "task.json").read_text())
    del meta["files"]  # as written before the checksums
    (folder / "task.json").write_text(json.dumps(meta))
    assert TinyTask.load(folder).tag == "saved"
    model = folder / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"model.keras is not a loadable .keras model: not a whole zip archive "
                                         r"\([\d,]+ bytes; truncated\?\)"):
        TinyTask.load(folder)


def test_paths_leading_out_of_the_folder_are_refused_unread(saved, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "tag.txt").write_text("secret contents")
    folder = _copy(saved, tmp_path)
    meta = json.loads((folder / "task.json").read_text())
    for name in ("../outside/tag.txt", str(outside / "tag.txt"), "/dev/zero"):
        (folder / "task.json").write_text(json.dumps({**meta, "files": {name: {"bytes": 1, "sha256": "0"}}}))
        with pytest.raises(ValueError, match=rf"task.json's files='{name}' leads outside .*copy") as error:
            TinyTask.load(folder)
        assert "secret" not in str(error.value)
    (folder / "task.json").write_text(json.dumps(meta))
    for entry in (folder / "notes").iterdir():
        entry.unlink()
    (folder / "notes").rmdir()
    (folder / "notes").symlink_to(outside)  # a task file linked from elsewhere
    with pytest.raises(ValueError, match="path='notes/tag.txt' leads outside"):
        TinyTask.load(folder)


def test_a_translator_folder_asking_for_an_unservable_beam_is_refused_at_load(tiny_translator, tmp_path):
    """beam_width 10**9 in task.json loaded, and the first translate was OOM-killed at 18 GB."""
    from zoo.tasks import Translator

    folder = Translator(*tiny_translator).save(tmp_path / "translator")
    task_json = tmp_path / "translator" / "task.json"
    meta = json.loads(task_json.read_text())
    meta["settings"]["search"]["beam_width"] = 10**9
    task_json.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"beam_width must be at most 256 .*Received: beam_width=1000000000"):
        Translator.load(folder)
