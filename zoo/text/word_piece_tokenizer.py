"""WordPiece tokenizer that runs inside the exported graph.

Wraps `tensorflow_text.FastWordpieceTokenizer`: its ops are ones TF Serving
bundles, so tokenization and detokenization live in the exported SavedModel
and the server needs no Python of ours. The vocabulary is learned with
keras-hub's `compute_word_piece_vocabulary`.

Written here, because the op does not do it:

- input repair: invalid UTF-8 is replaced with U+FFFD (isolated as its own
  word, so it costs one `[UNK]` and not the whole word), NFKC, optional case
  folding, format characters (zero-width space, soft hyphen) removed and
  control characters turned into spaces. The learner sees the same text.
- reserved ids: `detokenize` drops `[PAD]` and `[START]`, cuts each row at
  its first `[END]` and maps out-of-range ids to `[UNK]` (the op crashes the
  process on them).
- spacing: the op's `detokenize` merges `##` pieces and joins every word with
  one space ("hello , world ."); `_SPACING_RULES` glue punctuation back.

What `FastWordpieceTokenizer(no_pretokenization=False)` does itself
(tensorflow-text 2.21, checked in the tests): it splits on whitespace, splits
off every ASCII non-alphanumeric character and every Unicode punctuation
(`\\p{P}`) as a word of its own, and each CJK ideograph; other symbols
(`€`), control and format characters stay inside words. A word with no
WordPiece cover (or longer than 100 bytes) becomes one `[UNK]`. keras-hub's
learner splits the same way, except that it also splits on control and format
characters, which our cleanup removes first.
"""

import collections
import os

import tensorflow as tf
import tensorflow_text as tf_text

from zoo.text.tokenizer import Tokenizer, read_config, write_config

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")
VOCABULARY_FILE = "vocabulary.txt"

_WORD = r"[\p{L}\p{N}]"
# (pattern, rewrite) pairs applied in order to the space-joined words.
_SPACING_RULES = (
    (r"\s+([.,!?;:…)\]}])", r"\1"),  # no space before closing punctuation
    (r"([(\[{])\s+", r"\1"),  # none after opening brackets
    # quotes, as pairs, since `"` and `“` open in one language and close in another
    (r'"\s*([^"]*?)\s*"', r'"\1"'),
    (r"„\s*([^“]*?)\s*“", r"„\1“"),
    (r"“\s*([^”]*?)\s*”", r"“\1”"),
    (r"«\s*([^»]*?)\s*»", r"«\1»"),
    (r"»\s*([^«]*?)\s*«", r"»\1«"),
    (rf"({_WORD}) (['’]) (s|t|re|ve|ll|d|m)\b", r"\1\2\3"),  # don't, it's, geht's
    (rf"({_WORD}) - ({_WORD})", r"\1-\2"),  # twenty-three
    (rf"({_WORD}) - ({_WORD})", r"\1-\2"),  # twice: chains overlap (a-b-c)
    (r"(\d)([.:]) (\d)", r"\1\2\3"),  # 3.50, 10:30, 1.000
    (r"(\d), (\d{3})\b", r"\1,\2"),  # 1,000 (but "3, 50": "3,50" and lists look alike)
)


def clean_text(strings, lowercase=False):
    """Repairs and normalises UTF-8 `strings` (any shape); never fails on bad bytes."""
    strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace")
    strings = tf_text.normalize_utf8(strings, "NFKC")
    if lowercase:
        # NFKC_Casefold, the same function keras-hub's learner applies, so the
        # vocabulary and the tokenizer agree; full Unicode folding ("ß" -> "ss").
        strings = tf_text.case_fold_utf8(strings)
    strings = tf.strings.regex_replace(strings, r"\p{Cf}", "")
    strings = tf.strings.regex_replace(strings, r"\p{Cc}", " ")
    return tf.strings.regex_replace(strings, "\ufffd+", " \ufffd ")


