"""make_batches: the same seed gives the same batches, run after run; each epoch
is a new order of every pair exactly once; another seed gives another order."""

import numpy as np
import pytest

from zoo.data.translation_data import make_batches
from zoo.preprocessing import TranslationPreprocessor
from zoo.text import WordPieceTokenizer

WORDS = "one two three four five six seven eight nine ten".split()
# Distinct pairs of 2 to 6 words, so batches fall in different length buckets.
PAIRS = [(" ".join(WORDS[i % 10 : i % 10 + 2 + i % 5]) + f" {i}", " ".join(WORDS[: 2 + i % 4]) + f" {i}")
         for i in range(120)]


@pytest.fixture(scope="module")
def preprocessor():
    return TranslationPreprocessor(
        WordPieceTokenizer.from_corpus([s for s, _ in PAIRS], 200, lowercase=False),
        WordPieceTokenizer.from_corpus([t for _, t in PAIRS], 200, lowercase=False),
        max_length=12,
    )


def _epochs(preprocessor, seed, shuffle=True, epochs=2):
    ds, _ = make_batches(PAIRS, preprocessor, batch_size=8, shuffle=shuffle, seed=seed)
    runs = []
    for _ in range(epochs):  # each iteration of the dataset is an epoch
        runs.append([tuple(map(tuple, inputs["source_ids"].numpy())) for inputs, _, _ in ds])
    return runs


def _rows(batches):
    return sorted(tuple(t for t in row if t) for batch in batches for row in batch)


def test_same_seed_same_batches_and_each_epoch_reshuffles(preprocessor):
    first, again = _epochs(preprocessor, seed=3), _epochs(preprocessor, seed=3)
    assert first == again  # rebuilt from scratch: the same two epochs
    assert first[0] != first[1]  # a new order each epoch
    every = _rows(_epochs(preprocessor, seed=0, shuffle=False)[0])
    assert len(every) == len(PAIRS) and len(set(every)) == len(PAIRS)
    for epoch in first:  # every pair once per epoch
        assert _rows(epoch) == every
    assert _epochs(preprocessor, seed=4)[0] != first[0]


def test_without_shuffle_the_order_is_fixed(preprocessor):
    assert _epochs(preprocessor, seed=0, shuffle=False) == _epochs(preprocessor, seed=5, shuffle=False)
