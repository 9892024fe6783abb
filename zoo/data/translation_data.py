"""Parallel text in, teacher-forced batches out.

Sources (`load_translation_data`): the built-in English-German corpus,
any tab-separated file (bad lines skipped and reported, or fatal with
`strict`), or a TFDS translation dataset. Batches (`make_batches`):
bucketed by length, built by the task's preprocessor
(`zoo.preprocessing.TranslationPreprocessor`, passed in: it sits above
this package), which alone decides ids, truncation and padding.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from zoo.data import builtin_translation

SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """Raised for unusable input data; the message names the file and line."""


MAX_BAD_SHARE = 0.1  # more bad lines than this means a wrong file, delimiter or encoding
SHOWN_BAD_LINES = 5


@dataclasses.dataclass
class TsvReport:
    """What `read_tsv` read: pairs, blank lines, and bad lines by kind with the first few named."""

    path: str
    lines: int = 0
    pairs: int = 0
    blank: int = 0
    extra_columns: int = 0
    bad: dict = dataclasses.field(default_factory=dict)  # kind -> count
    examples: list = dataclasses.field(default_factory=list)  # "path:line: what is wrong"

    @property
    def bad_lines(self):
        return sum(self.bad.values())

    def __str__(self):
        parts = [f"{self.path}: {self.pairs} sentence pairs from {self.lines} lines"]
        if self.blank:
            parts.append(f"{self.blank} blank line{'s' * (self.blank != 1)} skipped")
        if self.bad:
            kinds = ", ".join(f"{count} {kind}" for kind, count in self.bad.items())
            parts.append(f"{self.bad_lines} bad line{'s' * (self.bad_lines != 1)} skipped ({kinds})")
        if self.extra_columns:
            parts.append(f"{self.extra_columns} with more than two columns (extra columns ignored)")
        more = self.bad_lines - len(self.examples)
        return "; ".join(parts) + "".join(f"\n  {example}" for example in self.examples) + (
            f"\n  ... and {more} more" if more > 0 else ""
        )


class _BadLine(Exception):
    def __init__(self, kind, why):
        super().__init__(kind, why)
        self.kind, self.why = kind, why


def _parse_tsv_line(raw):
    """`((source, target), has_extra_columns)` of one line, `None` for a blank one; raises `_BadLine`."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise _BadLine(
            "not UTF-8", f"not valid UTF-8 ({e.reason} at byte {e.start}: {raw[max(0, e.start - 10):e.start + 10]!r})"
        ) from None
    if not line.strip():
        return None
    if "\t" not in line:
        raise _BadLine("no tab", f"expected 'source<TAB>target', found no tab in {line[:80]!r}")
    columns = line.split("\t")
    source, target = columns[0].strip(), columns[1].strip()
    if not source or not target:
        raise _BadLine("empty side", f"empty source or target in {line[:80]!r}")
    return (source, target), len(columns) > 2


def read_tsv(path, strict=False, max_bad_share=MAX_BAD_SHARE):
    """Reads `source<TAB>target` lines (further columns ignored); returns `(pairs, TsvReport)`.

    Lines end at LF, CRLF or a lone CR (old Mac files). Blank lines are
    skipped and counted. A bad line (no tab, an empty side, bytes that are
    not UTF-8) is skipped, counted by kind and, for the first few, named as
    `path:line` in the report; with `strict` it raises `DataError` instead.
    More than `max_bad_share` of the non-blank lines bad raises `DataError`
    too: the file is likely not a UTF-8 TSV.
    """
    if not os.path.exists(path):
        raise DataError(f"TSV file not found: {path!r}")
    pairs, report = [], TsvReport(path)
    # Latin-1 maps every byte to one character, so each line's bytes come back exactly (for the UTF-8
    # check below), and newline=None ends lines at LF, CRLF and a lone CR alike (UTF-8 never puts
    # those bytes inside a character).
    with open(path, encoding="latin-1", newline=None) as f:
        for number, line in enumerate(f, start=1):
            raw = line.encode("latin-1")
            report.lines = number
            try:
                parsed = _parse_tsv_line(raw.removeprefix(b"\xef\xbb\xbf") if number == 1 else raw)  # BOM
            except _BadLine as e:
                kind, why = e.kind, e.why
                if strict:
                    raise DataError(f"{path}:{number}: {why} (without --strict, bad lines are skipped)") from None
                report.bad[kind] = report.bad.get(kind, 0) + 1
                if len(report.examples) < SHOWN_BAD_LINES:
                    report.examples.append(f"{path}:{number}: {why}")
                continue
            if parsed is None:
                report.blank += 1
                continue
            pairs.append(parsed[0])
            report.extra_columns += int(parsed[1])
    report.pairs = len(pairs)
    content = report.lines - report.blank
    if content and report.bad_lines > max_bad_share * content:
        raise DataError(
            f"{report.bad_lines} of the {content} non-blank lines of {path} are bad, more than "
            f"{max_bad_share:.0%}: is it a UTF-8 file of source<TAB>target lines? First: {report.examples[0]}"
        )
    if not pairs:
        raise DataError(f"{path}: no sentence pairs found ({report.lines} lines)")
    return pairs, report


