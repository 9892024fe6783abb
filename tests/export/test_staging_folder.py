"""zoo.export.staging_folder and the export's version writer under real kills."""

import os
import signal
import subprocess
import sys

import pytest

from tests.tasks.conftest import ROOT
from zoo.export.staging_folder import StagingFolder, leftovers, settle
from zoo.export.versions import existing_versions, write_version

# Writes version 1 of model "m" in two halves and waits for `go` between them.
_EXPORT_AND_WAIT = """
import os, sys, time
from zoo.export.versions import write_version
base, go = sys.argv[1:]
def write(directory):
    os.makedirs(directory)
    open(os.path.join(directory, "saved_model.pb"), "w").write("first half")
    print("half written", flush=True)
    while not os.path.exists(go):
        time.sleep(0.05)
    open(os.path.join(directory, "fingerprint.pb"), "w").write("second half")
print(write_version(base, "m", write, version=1), flush=True)
"""


def _whole(directory):
    os.makedirs(directory)
    for name in ("saved_model.pb", "fingerprint.pb"):
        with open(os.path.join(directory, name), "w") as f:
            f.write("whole")


def test_an_export_killed_while_writing_leaves_no_version_and_its_staging_goes_once_it_is_dead(tmp_path):
    base, go = str(tmp_path / "serving"), str(tmp_path / "go")
    model_dir = os.path.join(base, "m")
    child = subprocess.Popen([sys.executable, "-c", _EXPORT_AND_WAIT, base, go], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "half written", child.stderr.read()[-3000:]
        (staging,) = leftovers(model_dir, "1")
        assert existing_versions(model_dir) == []  # half written: not a version yet
        # Another export into the same model while the first writes: the live writer's folder is left alone.
        assert write_version(base, "m", _whole, version=2).endswith(os.path.join("m", "2"))
        assert settle(model_dir) == [] and leftovers(model_dir, "1") == [staging]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    assert existing_versions(model_dir) == [2]  # never a half version
    assert write_version(base, "m", _whole).endswith(os.path.join("m", "3"))  # its writer is gone: removed
    assert sorted(os.listdir(model_dir)) == ["2", "3"]
    assert write_version(base, "m", _whole, version=1).endswith(os.path.join("m", "1"))
    assert sorted(os.listdir(os.path.join(model_dir, "1"))) == ["fingerprint.pb", "saved_model.pb"]


def test_staging_folder_replaces_only_when_asked_and_names_what_is_wrong(tmp_path):
    destination = tmp_path / "folder"
    with StagingFolder(destination) as staging:
        _whole(staging.new)
        staging.publish()
    with pytest.raises(FileExistsError, match="folder appeared while writing it; not replacing it"):
        with StagingFolder(destination) as staging:
            os.makedirs(staging.new)
            staging.publish()
    with StagingFolder(destination) as staging:
        os.makedirs(staging.new)
        staging.publish(replace=True)
    assert os.listdir(destination) == [] and sorted(os.listdir(tmp_path)) == ["folder"]
    with pytest.raises(FileNotFoundError, match="Nothing was written to publish"):
        with StagingFolder(tmp_path / "other") as staging:
            staging.publish()
    with pytest.raises(ValueError, match="plain folder name. Received: '.hidden'"):
        StagingFolder(".hidden")
