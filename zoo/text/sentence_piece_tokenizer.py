"""SentencePiece tokenizer that runs inside the exported graph.

Wraps `tensorflow_text.SentencepieceTokenizer`: its ops are ones TF Serving
bundles, and the model proto travels in the SavedModel as the initializer of
a resource, so the server needs no Python of ours. Models are trained with
keras-hub's `compute_sentence_piece_proto` (which needs the `sentencepiece`
package, imported only then).

Ids are the model's own. The reserved ids default to the model's pieces named
`<pad>`, `<s>` (start), `</s>` (end) and `<unk>`, SentencePiece's default
names (keras-hub trains with pad=0, unk=1, start=2, end=3, the project's
ids); a model without one of these pieces needs that id passed explicitly
(T5-style models, for example, start the decoder with `<pad>`).

Written here, because the op does not do it: invalid UTF-8 repair and NFKC
before the model's own normaliser; `detokenize` drops pad and start ids, cuts
each row at its first end id and maps out-of-range ids to unk (the op raises
on them). Spacing needs no rules: SentencePiece keeps whitespace as `▁`.

One work-around: tensorflow-text 2.21 creates the model resource private to
the op's kernel, and eager mode drops cached kernels whenever the seed is set
(`tf.random.set_seed`, `keras.utils.set_random_seed`), after which every call
fails with "Resource ... SentencepieceResource does not exist". We recreate
the resource under a shared name derived from the model's bytes, so it lives
in the device's resource manager for the life of the process (or of the TF
Serving session); identical models share one, which is safe as it is
read-only.
"""

import hashlib
import os

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops import sentencepiece_tokenizer as tf_text_sentencepiece

from zoo.text.tokenizer import Tokenizer, read_config, write_config

MODEL_FILE = "sentencepiece.model"
_RESERVED_PIECES = {"pad_id": "<pad>", "start_id": "<s>", "end_id": "</s>"}


class _SharedModelResource(tf.saved_model.experimental.TrackableResource):
    """The SentencePiece model resource, kept alive when eager kernels are dropped."""

    def __init__(self, model_proto):
        super().__init__()
        self._model_proto = model_proto
        self._shared_name = "zoo_sentencepiece_" + hashlib.sha256(model_proto).hexdigest()[:32]
        _ = self.resource_handle  # creates the resource now

    def _create_resource(self):
        return tf_text_sentencepiece.gen_sentencepiece_tokenizer.sentencepiece_op(
            model=self._model_proto, shared_name=self._shared_name
        )


def sentencepiece_op(model_proto, out_type):
    """`tensorflow_text.SentencepieceTokenizer` for a serialized model, its
    resource shared so that it survives dropped eager kernels (see above)."""
    if not isinstance(model_proto, (bytes, bytearray)):
        raise TypeError(f"model_proto must be bytes. Received: type(model_proto)={type(model_proto)}")
    model_proto = bytes(model_proto)
    tokenizer = tf_text.SentencepieceTokenizer(model=model_proto, out_type=out_type)
    tokenizer._model_resource = _SharedModelResource(model_proto)
    return tokenizer


