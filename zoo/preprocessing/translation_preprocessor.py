"""`TranslationPreprocessor`: the one place where a translator's strings become token ids and back.

Three users, one set of rules:

- serving (`serving_inputs`): what the export's signatures and
  `zoo.Translator.translate` feed the beam search;
- training (`training_batch`, or its two halves `tokenize_pairs` and `pack`):
  what `zoo.data.translation_data.make_batches` and `zoo.Translator.fit`
  (through `batches`) feed `keras.Model.fit`, inside `tf.data`;
- translations back to text (`detokenize`).

The rules. A row's *content* is its ids other than the tokenizer's end id.
A source keeps its first `max_length` ids; a tokenizer that appends its end
id to every row (`appends_end_id`, e.g. `zoo.text.MarianTokenizer`) keeps
its first `max_length - 1` content ids and then the end id, as transformers'
tokenizers truncate. A target keeps its first `max_length - 1` content ids:
decoder input `[start] + content`, labels `content + [end]`, so a tokenizer
that appends the end id itself (Marian) does not give labels two. Sources
are padded with the source tokenizer's pad id, targets and labels with the
target tokenizer's (Marian: end 0, pad the last id, start == pad), with
weight 0 on padding. A training pair whose source or target has no content
is dropped; an over-long one is truncated or dropped (`overlong`).

Everything is TensorFlow on ragged tensors, a batch at a time (no per-row
Python), so it traces into SavedModels and runs in `tf.data` whatever the
Keras backend. Written here because keras-hub's `Seq2SeqLMPreprocessor`
(the model for this split) packs keras-hub tokenizers for keras-hub
backbones and truncates without keeping Marian's end token.
"""

import os

import numpy as np
import tensorflow as tf

from zoo.data import translation_data

OVERLONG = ("truncate", "drop")
_NEEDS = {
    "source_tokenizer": ("tokenize", "pad_id"),
    "target_tokenizer": ("tokenize", "detokenize", "pad_id", "start_id", "end_id"),
}


def check_overlong(overlong):
    """Raises a ValueError unless `overlong` is one of `OVERLONG`."""
    if overlong not in OVERLONG:
        raise ValueError(f"overlong must be 'truncate' or 'drop'. Received: overlong={overlong!r}")
    return overlong


def _string_pairs(data):
    """`data` if it is a list or tuple of `(str, str)` pairs; a TypeError naming the first bad entry."""
    if not isinstance(data, (list, tuple)):
        raise TypeError(
            "Training data must be a list of (source, target) string pairs, a TSV file path or a tf.data.Dataset. "
            f"Received: {type(data).__name__}"
        )
    for i, pair in enumerate(data):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            shown = repr(pair) if len(repr(pair)) <= 60 else repr(pair)[:57] + "..."
            raise TypeError(
                f"Training pairs must be (source, target) pairs of str. Received: {type(pair).__name__} {shown} "
                f"at index {i}"
            )
    return data


def _column(value, rows):
    """A ragged `(rows, (1))` int32 column of `value`."""
    return tf.RaggedTensor.from_row_lengths(tf.fill([rows], tf.constant(value, tf.int32)), tf.ones([rows], tf.int64))


def _dense(ids, pad_id):
    """Ragged `(B, (N))` ids right-padded with `pad_id` to `(B, max(N, 1))` int32.

    At least one column, so a batch of empty rows still has a shape.
    """
    dense = ids.to_tensor(default_value=tf.constant(pad_id, ids.dtype))
    missing = tf.maximum(1 - tf.shape(dense)[1], 0)
    return tf.pad(dense, [[0, 0], [0, missing]], constant_values=pad_id)


