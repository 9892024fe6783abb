"""The saved folder shared by zoo's task objects (`zoo.Translator`, `zoo.ImageClassifier`).

A task folder is what a user copies to another machine and loads:

- `task.json`: `{"task": <class name>, "format_version": 1, "settings": {...},
  "files": {<path>: {"bytes": n, "sha256": hex}}}` (a translator's decoding
  settings, a classifier's preprocessing and top-k; the size and SHA-256 of
  every other file, written by `save`);
- `model.keras`: the Keras model, weights and config;
- the task's own files (a translator's `source_tokenizer/` and
  `target_tokenizer/`).

`save` writes everything into a hidden staging folder beside the target and
renames it into place (`zoo.export.staging_folder`): at every instant,
kill -9 included, the name holds the old folder or the new one (a kill
between the two renames of `overwrite=True` is completed by the next `load`
or save beside it), and staging folders of killed saves are removed once
their process is gone.

`load` trusts a folder only as far as it can check it, and names the file
that fails: every file the folder names (in `task.json`, in a tokenizer's
`tokenizer.json`) must lie inside it (a path or link leading out is
refused without reading it), each file listed in `task.json` must have the
size and SHA-256 that `save` recorded (a truncated or bit-flipped
`model.keras` is an error naming it, not a model that translates garbage),
and settings are range-checked by the task (e.g. `SearchSettings`'s beam
width). The checksums catch damage, not an attacker, who can rewrite
`task.json` too: Keras' `safe_mode` is what keeps a hostile `model.keras`
from running code. Folders written before the checksums (no `"files"`) load
unchecked. Folders written before `task.json` existed (the recipes' run
folders, `tools/convert_marian.py`'s output) are read by each task's
`_load_earlier`.

Exports are TensorFlow SavedModels whatever the Keras backend: on JAX or
PyTorch, `export` saves the task to a temporary folder and a subprocess
loads it on the TensorFlow backend and writes the export there
(`_export_on_tensorflow`), the same code and signatures as a TensorFlow
run. The subprocess sees no GPU (the training process may hold them, and
tracing needs none); the SavedModel runs on TF Serving's devices.
"""

import builtins
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import keras

from zoo.export import staging_folder
from zoo.export.versions import VersionExistsError
from zoo.files import path_in_folder, read_json

FORMAT_VERSION = 1
TASK_FILE = "task.json"
MODEL_FILE = "model.keras"


def check_files(directory, names, what):
    """Raises a FileNotFoundError naming each of `names` missing in `directory`, a ValueError for one
    that leads outside it (through a link)."""
    missing = [name for name in names if not os.path.exists(path_in_folder(directory, name, "path"))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a complete {what} folder: missing {', '.join(missing)}."
        )


def _digest(path):
    """`{"bytes": size, "sha256": hex}` of a file."""
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
    return {"bytes": os.path.getsize(path), "sha256": sha256.hexdigest()}


def file_digests(directory):
    """`{relative path: {"bytes", "sha256"}}` of every file under `directory`, `task.json` aside."""
    digests = {}
    for root, folders, files in os.walk(directory):
        folders.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if relative != TASK_FILE:
                digests[relative] = _digest(path)
    return digests


