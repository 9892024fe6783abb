"""MarianMT (OPUS-MT) tokenization inside the exported graph.

A Marian checkpoint segments text with a SentencePiece model (`source.spm`
for inputs, `target.spm` for outputs) but numbers the pieces with its own
`vocab.json` (one table for both languages: `</s>` = 0, `<unk>` = 1, ...,
`<pad>` last), not with the SentencePiece ids. So this tokenizer takes the
pieces as strings from tensorflow-text's SentencePiece op and maps them
through a `tf.lookup.StaticHashTable` (unknown pieces -> `<unk>`), and the
reverse table maps ids back to pieces for `detokenize`. All of it is core
TensorFlow plus tensorflow-text ops that TF Serving bundles.

What it reproduces of transformers' `MarianTokenizer` (checked in the
tests): a leading language code such as `>>fr<<` becomes one token of its
own; `</s>` is appended (so `""` is `[</s>]`); `decode(...,
skip_special_tokens=True)` drops `</s>`, `<pad>` and `<unk>`, joins the
pieces and turns `▁` into spaces, stripping the ends. What it does not:
transformers' optional Moses punctuation normalisation (only when
`sacremoses` is installed; off here), and matching special-token strings
typed inside the text. Added here: invalid UTF-8 is replaced with U+FFFD
instead of failing.
"""

import json
import os

import tensorflow as tf

from zoo.files import read_json
from zoo.text.sentence_piece_tokenizer import MODEL_FILE, sentencepiece_op
from zoo.text.tokenizer import Tokenizer, read_config, write_config

WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁"
_LANGUAGE_CODE = r"(?s)^(>>.*?<<).*$"