class SentencePieceTokenizer(Tokenizer):
    """In-graph SentencePiece tokenizer: text to ids and back.

    Args:
        model_proto: bytes. A serialized SentencePiece `ModelProto`.
        pad_id: int. Padding id. Defaults to `None`: the id of `<pad>`.
        start_id: int. Start-of-sequence id. Defaults to `None`: the id of `<s>`.
        end_id: int. End-of-sequence id. Defaults to `None`: the id of `</s>`.
        unk_id: int. Unknown-piece id. Defaults to `None`: the model's.
        name: str. Module name. Defaults to `None`.

    Call arguments (`tokenize`):
        strings: `tf.string` `(B,)`, or a scalar. Returns int32 ids as a
            `tf.RaggedTensor` `(B, (tokens))`, or a dense `(tokens,)` tensor
            for a scalar, without start/end ids.

    Call arguments (`detokenize`):
        ids: int ids `(B, T)` (dense or ragged) or `(T,)`. Returns `tf.string`
            `(B,)` (or a scalar).

    Example:

    >>> texts = ["the cat sat on the mat.", "the dog sat on the log.", "a cat saw a dog."]
    >>> tokenizer = SentencePieceTokenizer.from_corpus(texts * 10, 20)
    >>> ids = tokenizer.tokenize(["the cat sat."])
    >>> tokenizer.detokenize(ids).numpy()
    array([b'the cat sat.'], dtype=object)

    References:
        Kudo and Richardson, "SentencePiece: A simple and language independent
        subword tokenizer and detokenizer for Neural Text Processing", 2018.
    """

    def __init__(self, model_proto, pad_id=None, start_id=None, end_id=None, unk_id=None, name=None):
        super().__init__(name=name)
        self._tokenizer = sentencepiece_op(model_proto, tf.int32)
        self.model_proto = bytes(model_proto)
        ids = {"pad_id": pad_id, "start_id": start_id, "end_id": end_id}
        for arg, piece in _RESERVED_PIECES.items():
            if ids[arg] is None:
                ids[arg] = self._piece_id(piece, arg)
        if unk_id is None:
            # SentencePiece maps any string that is not a piece to unk.
            unk_id = int(self._tokenizer.string_to_id("\u0000 not a piece \u0000"))
        self._set_reserved_ids(int(self._tokenizer.vocab_size()), unk_id=unk_id, **ids)

    def _piece_id(self, piece, arg):
        piece_id = int(self._tokenizer.string_to_id(piece))
        if self._tokenizer.id_to_string(piece_id).numpy().decode("utf-8") != piece:
            raise ValueError(f"The SentencePiece model has no {piece!r} piece: pass {arg}= explicitly.")
        return piece_id

    def tokenize(self, strings):
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace")
        # The model normalises again with its own rule (nmt_nfkc, or nmt_nfkc_cf
        # when trained with lowercase=True); NFKC first is idempotent with both.
        strings = tf_text.normalize_utf8(strings, "NFKC")
        return self._tokenizer.tokenize(strings)

    def _join(self, ids):
        return self._tokenizer.detokenize(ids)  # (B,)

    @classmethod
    def from_file(cls, path, **kwargs):
        """Reads a `.model` file written by SentencePiece; `kwargs` go to `__init__`."""
        with tf.io.gfile.GFile(os.fspath(path), "rb") as f:
            return cls(f.read(), **kwargs)

    @classmethod
    def from_corpus(cls, texts, vocabulary_size, model_type="unigram", lowercase=False):
        """Trains a model with pad=0, unk=1, start=2, end=3 on `texts`.

        `texts`: a list of str or a `tf.data.Dataset` of scalar strings.
        `model_type`: `"unigram"`, `"bpe"`, `"word"` or `"char"`.
        `lowercase`: bake case folding into the model's normaliser.
        """
        try:
            import sentencepiece  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "SentencePieceTokenizer.from_corpus needs the `sentencepiece` package: "
                "`pip install sentencepiece` (it is in zoo's `test` extra)."
            ) from error
        import keras_hub  # heavy, and only needed to train a model

        if not isinstance(texts, tf.data.Dataset):
            texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
        texts = texts.map(
            lambda t: tf_text.normalize_utf8(
                tf.strings.unicode_transcode(t, "UTF-8", "UTF-8", errors="replace"), "NFKC"
            )
        )
        proto = keras_hub.tokenizers.compute_sentence_piece_proto(
            texts, vocabulary_size, model_type=model_type, lowercase=lowercase
        )
        return cls(proto)

    def save(self, directory):
        """Writes `sentencepiece.model` and `tokenizer.json` (the reserved ids)."""
        directory = os.fspath(directory)
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, MODEL_FILE), "wb") as f:
            f.write(self.model_proto)
        write_config(
            directory, self, model_file=MODEL_FILE,
            pad_id=self.pad_id, start_id=self.start_id, end_id=self.end_id, unk_id=self.unk_id,
        )

    @classmethod
    def load(cls, directory):
        names = ("pad_id", "start_id", "end_id", "unk_id")
        config = read_config(os.fspath(directory), cls, files=["model_file"], fields=names)
        return cls.from_file(config["model_file"], **{k: config[k] for k in names})
