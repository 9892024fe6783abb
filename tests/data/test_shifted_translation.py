import re

import pytest

from zoo.data.builtin_translation import generate_pairs
from zoo.data.shifted_translation import SHIFTED_NOUNS, shifted_pairs, shifted_splits


def _words(pairs, side):
    return {word.lower() for pair in pairs for word in re.findall(r"\w+", pair[side])}


def test_new_nouns_are_absent_from_the_builtin_corpus_and_present_in_the_shifted_domain():
    builtin = generate_pairs(3000, seed=0)
    shifted = shifted_pairs()
    for side, forms in ((0, lambda n: (n.en, n.en_plural)), (1, lambda n: (n.de, n.de_plural))):
        new = {form.lower() for noun in SHIFTED_NOUNS for form in forms(noun)}
        assert not new & _words(builtin, side)
        assert new <= _words(shifted, side)  # every noun, singular and plural, is in the data


def test_pairs_are_deterministic_unique_and_split_without_overlap():
    pairs = shifted_pairs(400, seed=3)
    assert pairs == shifted_pairs(400, seed=3) != shifted_pairs(400, seed=4)
    assert len({en for en, _ in pairs}) == len({de for _, de in pairs}) == 400
    splits = shifted_splits(400, test_pairs=100, seed=3)
    assert splits["test"] + splits["train"] == pairs
    assert not {en for en, _ in splits["test"]} & {en for en, _ in splits["train"]}


def test_german_agrees_with_the_new_nouns():
    pairs = dict(shifted_pairs(400))
    # gender and plural of the new nouns reach the articles and adjective endings
    assert any(re.search(r"\b(einen|den|keinen) (\w+ )?Hund\b", de) for de in pairs.values())
    assert any(re.search(r"\bVögel\b", de) for de in pairs.values())
    assert any(re.search(r"\b(eine|die|keine) (\w+ )?Kuh\b", de) for de in pairs.values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_pairs=0), "num_pairs must be a positive int. Received: num_pairs=0"),
    (dict(num_pairs=2.5), "num_pairs must be a positive int. Received: num_pairs=2.5"),
])
def test_bad_sizes_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        shifted_pairs(**kwargs)


def test_bad_split_is_named():
    message = "test_pairs must be between 0 and num_pairs. Received: test_pairs=50, num_pairs=50"
    with pytest.raises(ValueError, match=message):
        shifted_splits(50, test_pairs=50)
