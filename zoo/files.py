"""Reading the files of a saved folder: its JSON files, and names that must stay inside it.

Task folders, tokenizer folders and checkpoints all hold small JSON files
(`task.json`, `tokenizer.json`, `config.json`, a vocabulary); `read_json`
reads one with an error that names the file and says what is wrong with it.
Files are read through `tf.io.gfile`, so a folder may be on a remote file
system (`gs://...`) as well as on a local disk.
"""

import json
import os
import re

import tensorflow as tf

_JSON_TYPES = {dict: "object", list: "array", str: "string"}


def read_json(path, expected=dict):
    """The JSON value in the file at `path`, which must be a `expected` (a JSON object by default).

    Args:
        path: str or path-like. The file.
        expected: `dict`, `list` or `str`: the type the file's value must
            have; `None`: any JSON value. Defaults to `dict`.

    Raises:
        FileNotFoundError: there is no file at `path` ("Missing config.json in <folder>.").
        ValueError: the file is not valid JSON (UTF-8 or UTF-16/32), or its
            value is not a `expected`; the message names the file.
        OSError: the file exists but cannot be read (a folder, no permission).
    """
    path = os.fspath(path)
    if expected is not None and expected not in _JSON_TYPES:
        raise ValueError(f"expected must be one of {[t.__name__ for t in _JSON_TYPES]} or None. Received: {expected!r}")
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except tf.errors.NotFoundError:
        raise FileNotFoundError(f"Missing {os.path.basename(path)} in {os.path.dirname(path) or '.'}.") from None
    except tf.errors.OpError as error:
        raise OSError(f"Cannot read {path}: {error.message}") from None
    try:
        value = json.loads(data)
    except ValueError as error:  # json.JSONDecodeError, or UnicodeDecodeError for bytes of no Unicode encoding
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if expected is not None and not isinstance(value, expected):
        raise ValueError(f"{path} must hold a JSON {_JSON_TYPES[expected]}. Received: {type(value).__name__}")
    return value


def path_in_folder(directory, name, what):
    """`directory/name`, or a ValueError if `name` leads outside `directory`.

    Outside is an absolute path, a `..` that climbs out, or (on local disks)
    a link whose target is elsewhere. `what` says where `name` came from,
    for the error, which never shows the file's contents.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must name a file inside {directory}. Received: {name!r}")
    path = os.path.join(directory, name)
    if "://" in directory:  # a remote file system (gs://...): no links to follow
        parts = re.split(r"[\\/]", name)
        inside = not os.path.isabs(name) and ".." not in parts
    else:
        root = os.path.realpath(directory)
        inside = os.path.commonpath([root, os.path.realpath(path)]) == root
    if not inside:
        raise ValueError(
            f"{what}={name!r} leads outside {directory}; a saved folder's files must be inside it "
            "(copy the file in rather than linking to it)."
        )
    return path
