"""The saved folder shared by zoo's task objects (`zoo.Translator`, `zoo.ImageClassifier`).

A task folder is what a user copies to another machine and loads:

- `task.json`: `{"task": <class name>, "format_version": 1, "settings": {...}}`
  (a translator's decoding settings, a classifier's preprocessing and top-k);
- `model.keras`: the Keras model, weights and config;
- the task's own files (a translator's `source_tokenizer/` and
  `target_tokenizer/`).

`save` writes everything into a hidden staging folder beside the target and
renames it into place (`os.rename`, atomic on POSIX), so a crash never
leaves a half-written folder under the target's name. An existing folder is
replaced only with `overwrite=True` (renamed aside, then deleted, once the
new one is in place). `load` names the first missing or unreadable file.
Folders written before `task.json` existed (the recipes' run folders,
`tools/convert_marian.py`'s output) are read by each task's
`_load_earlier`.

Exports are TensorFlow SavedModels whatever the Keras backend: on JAX or
PyTorch, `export` saves the task to a temporary folder and a subprocess
loads it on the TensorFlow backend and writes the export there
(`_export_on_tensorflow`), the same code and signatures as a TensorFlow
run. The subprocess sees no GPU (the training process may hold them, and
tracing needs none); the SavedModel runs on TF Serving's devices.
"""

import builtins
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import keras

from zoo.export.versions import VersionExistsError

FORMAT_VERSION = 1
TASK_FILE = "task.json"
MODEL_FILE = "model.keras"


def read_json_file(path):
    """A JSON file's contents, with an error naming the file when it is missing or broken."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Missing {os.path.basename(path)} in {os.path.dirname(path)}.")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None


def check_files(directory, names, what):
    """Raises a FileNotFoundError naming each of `names` missing in `directory`."""
    missing = [name for name in names if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a complete {what} folder: missing {', '.join(missing)}."
        )


def load_keras_model(directory):
    """`directory/model.keras`, with an error naming it when it is missing or unreadable."""
    path = os.path.join(directory, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Missing {MODEL_FILE} in {directory}.")
    try:
        # Not compiled: a task runs the model, and a recipe-trained model's optimizer config names
        # classes (zoo.schedules) that nothing here needs to import.
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # a truncated zip, a config Keras cannot build, ...
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

        Raises:
            FileExistsError: `directory` exists and `overwrite` is False.
        """
        directory = os.path.abspath(os.fspath(directory))
        if os.path.exists(directory) and not overwrite:
            raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it.")
        parent, name = os.path.split(directory)
        os.makedirs(parent, exist_ok=True)
        staging = os.path.join(parent, f".{name}.staging-{uuid.uuid4().hex[:8]}")
        old = os.path.join(parent, f".{name}.old-{uuid.uuid4().hex[:8]}")
        try:
            os.makedirs(staging)
            self.model.save(os.path.join(staging, MODEL_FILE))
            self._write_files(staging)
            meta = {"task": type(self).__name__, "format_version": FORMAT_VERSION, "settings": self.get_settings()}
            with open(os.path.join(staging, TASK_FILE), "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=2, ensure_ascii=False)
            if os.path.exists(directory):
                if not overwrite:  # appeared while saving
                    raise FileExistsError(f"{directory} appeared while saving; not replacing it.")
                os.rename(directory, old)
            os.rename(staging, directory)
        finally:
            for leftover in (staging, old):
                if os.path.exists(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
        return directory

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

        Raises:
            FileNotFoundError: the folder or a file in it is missing (named).
            ValueError: a file is unreadable, or the folder holds another task.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            what = "a file" if os.path.exists(directory) else "not found"
            raise FileNotFoundError(f"{cls.__name__}.load takes a folder that save() wrote. Received: {directory} ({what})")
        if not os.path.exists(os.path.join(directory, TASK_FILE)):
            task = cls._load_earlier(directory)
            if task is not None:
                return task
            raise FileNotFoundError(
                f"{directory} is not a complete {cls.__name__} folder: missing {TASK_FILE} "
                f"(found {sorted(os.listdir(directory))})."
            )
        meta = read_json_file(os.path.join(directory, TASK_FILE))
        if not isinstance(meta, dict):
            raise ValueError(f"{directory}/{TASK_FILE} must hold a JSON object. Received: {type(meta).__name__}")
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