def _split_deterministically(pairs, validation_fraction=0.05, test_fraction=0.05, seed=0, source="the data"):
    """Train/validation/test by a fixed permutation, held out by unique source sentence.

    Validation and test hold at least one source sentence each, so `pairs`
    need at least 3 distinct sources (a `DataError` naming `source` below that).
    """
    sources = sorted({s for s, _ in pairs})
    if len(sources) < len(SPLITS):
        raise DataError(
            f"{source} has {len(sources)} distinct source sentence{'s' * (len(sources) != 1)}; splitting it into "
            f"train, validation and test needs at least {len(SPLITS)} (one each)."
        )
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


def tfds_splits(name, data_dir, convert):
    """`({split: convert(dataset)}, builder)`: those of TFDS dataset `name`'s train, validation and test
    splits that exist, as supervised `(input, target)` datasets; a DataError when train does not."""
    import tensorflow_datasets as tfds  # only needed for this source

    builder = tfds.builder(name, data_dir=data_dir)
    known = set(builder.info.splits.keys())  # empty when the info is thin (e.g. mocked): try them all
    splits = {}
    for split in SPLITS:
        if known and split not in known:
            continue
        try:
            ds = tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
        except ValueError as e:  # unknown split
            if split == "train":
                raise DataError(f"TFDS dataset {name!r} has no usable train split: {e}") from None
            continue
        splits[split] = convert(ds)
    if "train" not in splits:
        raise DataError(f"TFDS dataset {name!r} has no train split. Received splits: {sorted(known)}")
    return splits, builder


def load_tfds(name, data_dir=None):
    """Pairs from a TFDS translation dataset such as `ted_hrlr_translate/pt_to_en`.

    Uses the dataset's supervised `(source, target)` keys; a dataset without
    validation or test splits gets them carved out of train.
    """

    def pairs(ds):
        return [(s.decode("utf-8"), t.decode("utf-8")) for s, t in ds.as_numpy_iterator()]

    splits, _ = tfds_splits(name, data_dir, pairs)
    if "validation" not in splits or "test" not in splits:
        held = _split_deterministically(splits["train"])
        splits = {k: splits.get(k) or held[k] for k in SPLITS}
    return splits


def load_translation_data(spec, data_dir=None, strict=False):
    """`{"train": pairs, "validation": pairs, "test": pairs}` from a data spec.

    `spec` is `builtin`, `tsv:PATH` (split 90/5/5 by source sentence, at
    least one sentence each, so at least 3 distinct sources; what
    was read and skipped is printed, see `read_tsv` for `strict`) or
    `tfds:NAME`.
    """
    if spec == "builtin":
        return builtin_translation.load_splits()
    if spec.startswith("tsv:"):
        pairs, report = read_tsv(spec[4:], strict=strict)
        print(report)
        return _split_deterministically(pairs, source=spec[4:])
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
            f"{self.dropped_too_long} dropped as too long, {self.dropped_empty} dropped as empty once tokenized"
        )


BUCKET_BOUNDARIES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)  # batches hold pairs of lengths between two


def bucket_widths(max_length):
    """The widths training batches of rows of at most `max_length` ids are padded to: each bucket's longest
    length (`BUCKET_BOUNDARIES` below `max_length`, less one), then `max_length`.

    >>> bucket_widths(40)
    [7, 11, 15, 23, 31, 40]
    """
    return [b - 1 for b in BUCKET_BOUNDARIES if b < max_length] + [max_length]


