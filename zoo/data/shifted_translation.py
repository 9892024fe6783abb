"""A small English-German corpus of a shifted domain: nouns the built-in corpus never uses.

Transfer needs data that a model trained on the built-in corpus
(`zoo.data.builtin_translation`) has not seen, yet can learn from a few
hundred pairs. These pairs keep the built-in corpus' grammar (the same
clause rules of `zoo.data.german_grammar`: statements, questions, "that"
clauses, present, past, negation, modals) and swap its objects for fifteen
nouns that none of its sentences contains (animals, instruments, household
things: "dog" / "Hund", "violin" / "Geige", ...), each with its German
gender and plural, so articles, adjective endings and plurals must be
learnt for new words. Written here because no offline corpus has such a
domain shift by construction; generated deterministically from a seed.

A tokenizer learnt on the built-in corpus has never seen these words: a
WordPiece vocabulary splits them into sub-words it has (down to single
letters, all of which occur in the built-in corpus), so they are
translatable without a new vocabulary, but as several tokens each.

Example:

>>> pairs = shifted_pairs(num_pairs=3, seed=0)
>>> len(pairs), len({en for en, _ in pairs})
(3, 3)
>>> shifted_splits(num_pairs=40, test_pairs=10)["test"][0] in shifted_pairs(num_pairs=40)
True
"""

import random

from zoo.data import german_lexicon as lex
from zoo.data.german_grammar import (
    Phrase, name_subject, pronoun, question, statement, that_clause, transitive_clause)
from zoo.data.german_lexicon import Noun

# en | en plural | de | gender | de plural: none occurs in the built-in corpus (all 30,000 pairs checked when
# the list was written; tests/data/test_shifted_translation.py checks a sample).
SHIFTED_NOUNS = tuple(Noun(*line.split("|"), kind="N") for line in """
dog|dogs|Hund|m|Hunde
cat|cats|Katze|f|Katzen
horse|horses|Pferd|n|Pferde
bird|birds|Vogel|m|Vögel
cow|cows|Kuh|f|Kühe
sheep|sheep|Schaf|n|Schafe
rabbit|rabbits|Kaninchen|n|Kaninchen
guitar|guitars|Gitarre|f|Gitarren
violin|violins|Geige|f|Geigen
piano|pianos|Klavier|n|Klaviere
computer|computers|Computer|m|Computer
camera|cameras|Kamera|f|Kameras
mirror|mirrors|Spiegel|m|Spiegel
blanket|blankets|Decke|f|Decken
pillow|pillows|Kissen|n|Kissen
""".strip().splitlines())
# Built-in verbs and adjectives that fit all of them.
_VERBS = ("buy", "need", "see", "find", "sell", "carry", "forget", "bring")
_ADJECTIVES = ("big", "small", "old", "new", "beautiful", "black", "white", "cheap", "expensive")
_FORMS = ("present", "present", "negated", "past", "modal")


def _shifted_pair(rng):
    count = 1 if rng.random() < 0.5 else rng.randint(2, 9)
    det = rng.choice(["a", "a", "the"] + ["my", "our"] * (count == 1))
    adjective = rng.choice(_ADJECTIVES) if rng.random() < 0.5 else ""
    obj = Phrase(rng.choice(SHIFTED_NOUNS), count, adjective, det)
    if rng.random() < 0.6:
        subject = pronoun(rng.choice(["I", "you", "he", "she", "we", "they"]))
    else:
        subject = name_subject(rng.choice(sorted(lex.NAMES)))
    form = rng.choice(_FORMS)
    modal = rng.choice(sorted(lex.MODALS))
    time = ("yesterday", "gestern") if form == "past" and rng.random() < 0.5 else ("", "")
    clause = transitive_clause(subject, lex.TRANSITIVE[rng.choice(_VERBS)], obj, form, time, modal)
    r = rng.random()
    if r < 0.2 and "not" not in clause.en_statement:
        return question(clause)
    if r < 0.35:
        return that_clause(pronoun("I"), lex.OTHER_VERBS[rng.choice(["know", "think", "hope"])], clause)
    return statement(clause)


def shifted_pairs(num_pairs=400, seed=0):
    """`num_pairs` (english, german) pairs about `SHIFTED_NOUNS`, no sentence repeated on either side.

    Deterministic for a given `seed` (a private `random.Random`).

    Raises:
        ValueError: `num_pairs` is not a positive int, or more than the templates give.
    """
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"num_pairs must be a positive int. Received: num_pairs={num_pairs!r}")
    rng = random.Random(seed)
    pairs, seen_en, seen_de = [], set(), set()
    for _ in range(20 * num_pairs):
        en, de = _shifted_pair(rng)
        if en not in seen_en and de not in seen_de:
            seen_en.add(en)
            seen_de.add(de)
            pairs.append((en, de))
            if len(pairs) == num_pairs:
                return pairs
    raise ValueError(f"The templates produced only {len(pairs)} unique pairs. Received: num_pairs={num_pairs}")


def shifted_splits(num_pairs=400, test_pairs=100, seed=0):
    """`{"train": pairs, "test": pairs}`: `shifted_pairs(num_pairs, seed)`, its first `test_pairs` for test.

    No English or German sentence is in both (the pairs are unique on each side).
    """
    if not 0 < test_pairs < num_pairs:
        raise ValueError(
            f"test_pairs must be between 0 and num_pairs. Received: test_pairs={test_pairs}, num_pairs={num_pairs}")
    pairs = shifted_pairs(num_pairs, seed)
    return {"train": pairs[test_pairs:], "test": pairs[:test_pairs]}