class MarianTokenizer(Tokenizer):
    """In-graph MarianMT tokenizer: SentencePiece pieces numbered by `vocab.json`.

    One instance serves one side: the source side tokenizes with
    `source.spm`, the target side detokenizes with the vocabulary's pieces.

    Args:
        model_proto: bytes. The serialized SentencePiece model (`source.spm`
            or `target.spm`).
        vocabulary: dict of str to int. Piece to id, as in `vocab.json`.
        end_token: str. Appended to every sequence. Defaults to `"</s>"`.
        unk_token: str. Id for unknown pieces. Defaults to `"<unk>"`.
        pad_token: str. Padding, also the decoder's start. Defaults to `"<pad>"`.
        name: str. Module name. Defaults to `None`.

    Call arguments (`tokenize`):
        strings: `tf.string` `(B,)`, or a scalar. Returns int32 ids ending
            with the end id, as a `tf.RaggedTensor` `(B, (tokens))`, or a
            dense `(tokens,)` tensor for a scalar.

    Call arguments (`detokenize`):
        ids: int ids `(B, T)` (dense or ragged) or `(T,)`. Returns `tf.string`
            `(B,)` (or a scalar); each row is cut at its first end id.

    Example:

    >>> from zoo.text.sentence_piece_tokenizer import SentencePieceTokenizer
    >>> texts = ["the cat sat on the mat.", "the dog sat on the log.", "a cat saw a dog."]
    >>> spm = SentencePieceTokenizer.from_corpus(texts * 10, 20)
    >>> pieces = [spm._tokenizer.id_to_string(i).numpy().decode() for i in range(4, 20)]
    >>> vocabulary = {"</s>": 0, "<unk>": 1, **{p: i + 2 for i, p in enumerate(pieces)}}
    >>> vocabulary["<pad>"] = len(vocabulary)
    >>> tokenizer = MarianTokenizer(spm.model_proto, vocabulary)
    >>> ids = tokenizer.tokenize(["the cat sat."])
    >>> int(ids[0, -1]), tokenizer.detokenize(ids).numpy()
    (0, array([b'the cat sat.'], dtype=object))

    References:
        Tiedemann and Thottingal, "OPUS-MT: Building open translation
        services for the World", 2020.
    """

    def __init__(self, model_proto, vocabulary, end_token="</s>", unk_token="<unk>", pad_token="<pad>", name=None):
        super().__init__(name=name)
        if not isinstance(vocabulary, dict) or not vocabulary:
            raise ValueError(f"vocabulary must be a non-empty dict of piece to id. Received: {type(vocabulary)}")
        missing = [t for t in (end_token, unk_token, pad_token) if t not in vocabulary]
        if missing:
            raise ValueError(f"The vocabulary lacks the special tokens {missing}.")
        ids = sorted(vocabulary.values())
        if len(set(ids)) != len(ids) or ids[0] < 0:
            raise ValueError("vocabulary ids must be distinct and non-negative.")
        self._sentencepiece = sentencepiece_op(model_proto, tf.string)
        self.model_proto = bytes(model_proto)
        self.vocabulary = {str(k): int(v) for k, v in vocabulary.items()}
        self.special_tokens = (end_token, unk_token, pad_token)
        end_id, unk_id, pad_id = (self.vocabulary[t] for t in self.special_tokens)
        # Marian's decoder starts with the pad id.
        self._set_reserved_ids(ids[-1] + 1, pad_id=pad_id, unk_id=unk_id, start_id=pad_id, end_id=end_id)
        pieces = tf.constant(list(self.vocabulary), tf.string)
        numbers = tf.constant(list(self.vocabulary.values()), tf.int32)
        self._piece_to_id = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(pieces, numbers), default_value=self.unk_id
        )
        self._id_to_piece = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(numbers, pieces), "")

    appends_end_id = True  # zoo.export keeps it when it truncates long inputs

    def tokenize(self, strings):
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        single = strings.shape.rank == 0
        strings = tf.reshape(strings, [-1])
        strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace")
        has_code = tf.strings.regex_full_match(strings, _LANGUAGE_CODE)  # (B,)
        code = tf.strings.regex_replace(strings, _LANGUAGE_CODE, r"\1")
        text = tf.strings.regex_replace(strings, r"(?s)^>>.*?<<", "", replace_global=False)
        pieces = self._sentencepiece.tokenize(text)  # (B, (P)) strings
        ids = tf.ragged.map_flat_values(self._piece_to_id.lookup, pieces)
        code_ids = tf.RaggedTensor.from_row_lengths(
            self._piece_to_id.lookup(tf.boolean_mask(code, has_code)), tf.cast(has_code, tf.int64)
        )
        end = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.shape(strings)[0]], self.end_id), tf.ones_like(has_code, tf.int64)
        )
        ids = tf.concat([code_ids, ids, end], axis=1)  # (B, (T))
        return ids[0] if single else ids

    def _join(self, ids):
        ids = tf.ragged.boolean_mask(ids, tf.not_equal(ids, self.unk_id))  # transformers drops <unk> too
        pieces = tf.ragged.map_flat_values(self._id_to_piece.lookup, ids)
        text = tf.strings.reduce_join(pieces, axis=-1)  # (B,)
        return tf.strings.strip(tf.strings.regex_replace(text, WORD_BOUNDARY, " "))

    @classmethod
    def from_marian_dir(cls, directory):
        """`(source, target)` tokenizers of a MarianMT checkpoint folder.

        Raises `FileNotFoundError` or `ValueError` naming the file that is
        missing or unreadable (`zoo.convert.marian` reports them as
        `CheckpointError`s).
        """
        directory = os.fspath(directory)
        vocabulary = read_json(os.path.join(directory, "vocab.json"))
        target_vocab = os.path.join(directory, "target_vocab.json")
        target_vocabulary = read_json(target_vocab) if os.path.exists(target_vocab) else vocabulary
        tokenizers = []
        for spm, vocab in (("source.spm", vocabulary), ("target.spm", target_vocabulary)):
            path = os.path.join(directory, spm)
            if not os.path.exists(path):
                raise FileNotFoundError(f"Missing {spm} in {directory}.")
            with open(path, "rb") as f:
                try:
                    tokenizers.append(cls(f.read(), vocab, name=spm.split(".")[0] + "_tokenizer"))
                except (ValueError, TypeError, tf.errors.OpError) as error:
                    raise ValueError(f"Cannot build a tokenizer from {path}: {error}") from None
        return tuple(tokenizers)

    def save(self, directory):
        """Writes `sentencepiece.model`, `vocab.json` and `tokenizer.json`."""
        directory = os.fspath(directory)
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, MODEL_FILE), "wb") as f:
            f.write(self.model_proto)
        with tf.io.gfile.GFile(os.path.join(directory, "vocab.json"), "w") as f:
            f.write(json.dumps(self.vocabulary, ensure_ascii=False, indent=1))
        end, unk, pad = self.special_tokens
        write_config(directory, self, model_file=MODEL_FILE, vocabulary_file="vocab.json",
                     end_token=end, unk_token=unk, pad_token=pad)

    @classmethod
    def load(cls, directory):
        tokens = ("end_token", "unk_token", "pad_token")
        config = read_config(os.fspath(directory), cls, files=["model_file", "vocabulary_file"], fields=tokens)
        with tf.io.gfile.GFile(config["model_file"], "rb") as f:
            proto = f.read()
        return cls(proto, read_json(config["vocabulary_file"]), *(config[t] for t in tokens))