class TranslationPreprocessor(tf.Module):
    """A translator's tokenization, truncation and padding, for serving and training alike.

    Args:
        source_tokenizer: a `zoo.text` tokenizer (or any object with
            `tokenize(strings) -> ragged ids` and `pad_id`; `end_id` and
            `appends_end_id` are read when present).
        target_tokenizer: a `zoo.text` tokenizer (`tokenize`, `detokenize`,
            `pad_id`, `start_id`, `end_id`).
        max_length: int. Ids per source and per target (start or end
            included) that the model reads; at least 2.

    Call arguments (`serving_inputs`):
        sentences: `tf.string` `(B,)`. Returns `(source ids (B, S) int32,
            empty (B,) bool, truncated (B,) bool)`, `1 <= S <= max_length`.

    Call arguments (`training_batch`):
        sources, targets: `tf.string` `(B,)`. Returns `({"source_ids":
            (B', S), "target_ids": (B', T)}, labels (B', T), sample_weight
            (B', T) float32)`, `B'` the pairs kept.

    Example:
    >>> from zoo.text import WordPieceTokenizer
    >>> source = WordPieceTokenizer.from_corpus(["I buy three apples."] * 5, 60)
    >>> target = WordPieceTokenizer.from_corpus(["Ich kaufe drei Äpfel."] * 5, 60)
    >>> preprocessor = TranslationPreprocessor(source, target, max_length=4)
    >>> ids, empty, truncated = preprocessor.serving_inputs(tf.constant(["I buy three apples.", ""]))
    >>> ids.shape, empty.numpy().tolist(), truncated.numpy().tolist()
    (TensorShape([2, 4]), [False, True], [True, False])
    >>> inputs, labels, weights = preprocessor.training_batch(
    ...     tf.constant(["I buy three apples."]), tf.constant(["Ich kaufe drei Äpfel."]))
    >>> inputs["source_ids"].numpy().tolist() == ids.numpy()[:1].tolist(), labels.shape
    (True, TensorShape([1, 4]))
    """

    def __init__(self, source_tokenizer, target_tokenizer, max_length, name=None):
        super().__init__(name=name or "translation_preprocessor")
        for side, tokenizer in (("source_tokenizer", source_tokenizer), ("target_tokenizer", target_tokenizer)):
            missing = [attribute for attribute in _NEEDS[side] if not hasattr(tokenizer, attribute)]
            if missing:
                raise TypeError(
                    f"{side} must be a zoo.text tokenizer (with {', '.join(_NEEDS[side])}). "
                    f"Received: {type(tokenizer).__name__}, without {', '.join(missing)}"
                )
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 2:
            raise ValueError(
                f"max_length must be an int >= 2 (room for a start and an end id). Received: max_length={max_length!r}"
            )
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_length = int(max_length)

    # -- ids --------------------------------------------------------------------
    @property
    def source_pad_id(self):
        return int(self.source_tokenizer.pad_id)

    @property
    def pad_id(self):
        """The target side's pad id (decoder inputs and labels)."""
        return int(self.target_tokenizer.pad_id)

    @property
    def start_id(self):
        return int(self.target_tokenizer.start_id)

    @property
    def end_id(self):
        return int(self.target_tokenizer.end_id)

    @property
    def _source_appends_end(self):
        return bool(getattr(self.source_tokenizer, "appends_end_id", False))

    @staticmethod
    def _ids_and_content(tokenizer, strings):
        """`(ids, content)`: ragged `(B, (N))` int32 ids of `strings`, and the same without the end id."""
        ids = tf.cast(tokenizer.tokenize(strings), tf.int32)
        end_id = getattr(tokenizer, "end_id", None)
        content = ids if end_id is None else tf.ragged.boolean_mask(ids, tf.not_equal(ids, end_id))
        return ids, content

    # -- serving ------------------------------------------------------------------
    def source_ids(self, sentences):
        """Tokenized and truncated sources: `(ragged ids (B, (S)) int32, content lengths (B,) int64)`."""
        ids, content = self._ids_and_content(self.source_tokenizer, sentences)
        lengths = content.row_lengths()
        if self._source_appends_end:
            # Truncate before the end id, then put it back.
            content = content[:, : self.max_length - 1]
            ids = tf.concat([content, _column(self.source_tokenizer.end_id, content.nrows())], axis=1)
        return ids[:, : self.max_length], lengths

    def too_long(self, lengths):
        """`(B,)` bool: content lengths (from `source_ids`) over what the model reads, so cut."""
        return lengths > self.max_length - int(self._source_appends_end)

    def serving_inputs(self, sentences):
        """`(source ids (B, S) int32, empty (B,), truncated (B,))` of `(B,)` sentences.

        The ids are right-padded with the source pad id to the longest
        sentence; `1 <= S <= max_length`. `empty`: no content at all.
        """
        ids, lengths = self.source_ids(sentences)
        return _dense(ids, self.source_pad_id), tf.equal(lengths, 0), self.too_long(lengths)

    def detokenize(self, ids):
        """Target ids `(B, T)` (dense or ragged) to `tf.string` `(B,)`."""
        return self.target_tokenizer.detokenize(ids)

    # -- training -----------------------------------------------------------------
    def tokenize_pairs(self, sources, targets):
        """`(B,)` string pairs to `(source ids, target content, empty, too_long, length)`.

        Source ids ragged `(B, (S))`, truncated as `source_ids` truncates
        them; the target's content ids ragged `(B, (N))`, not yet truncated;
        `(B,)` flags: no source or no target content, more than the model
        reads; `length` `(B,)` int32: the longer of the source ids and the
        decoder input once packed (what `make_batches` buckets by).
        """
        source_ids, source_lengths = self.source_ids(sources)
        _, target = self._ids_and_content(self.target_tokenizer, targets)
        target_lengths = target.row_lengths()
        empty = tf.equal(source_lengths, 0) | tf.equal(target_lengths, 0)
        too_long = self.too_long(source_lengths) | (target_lengths > self.max_length - 1)
        length = tf.maximum(source_ids.row_lengths(), tf.minimum(target_lengths, self.max_length - 1) + 1)
        return source_ids, target, empty, too_long, tf.cast(length, tf.int32)

    def pack_rows(self, source_ids, target):
        """`tokenize_pairs`' source ids and target content to teacher-forced ragged rows.

        Returns ragged `(source ids (B, (S)), decoder input (B, (T)), labels
        (B, (T)), weights (B, (T)) float32)`: the target cut to
        `max_length - 1` ids, decoder input `[start] + target`, labels
        `target + [end]`, weight 1 on every id. Padded with `padding_values`
        (`pack`, or a bucketing pipeline's padded batches).
        """
        target = target[:, : self.max_length - 1]
        rows = target.nrows()
        decoder_input = tf.concat([_column(self.start_id, rows), target], axis=1)
        labels = tf.concat([target, _column(self.end_id, rows)], axis=1)
        return source_ids, decoder_input, labels, tf.ones_like(labels, dtype=tf.float32)

    @property
    def padding_values(self):
        """What pads `pack_rows`' four rows: the source pad id, the target pad id twice, weight 0."""
        return (self.source_pad_id, self.pad_id, self.pad_id, 0.0)

    @staticmethod
    def as_batch(source_ids, decoder_input, labels, weights):
        """Padded rows as what `keras.Model.fit` takes: `({"source_ids", "target_ids"}, labels, sample_weight)`."""
        return {"source_ids": source_ids, "target_ids": decoder_input}, labels, weights

    def bucket_padded(self, inputs, labels, weights):
        """A training batch (`as_batch`'s) padded on to the bucket width of its longer side, the first of
        `zoo.data.translation_data.bucket_widths` that holds it.

        Batches of any lengths then take a few shapes, so a compiled train
        step (JAX's, or TensorFlow's under XLA) compiles a few times, not once
        per length. The padding is masked and has weight 0: the loss and the
        metrics are those of the batch without it.
        """
        widths = tf.constant(translation_data.bucket_widths(self.max_length), tf.int32)
        source, target = inputs["source_ids"], inputs["target_ids"]
        longest = tf.maximum(tf.shape(source)[1], tf.shape(target)[1])
        width = widths[tf.minimum(tf.searchsorted(widths, [longest])[0], len(widths) - 1)]

        def pad(x, value):
            return tf.pad(x, [[0, 0], [0, tf.maximum(width - tf.shape(x)[1], 0)]], constant_values=value)

        padded = {"source_ids": pad(source, self.source_pad_id), "target_ids": pad(target, self.pad_id)}
        return padded, pad(labels, self.pad_id), pad(weights, 0.0)

    def pack(self, source_ids, target):
        """`pack_rows`, padded: `({"source_ids": (B, S), "target_ids": (B, T)}, labels (B, T),
        sample_weight (B, T))`, weight 0 on padding."""
        rows = self.pack_rows(source_ids, target)
        return self.as_batch(*(_dense(row, pad) for row, pad in zip(rows, self.padding_values)))

    def training_batch(self, sources, targets, overlong="truncate"):
        """Teacher-forced `(inputs, labels, sample_weight)` of `(B,)` string pairs (see `pack`).

        Pairs without source or target content are dropped; over-long ones
        are truncated (`overlong="truncate"`) or dropped (`"drop"`).
        """
        check_overlong(overlong)
        source_ids, target, empty, too_long, _ = self.tokenize_pairs(sources, targets)
        keep = tf.logical_not(empty | too_long) if overlong == "drop" else tf.logical_not(empty)
        return self.pack(tf.ragged.boolean_mask(source_ids, keep), tf.ragged.boolean_mask(target, keep))

    def batches(self, data, batch_size, shuffle=True, seed=0, overlong="truncate", log=None):
        """Training batches of `data`: `(tf.data.Dataset of training_batch outputs, BatchStats or None)`.

        Args:
            data: a list of `(source, target)` string pairs, the path of a
                `source<TAB>target` file (`zoo.data.translation_data.read_tsv`:
                bad lines skipped and reported, a file of mostly bad lines an
                error), or a `tf.data.Dataset` of `(source, target)` strings,
                one pair (`()` shapes) or a batch (`(B,)`) per element.
            batch_size: int. Pairs per batch (a dataset of batches keeps its own).
            shuffle: bool. Shuffle pairs and paths (with `seed`, anew each
                epoch); a dataset is used in its own order. Defaults to `True`.
            seed: int. Defaults to `0`.
            overlong: `"truncate"` or `"drop"`. Defaults to `"truncate"`.
            log: callable taking a line, or None. Told what was read and kept.

        Pairs and paths are bucketed by length and counted
        (`zoo.data.translation_data.make_batches`); a dataset is batched as
        it comes, and its counts are unknown (`None`). Either way each batch
        is padded to a bucket width (`bucket_padded`).

        Raises:
            TypeError: `data` is none of these, or holds something other than string pairs.
            zoo.data.translation_data.DataError: no usable pairs (an empty
                list, an empty or mostly bad file, pairs empty once tokenized).
        """
        check_overlong(overlong)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        if isinstance(data, tf.data.Dataset):
            return self._dataset_batches(data, batch_size, overlong), None
        if isinstance(data, (str, os.PathLike)):
            data, report = translation_data.read_tsv(os.fspath(data))
            if log is not None:
                log(str(report))
        dataset, stats = translation_data.make_batches(
            _string_pairs(data), self, batch_size, overlong=overlong, shuffle=shuffle, seed=seed
        )
        if log is not None:
            log(str(stats))
        return dataset, stats

    def _dataset_batches(self, data, batch_size, overlong):
        spec = data.element_spec
        ranks = [s.shape.rank for s in spec] if isinstance(spec, tuple) and len(spec) == 2 else []
        if not (ranks and all(isinstance(s, tf.TensorSpec) and s.dtype == tf.string for s in spec)
                and ranks[0] == ranks[1] and ranks[0] in (0, 1)):
            raise TypeError(
                "A tf.data.Dataset for training must yield (source, target) tf.string pairs, one pair or a batch "
                f"(shapes () or (None,)) per element. Received: element_spec={spec}"
            )
        if ranks[0] == 0:
            data = data.batch(batch_size)
        data = data.map(lambda s, t: self.bucket_padded(*self.training_batch(s, t, overlong)),
                        num_parallel_calls=tf.data.AUTOTUNE)
        # A batch whose pairs were all dropped would be a step without tokens.
        return data.filter(lambda inputs, labels, weights: tf.shape(labels)[0] > 0).prefetch(tf.data.AUTOTUNE)

    # -- saved settings -----------------------------------------------------------
    def get_config(self):
        """The settings saved in the task folder (the tokenizers are saved as files)."""
        return {"max_length": self.max_length}

    def __repr__(self):
        return (
            f"<TranslationPreprocessor {type(self.source_tokenizer).__name__} -> "
            f"{type(self.target_tokenizer).__name__}, max_length={self.max_length}>"
        )