def _columns(pairs):
    """`(sources, targets)`: `(N,)` object arrays of the pairs' two sides."""
    table = np.empty((len(pairs), 2), dtype=object)
    try:
        table[:] = pairs
    except (ValueError, TypeError):
        raise DataError("make_batches takes a list of (source, target) pairs of strings.") from None
    return table[:, 0], table[:, 1]


def _tokenized(preprocessor, sources, targets, chunk):
    """`preprocessor.tokenize_pairs` of all pairs, `chunk` pairs per call, joined."""
    parts = [
        preprocessor.tokenize_pairs(tf.constant(sources[i : i + chunk], tf.string), tf.constant(targets[i : i + chunk]))
        for i in range(0, len(sources), chunk)
    ]
    return [tf.concat([part[k] for part in parts], axis=0) for k in range(len(parts[0]))]


def make_batches(pairs, preprocessor, batch_size, overlong="truncate", shuffle=True, seed=0, chunk=8192):
    """Builds the teacher-forced `tf.data.Dataset` and the `BatchStats`.

    `preprocessor` (a `zoo.preprocessing.TranslationPreprocessor`) decides
    everything about the ids: elements are what its `training_batch` gives
    for a batch of string pairs, `({"source_ids": (B, S), "target_ids":
    (B, T)}, labels (B, T), sample_weight (B, T))`: sources truncated as
    serving truncates them, targets to `max_length - 1` ids plus start /
    end, padding the tokenizers' pad ids with weight 0.
    `overlong="truncate"` cuts longer pairs, `"drop"` leaves them out;
    pairs empty once tokenized are left out; both are counted.

    All pairs are tokenized and packed once, `chunk` at a time
    (`tokenize_pairs`, `pack_rows`: vectorised on ragged tensors); each
    epoch then shuffles them (with `seed`) and pads batches of similar
    length (buckets, so little compute goes to padding) with the
    preprocessor's `padding_values`, to their bucket's longest length
    (`bucket_widths`, `TranslationPreprocessor.bucket_padded`): a few shapes.
    """
    if not hasattr(preprocessor, "tokenize_pairs"):
        raise TypeError(
            f"make_batches takes a zoo.preprocessing.TranslationPreprocessor. Received: {type(preprocessor).__name__}"
        )
    if overlong not in ("truncate", "drop"):
        raise ValueError(f"overlong must be 'truncate' or 'drop'. Received: overlong={overlong!r}")
    if not len(pairs):
        raise DataError("No sentence pairs to make batches of (received an empty list).")
    source_ids, target, empty, too_long, lengths = _tokenized(preprocessor, *_columns(pairs), chunk)
    empty, too_long = empty.numpy(), too_long.numpy()
    dropped = empty | (too_long if overlong == "drop" else False)
    cut = int(np.sum(too_long & ~empty))
    stats = BatchStats(
        pairs=int(np.sum(~dropped)),
        truncated=0 if overlong == "drop" else cut,
        dropped_too_long=cut if overlong == "drop" else 0,
        dropped_empty=int(np.sum(empty)),
    )
    if not stats.pairs:
        raise DataError(f"No usable sentence pairs after tokenization ({stats})")
    kept = np.flatnonzero(~dropped)
    rows = preprocessor.pack_rows(tf.gather(source_ids, kept), tf.gather(target, kept))
    lengths = tf.gather(lengths, kept)
    # A row of a ragged batch is a plain tensor, once passed through a function: what padding takes.
    ds = tf.data.Dataset.from_tensor_slices((*rows, lengths)).map(lambda *row: row)
    if shuffle:
        ds = ds.shuffle(stats.pairs, seed=seed, reshuffle_each_iteration=True)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < preprocessor.max_length]
    pads = tuple(tf.constant(value, spec.dtype) for value, spec in zip(preprocessor.padding_values, ds.element_spec))
    ds = ds.bucket_by_sequence_length(
        lambda *row: row[-1],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(*pads, tf.constant(0, tf.int32)),
    )
    ds = ds.map(lambda *batch: preprocessor.bucket_padded(*preprocessor.as_batch(*batch[:4])),
                num_parallel_calls=tf.data.AUTOTUNE)
    # Each bucket ends with one short batch: the count is known, and Keras' progress bars show it.
    buckets = np.searchsorted(boundaries, lengths.numpy(), side="right")
    batches = int(np.sum(-(-np.bincount(buckets) // batch_size)))
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE), stats
