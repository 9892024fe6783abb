"""What zoo's in-graph tokenizers share: reserved ids and `tokenizer.json`.

Every tokenizer here is a `tf.Module` whose `tokenize` / `detokenize` are
TensorFlow ops, so they trace into an exported SavedModel. A translator's
preprocessor (`zoo.preprocessing.TranslationPreprocessor`) needs the
source side's `tokenize` and `pad_id` and the target side's `tokenize`,
`detokenize` and `pad_id` / `start_id` / `end_id` (and reads the source's
`end_id` and `appends_end_id` when they exist), so a tokenizer of the
user's own with those works too. `vocabulary_size`, `save` and `load`
serve building models and task folders.

A saved tokenizer is a folder: `tokenizer.json` names the class, its
options and its files (a vocabulary, a SentencePiece model). `load` reads
those files only inside the folder: a name that is absolute, climbs out
with `..` or goes through a link to elsewhere is refused, and the error
shows the name, never the contents of what it points to.
"""

import json
import os

import tensorflow as tf

from zoo.files import path_in_folder, read_json

CONFIG_FILE = "tokenizer.json"


def write_config(directory, tokenizer, **fields):
    """Writes `tokenizer.json`: the tokenizer's class name and its options."""
    config = {"class": type(tokenizer).__name__, **fields}
    with tf.io.gfile.GFile(os.path.join(directory, CONFIG_FILE), "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")


def read_config(directory, cls, files=(), fields=()):
    """Reads `tokenizer.json`, checking it was written by a `cls` and holds the keys `files` and `fields`.

    Returns the config with each key of `files` replaced by its path, checked
    to be inside `directory` (`path_in_folder`).
    """
    path = os.path.join(directory, CONFIG_FILE)
    config = read_json(path)
    if config.get("class") != cls.__name__:
        raise ValueError(f"{directory} holds no {cls.__name__}. Received: class={config.get('class')!r}")
    missing = [key for key in (*files, *fields) if key not in config]
    if missing:
        raise ValueError(f"{path} lacks {missing}; a {cls.__name__} needs {sorted((*files, *fields))}.")
    for key in files:
        config[key] = path_in_folder(directory, config[key], f"{path}: {key}")
    return config


def load_tokenizer(directory):
    """Loads the tokenizer saved in `directory`, of the class its `tokenizer.json` names.

    Raises `FileNotFoundError` naming a missing file, `ValueError` for a
    class that is not a zoo tokenizer.
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, CONFIG_FILE)
    name = read_json(path).get("class")
    classes = {cls.__name__: cls for cls in Tokenizer.__subclasses__()}
    if name not in classes:
        raise ValueError(f"{path} names class={name!r}; expected one of {sorted(classes)}.")
    try:
        return classes[name].load(directory)
    except tf.errors.NotFoundError as error:  # a vocabulary or model file the config names
        raise FileNotFoundError(f"{directory}: {error.message}") from None


def strip_reserved_ids(ids, pad_id, start_id, end_id, unk_id, vocabulary_size):
    """Ids `(B, T)` (dense, ragged or lists) or `(T,)` -> ragged `(B, (T))` int32 without pad/start, cut at end.

    Out-of-range ids become `unk_id` (the tokenizer ops fail on them).
    Returns the ragged ids and whether the input was a single `(T,)` row.
    """
    if isinstance(ids, (list, tuple)):
        ids = tf.ragged.constant(ids, dtype=tf.int64)  # rows may differ in length
    if isinstance(ids, tf.RaggedTensor):
        ids = ids.to_tensor(default_value=tf.cast(pad_id, ids.dtype))
    ids = tf.convert_to_tensor(ids)
    single = ids.shape.rank == 1
    if single:
        ids = ids[tf.newaxis]
    ids = tf.cast(ids, tf.int32)  # (B, T)
    ids = tf.where((ids < 0) | (ids >= vocabulary_size), unk_id, ids)
    after_end = tf.cumsum(tf.cast(ids == end_id, tf.int32), axis=1) > 0
    keep = ~after_end & (ids != pad_id) & (ids != start_id)
    return tf.ragged.boolean_mask(ids, keep), single


class Tokenizer(tf.Module):
    """Base of the in-graph tokenizers: reserved ids and `detokenize`.

    A subclass calls `_set_reserved_ids` in `__init__` and implements
    `tokenize`, `_join(ids)` (ragged `(B, (T))` ids, reserved ids already
    removed, to `(B,)` strings), `save` and `load`.
    """

    appends_end_id = False  # True: `tokenize` ends every row with `end_id`

    def _set_reserved_ids(self, vocabulary_size, pad_id, unk_id, start_id, end_id):
        ids = dict(pad_id=pad_id, unk_id=unk_id, start_id=start_id, end_id=end_id)
        for arg, value in ids.items():
            if not 0 <= int(value) < vocabulary_size:
                raise ValueError(f"{arg} must be in [0, {vocabulary_size}). Received: {arg}={value}")
        self._vocabulary_size = int(vocabulary_size)
        self._pad_id, self._unk_id, self._start_id, self._end_id = (int(v) for v in ids.values())

    @property
    def vocabulary_size(self):
        return self._vocabulary_size

    @property
    def pad_id(self):
        return self._pad_id

    @property
    def unk_id(self):
        return self._unk_id

    @property
    def start_id(self):
        return self._start_id

    @property
    def end_id(self):
        return self._end_id

    def detokenize(self, ids):
        """Ids `(B, T)` (dense, ragged or lists) or `(T,)` to `tf.string`
        `(B,)` (or a scalar): pad and start ids dropped, each row cut at its
        first end id, out-of-range ids read as unk."""
        ids, single = strip_reserved_ids(
            ids, self.pad_id, self.start_id, self.end_id, self.unk_id, self.vocabulary_size
        )
        text = self._join(ids)  # (B,)
        return text[0] if single else text

    def _join(self, ids):
        raise NotImplementedError