def check_digests(directory, recorded):
    """Raises a ValueError naming the first file whose size or SHA-256 is not the one `save` recorded."""
    if not isinstance(recorded, dict):
        raise ValueError(f"{directory}/{TASK_FILE}: 'files' must map paths to sizes and digests. "
                         f"Received: {type(recorded).__name__}")
    for name, want in recorded.items():
        path = path_in_folder(directory, name, f"{TASK_FILE}'s files")
        if not isinstance(want, dict) or not isinstance(want.get("bytes"), int) or not want.get("sha256"):
            raise ValueError(f"{directory}/{TASK_FILE}: files[{name!r}] must be "
                             f'{{"bytes": int, "sha256": hex}}. Received: {want!r}')
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{directory} is not a complete folder: missing {name} (listed in {TASK_FILE}).")
        size = os.path.getsize(path)
        if size != want["bytes"]:
            cut = " (truncated?)" if size < want["bytes"] else ""
            raise ValueError(f"{path} is damaged: {size:,} bytes where save() wrote {want['bytes']:,}{cut}. "
                             "Copy the folder again.")
        if _digest(path)["sha256"] != want["sha256"]:
            raise ValueError(
                f"{path} is damaged: its bytes differ from those save() wrote (SHA-256 mismatch with "
                f"{TASK_FILE}). Copy the folder again; if you changed the file on purpose, remove its "
                f'entry from "files" in {TASK_FILE}.'
            )


def load_keras_model(directory):
    """`directory/model.keras`, with an error naming it when it is missing or unreadable."""
    path = path_in_folder(directory, MODEL_FILE, "path")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Missing {MODEL_FILE} in {directory}.")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" of it
        raise ValueError(f"{path} is not a loadable .keras model: not a whole zip archive "
                         f"({os.path.getsize(path):,} bytes; truncated?).")
    try:
        # Not compiled: a task runs the model, and a recipe-trained model's optimizer config names
        # classes (zoo.schedules) that nothing here needs to import.
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # a damaged zip, a config Keras cannot build, ...
        raise ValueError(f"{path} is not a loadable .keras model: {type(error).__name__}: {error}") from error


