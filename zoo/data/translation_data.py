"""Parallel text in, teacher-forced batches out.

Sources (`load_translation_data`): the built-in English-German corpus,
any tab-separated file, or a TFDS translation dataset. Batches
(`make_batches`): tokenized with the tokenizers' in-graph ops, over-long
pairs truncated or dropped (counted), bucketed by length, with decoder input
= `[START] + target`, labels = `target + [END]`, and sample weights that
mask padding.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from zoo.data import builtin_translation

SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """Raised for unusable input data; the message names the file and line."""


def read_tsv(path):
    """Reads `source<TAB>target` lines; returns `(pairs, skipped_empty_lines)`.

    Empty lines are skipped and counted. A line without a tab, with an empty
    side, or with bytes that are not UTF-8 raises `DataError` naming the
    line, so nothing is silently lost.
    """
    if not os.path.exists(path):
        raise DataError(f"TSV file not found: {path!r}")
    pairs, empty = [], 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{number}: not valid UTF-8 ({e.reason} at byte {e.start}: "
                    f"{raw[max(0, e.start - 10):e.start + 10]!r}). Re-encode the file as UTF-8."
                ) from None
            if not line.strip():
                empty += 1
                continue
            if "\t" not in line:
                raise DataError(
                    f"{path}:{number}: expected 'source<TAB>target', found no tab in {line[:80]!r}"
                )
            source, target = line.split("\t", 1)
            if not source.strip() or not target.strip():
                raise DataError(f"{path}:{number}: empty source or target in {line[:80]!r}")
            pairs.append((source.strip(), target.strip().split("\t")[0]))
    if not pairs:
        raise DataError(f"{path}: no sentence pairs found")
    return pairs, empty


def _split_deterministically(pairs, validation_fraction=0.05, test_fraction=0.05, seed=0):
    """Train/validation/test by a fixed permutation, held out by unique source sentence."""
    sources = sorted({s for s, _ in pairs})
    order = np.random.default_rng(seed).permutation(len(sources))
    n_test = max(1, int(len(sources) * test_fraction))
    n_val = max(1, int(len(sources) * validation_fraction))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[sources[i]] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
    splits = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[split_of[pair[0]]].append(pair)
    return splits


def load_tfds(name, data_dir=None):
    """Pairs from a TFDS translation dataset such as `ted_hrlr_translate/pt_to_en`.

    Uses the dataset's supervised `(source, target)` keys; a dataset without
    validation or test splits gets them carved out of train.
    """
    import tensorflow_datasets as tfds  # only needed for this source

    splits = {}
    for split in SPLITS:
        try:
            ds = tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
        except ValueError as e:  # unknown split
            if split == "train":
                raise DataError(f"TFDS dataset {name!r} has no train split: {e}") from None
            continue
        splits[split] = [(s.decode("utf-8"), t.decode("utf-8")) for s, t in tfds.as_numpy(ds)]
    if "validation" not in splits or "test" not in splits:
        held = _split_deterministically(splits["train"])
        splits = {k: splits.get(k) or held[k] for k in SPLITS}
    return splits


def load_translation_data(spec, data_dir=None):
    """`{"train": pairs, "validation": pairs, "test": pairs}` from a data spec.

    `spec` is `builtin`, `tsv:PATH` (split 90/5/5 by source sentence) or
    `tfds:NAME`.
    """
    if spec == "builtin":
        return builtin_translation.load_splits()
    if spec.startswith("tsv:"):
        pairs, _ = read_tsv(spec[4:])
        return _split_deterministically(pairs)
    if spec.startswith("tfds:"):
        return load_tfds(spec[5:], data_dir=data_dir)
    raise DataError(f"Unknown data source {spec!r}. Expected 'builtin', 'tsv:PATH' or 'tfds:NAME'.")


@dataclasses.dataclass
class BatchStats:
    """What `make_batches` did to the pairs, for the training log."""

    pairs: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_empty: int = 0

    def __str__(self):
        return (
            f"{self.pairs} pairs kept, {self.truncated} truncated, "
            f"{self.dropped_too_long} dropped as too long, {self.dropped_empty} dropped as empty"
        )


def _tokenize(tokenizer, texts, chunk=4096):
    rows = []
    for i in range(0, len(texts), chunk):
        rows.extend(t.numpy() for t in tokenizer.tokenize(tf.constant(texts[i : i + chunk])))
    return rows


def make_batches(
    pairs,
    source_tokenizer,
    target_tokenizer,
    batch_size,
    max_length,
    overlong="truncate",
    shuffle=True,
    seed=0,
):
    """Builds the teacher-forced `tf.data.Dataset` and the `BatchStats`.

    Elements are `({"source_ids": (B, S), "target_ids": (B, T)}, labels (B, T),
    sample_weight (B, T))`: `target_ids` is `[START] + target`, `labels` is
    `target + [END]`, padding is 0 with weight 0. Sources hold at most
    `max_length` tokens and targets `max_length - 1` (room for START/END);
    `overlong="truncate"` cuts longer ones, `"drop"` drops the pair.
    Batches are bucketed by length so little compute goes to padding.
    """
    if overlong not in ("truncate", "drop"):
        raise ValueError(f"overlong must be 'truncate' or 'drop'. Received: overlong={overlong!r}")
    stats = BatchStats()
    sources = _tokenize(source_tokenizer, [s for s, _ in pairs])
    targets = _tokenize(target_tokenizer, [t for _, t in pairs])
    start, end = target_tokenizer.start_id, target_tokenizer.end_id
    kept_src, kept_in, kept_out = [], [], []
    for src, tgt in zip(sources, targets):
        if len(src) == 0 or len(tgt) == 0:
            stats.dropped_empty += 1
            continue
        too_long = len(src) > max_length or len(tgt) > max_length - 1
        if too_long and overlong == "drop":
            stats.dropped_too_long += 1
            continue
        stats.truncated += int(too_long)
        src, tgt = src[:max_length], tgt[: max_length - 1]
        kept_src.append(src)
        kept_in.append(np.concatenate([[start], tgt]))
        kept_out.append(np.concatenate([tgt, [end]]))
    stats.pairs = len(kept_src)
    if not kept_src:
        raise DataError(f"No usable sentence pairs after tokenization ({stats})")

    def ragged(rows):
        return tf.RaggedTensor.from_row_lengths(
            np.concatenate(rows).astype("int32"), [len(r) for r in rows]
        )

    ds = tf.data.Dataset.from_tensor_slices((ragged(kept_src), ragged(kept_in), ragged(kept_out)))
    if shuffle:
        ds = ds.shuffle(len(kept_src), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda s, i, o: (s, i, o, tf.cast(tf.ones_like(o), tf.float32)))
    boundaries = [b for b in (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256) if b < max_length]
    ds = ds.bucket_by_sequence_length(
        lambda s, i, o, w: tf.maximum(tf.shape(s)[0], tf.shape(i)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        pad_to_bucket_boundary=False,
    )
    ds = ds.map(lambda s, i, o, w: ({"source_ids": s, "target_ids": i}, o, w))
    return ds.prefetch(tf.data.AUTOTUNE), stats