class WordPieceTokenizer(Tokenizer):
    """In-graph WordPiece tokenizer: text to ids and back.

    `tokenize` cleans the text (see the module docstring), splits words and
    punctuation and maps each word to its longest-match-first WordPiece ids.
    `detokenize` inverts it up to normalisation and spacing.

    Args:
        vocabulary: list of str. WordPiece tokens (`##` marks word-inner
            pieces), starting with `RESERVED_TOKENS`, so `[PAD]`=0, `[UNK]`=1,
            `[START]`=2, `[END]`=3.
        lowercase: bool. Case-fold the input. Defaults to `True`.
        name: str. Module name. Defaults to `None`.

    Call arguments (`tokenize`):
        strings: `tf.string` `(B,)`, or a scalar. Returns int32 ids as a
            `tf.RaggedTensor` `(B, (tokens))`, or a dense `(tokens,)` tensor
            for a scalar (as `tensorflow_text` does), without start/end ids.

    Call arguments (`detokenize`):
        ids: int ids `(B, T)` (dense or ragged) or `(T,)`. Returns `tf.string`
            `(B,)` (or a scalar).

    Example:

    >>> tokenizer = WordPieceTokenizer(
    ...     list(RESERVED_TOKENS) + ["hello", ",", "world", ".", "##s"])
    >>> tokenizer.tokenize(["Hello, worlds."]).to_list()
    [[4, 5, 6, 8, 7]]
    >>> tokenizer.detokenize([[2, 4, 5, 6, 8, 7, 3, 0]]).numpy()
    array([b'hello, worlds.'], dtype=object)

    References:
        Song et al., "Fast WordPiece Tokenization", EMNLP 2021.
    """

    def __init__(self, vocabulary, lowercase=True, name=None):
        super().__init__(name=name)
        vocabulary = [str(token) for token in vocabulary]
        if tuple(vocabulary[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise ValueError(
                f"vocabulary must start with the reserved tokens {list(RESERVED_TOKENS)}. "
                f"Received: vocabulary[:{len(RESERVED_TOKENS)}]={vocabulary[: len(RESERVED_TOKENS)]}"
            )
        duplicates = sorted(t for t, n in collections.Counter(vocabulary).items() if n > 1)
        if duplicates:
            raise ValueError(f"vocabulary has duplicate tokens. Received: duplicates={duplicates[:10]}")
        malformed = [t for t in vocabulary if not t or any(c.isspace() for c in t)]
        if malformed:
            raise ValueError(f"vocabulary tokens must be non-empty, without whitespace. Received: {malformed[:10]}")
        self._vocabulary = tuple(vocabulary)
        pad_id, unk_id, start_id, end_id = range(len(RESERVED_TOKENS))
        self._set_reserved_ids(len(vocabulary), pad_id=pad_id, unk_id=unk_id, start_id=start_id, end_id=end_id)
        self.lowercase = bool(lowercase)
        self._tokenizer = tf_text.FastWordpieceTokenizer(
            vocabulary,
            token_out_type=tf.int32,
            unknown_token="[UNK]",
            no_pretokenization=False,
            support_detokenization=True,
        )

    @property
    def vocabulary(self):
        return list(self._vocabulary)

    def tokenize(self, strings):
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        return self._tokenizer.tokenize(clean_text(strings, self.lowercase))

    def _join(self, ids):
        text = self._tokenizer.detokenize(ids)  # (B,)
        for pattern, rewrite in _SPACING_RULES:
            text = tf.strings.regex_replace(text, pattern, rewrite)
        return tf.strings.strip(text)

    @classmethod
    def from_corpus(cls, texts, vocabulary_size, lowercase=True):
        """Learns a vocabulary of at most `vocabulary_size` tokens from `texts`.

        `texts`: a list of str or a `tf.data.Dataset` of scalar strings. Accents
        are kept (German umlauts are letters, not decorations).
        """
        import keras_hub  # heavy, and only needed to learn a vocabulary

        if vocabulary_size <= len(RESERVED_TOKENS):
            raise ValueError(
                f"vocabulary_size must exceed {len(RESERVED_TOKENS)} reserved tokens. "
                f"Received: vocabulary_size={vocabulary_size}"
            )
        if not isinstance(texts, tf.data.Dataset):
            texts = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string))
        texts = texts.map(lambda text: clean_text(text, lowercase))
        try:
            vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
                texts,
                vocabulary_size,
                lowercase=lowercase,
                strip_accents=False,
                reserved_tokens=list(RESERVED_TOKENS),
            )
        except StopIteration:  # tensorflow-text's learner, on a corpus without a single word
            raise ValueError("from_corpus needs texts with at least one word. Received: no words") from None
        return cls(vocabulary, lowercase=lowercase)

    def save(self, directory):
        """Writes `vocabulary.txt` (one token a line) and `tokenizer.json`."""
        directory = os.fspath(directory)
        tf.io.gfile.makedirs(directory)
        with tf.io.gfile.GFile(os.path.join(directory, VOCABULARY_FILE), "w") as f:
            f.write("".join(token + "\n" for token in self._vocabulary))
        write_config(directory, self, vocabulary_file=VOCABULARY_FILE, lowercase=self.lowercase)

    @classmethod
    def load(cls, directory):
        config = read_config(os.fspath(directory), cls, files=["vocabulary_file"], fields=["lowercase"])
        with tf.io.gfile.GFile(config["vocabulary_file"]) as f:
            vocabulary = [token for token in f.read().split("\n") if token]
        return cls(vocabulary, lowercase=config["lowercase"])