class Task:
    """Base of the task objects: a model and what it needs, saved as one folder.

    A subclass implements `get_settings()` (JSON), `_from_folder(directory,
    model, settings)` and `export(...)`, and may write more files
    (`_write_files`, listed in `files` so that `load` checks them first) and
    read old folders (`_load_earlier`).

    Args:
        model: a Keras model.
    """

    files = ()  # what a folder holds besides task.json and model.keras (paths inside it)

    def __init__(self, model):
        self.model = model

    # -- what subclasses provide ---------------------------------------------
    def get_settings(self):
        """The settings saved in `task.json`, as JSON types."""
        raise NotImplementedError

    def _write_files(self, directory):
        """Writes the task's own files (besides `model.keras` and `task.json`)."""

    @classmethod
    def _from_folder(cls, directory, model, settings):
        raise NotImplementedError

    @classmethod
    def _load_earlier(cls, directory):
        """A task from a folder without `task.json`, or None if it is not one this class reads."""
        return None

    # -- one folder ----------------------------------------------------------
    def save(self, directory, overwrite=False):
        """Writes the task as one folder; returns its path.

        Args:
            directory: str. The folder to write (its parent is created).
            overwrite: bool. Replace an existing folder. Defaults to `False`.

        Atomic: at every instant the name holds the old folder or the new
        one (`zoo.export.staging_folder`). A model with LoRA enabled is
        merged first (`zoo.tasks.fine_tuning.merge_lora`, in place): the
        folder holds plain kernels.

        Raises:
            FileExistsError: `directory` exists and `overwrite` is False.
        """
        directory = os.path.abspath(os.fspath(directory))
        if os.path.exists(directory) and not overwrite:
            raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it.")
        from zoo.tasks.fine_tuning import merge_lora  # imports the tasks, which import this module

        merge_lora(self)  # a saved folder holds plain kernels, no LoRA variables
        with staging_folder.StagingFolder(directory) as staging:
            os.makedirs(staging.new)
            self.model.save(os.path.join(staging.new, MODEL_FILE))
            self._write_files(staging.new)
            meta = {"task": type(self).__name__, "format_version": FORMAT_VERSION, "settings": self.get_settings(),
                    "files": file_digests(staging.new)}
            with open(os.path.join(staging.new, TASK_FILE), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2, ensure_ascii=False)
            return staging.publish(replace=overwrite)

    def _export_on_tensorflow(self, base, name=None, version=None, quantize=None):
        """`export(base, name, version, quantize)` run on the TensorFlow backend in a subprocess; returns its path.

        Errors of the subprocess are raised here with their type when it is
        a built-in one (or `VersionExistsError`), else as RuntimeError.
        """
        base = os.path.abspath(os.fspath(base))
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="-1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with tempfile.TemporaryDirectory(prefix="zoo-export-") as scratch:
            folder = self.save(os.path.join(scratch, "task"))
            args = [folder, base, name or "", "" if version is None else str(int(version)), quantize or ""]
            result = subprocess.run(
                [sys.executable, "-c", _EXPORT_CODE.format(cls=type(self).__name__), *args],
                env=env, capture_output=True, text=True, check=False,
            )
        lines = result.stdout.strip().splitlines()
        answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        if result.returncode == 0 and "path" in answer:
            return answer["path"]
        if "error" in answer:
            kind = VersionExistsError if answer["error"] == "VersionExistsError" else getattr(builtins, answer["error"], None)
            kind = kind if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError
            raise kind(answer["message"])
        raise RuntimeError(
            f"Exporting {type(self).__name__} on the TensorFlow backend failed (exit status {result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )

    @classmethod
    def load(cls, directory):
        """Reads a folder that `save` (or, for older folders, the recipes) wrote.

        A folder missing because a save was killed between its two renames
        is put in place first (the new one: it was whole before the swap).

        Raises:
            FileNotFoundError: the folder or a file in it is missing (named).
            ValueError: a file is unreadable, damaged (not the size or SHA-256
                `save` recorded) or outside the folder, a setting is out of
                range, or the folder holds another task.
        """
        directory = os.fspath(directory)
        if not os.path.lexists(directory):  # a save killed between its two renames? complete it
            staging_folder.settle(os.path.dirname(os.path.abspath(directory)))
        if not os.path.isdir(directory):
            what = "a file" if os.path.exists(directory) else "not found"
            parent, name = os.path.split(os.path.abspath(directory))
            left = staging_folder.leftovers(parent, name)
            if left:
                what += f"; a save to it is running or was interrupted: {', '.join(left)} in {parent}"
            raise FileNotFoundError(f"{cls.__name__}.load takes a folder that save() wrote. Received: {directory} ({what})")
        if not os.path.exists(os.path.join(directory, TASK_FILE)):
            task = cls._load_earlier(directory)
            if task is not None:
                return task
            raise FileNotFoundError(
                f"{directory} is not a complete {cls.__name__} folder: missing {TASK_FILE} "
                f"(found {sorted(os.listdir(directory))})."
            )
        meta = read_json(os.path.join(directory, TASK_FILE))
        kind, version = meta.get("task"), meta.get("format_version")
        if kind != cls.__name__:
            raise ValueError(
                f"{directory} holds a {kind!r} task; {cls.__name__}.load reads {cls.__name__!r} folders. "
                f"Load it with zoo.{kind}.load."
            )
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(
                f"{directory}/{TASK_FILE} has format_version={version!r}; this zoo reads versions 1 to "
                f"{FORMAT_VERSION} (a newer zoo wrote it?)."
            )
        check_files(directory, (MODEL_FILE, *cls.files), cls.__name__)
        if "files" in meta:
            check_digests(directory, meta["files"])
        return cls._from_folder(directory, load_keras_model(directory), meta.get("settings") or {})


# What `_export_on_tensorflow`'s subprocess runs: load the folder, export, answer one JSON line.
_EXPORT_CODE = """
import json, sys
from zoo.tasks import {cls}
folder, base, name, version, quantize = sys.argv[1:]
try:
    path = {cls}.load(folder).export(
        base, name=name or None, version=int(version) if version else None, quantize=quantize or None
    )
    print(json.dumps({{"path": path}}))
except Exception as error:
    print(json.dumps({{"error": type(error).__name__, "message": str(error)}}))
    sys.exit(1)
"""
