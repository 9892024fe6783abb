import datetime
import re

import pytest

from zoo.data import builtin_translation as bt
from zoo.data import german_lexicon as lex
from zoo.data.german_grammar import (
    Phrase, because_clause, born_clause, make_clause, name_subject, np_subject, pronoun,
    question, recipe_clause, statement, that_clause, there_is, transitive_clause)

NOUNS, VERBS = lex.NOUNS, lex.TRANSITIVE


@pytest.fixture(scope="module")
def pairs():
    return bt.generate_pairs()


@pytest.fixture(scope="module")
def splits():
    return bt.load_splits()


# ------------------------------------------------- exact renderings of fixed slot values

CASES = {
    "ein Apfel (nominative)": (
        there_is(Phrase(NOUNS["apple"]), "on the table"),
        ("There is an apple on the table.", "Auf dem Tisch ist ein Apfel.")),
    "zwei Äpfel, strong plural adjective": (
        there_is(Phrase(NOUNS["apple"], 2, "red"), "in the basket"),
        ("There are two red apples in the basket.", "Im Korb sind zwei rote Äpfel.")),
    "mixed nominative ending": (
        there_is(Phrase(NOUNS["book"], 1, "new"), "in the bag"),
        ("There is a new book in the bag.", "In der Tasche ist ein neues Buch.")),
    "accusative den, weak adjective": (
        statement(transitive_clause(name_subject("Anna"), VERBS["buy"],
                                    Phrase(NOUNS["umbrella"], adjective="new", det="the"))),
        ("Anna buys the new umbrella.", "Anna kauft den neuen Regenschirm.")),
    "accusative einen": (
        statement(transitive_clause(pronoun("she"), VERBS["need"],
                                    Phrase(NOUNS["umbrella"], adjective="expensive"))),
        ("She needs an expensive umbrella.", "Sie braucht einen teuren Regenschirm.")),
    "kein": (
        statement(transitive_clause(pronoun("I"), VERBS["need"], Phrase(NOUNS["umbrella"]),
                                    form="negated")),
        ("I do not need an umbrella.", "Ich brauche keinen Regenschirm.")),
    "nicht after a definite object": (
        statement(transitive_clause(pronoun("he"), VERBS["eat"],
                                    Phrase(NOUNS["apple"], 0, det="the"), form="negated")),
        ("He does not eat the apples.", "Er isst die Äpfel nicht.")),
    "verb-final subordinate clause": (
        that_clause(pronoun("I"), lex.OTHER_VERBS["know"],
                    transitive_clause(pronoun("she"), VERBS["buy"], Phrase(NOUNS["apple"], 3))),
        ("I know that she buys three apples.", "Ich weiß, dass sie drei Äpfel kauft.")),
    "separable verb, main clause": (
        statement(transitive_clause(pronoun("we"), VERBS["bring"], Phrase(NOUNS["bottle"], 2))),
        ("We bring two bottles.", "Wir bringen zwei Flaschen mit.")),
    "separable verb, subordinate clause": (
        that_clause(pronoun("he"), lex.OTHER_VERBS["say"],
                    transitive_clause(pronoun("we"), VERBS["bring"], Phrase(NOUNS["bottle"], 2))),
        ("He says that we bring two bottles.", "Er sagt, dass wir zwei Flaschen mitbringen.")),
    "fronted time, verb second, participle last": (
        statement(transitive_clause(pronoun("she"), VERBS["buy"], Phrase(NOUNS["apple"], 3),
                                    form="past", time=("yesterday", "gestern")), front_time=True),
        ("Yesterday she bought three apples.", "Gestern hat sie drei Äpfel gekauft.")),
    "modal, infinitive last": (
        statement(transitive_clause(pronoun("you"), VERBS["eat"], Phrase(NOUNS["apple"]),
                                    form="modal", modal="want")),
        ("You want to eat an apple.", "Du willst einen Apfel essen.")),
    "question by inversion": (
        question(bt.language_clause(pronoun("she"), lex.LANGUAGE_VERBS["speak"], ["fr"])),
        ("Does she speak French?", "Spricht sie Französisch?")),
    "dative recipient": (
        statement(transitive_clause(pronoun("she"), lex.DITRANSITIVE["give"],
                                    Phrase(NOUNS["apple"], 2),
                                    recipient=Phrase(lex.FAMILY["brother"], det="her"))),
        ("She gives her brother two apples.", "Sie gibt ihrem Bruder zwei Äpfel.")),
    "dative after mit, dative plural -n": (
        statement(recipe_clause(pronoun("I"), "soup", [Phrase(NOUNS["apple"], 3),
                                                      Phrase(NOUNS["onion"], 1, "red")])),
        ("I am making a soup with three apples and a red onion.",
         "Ich mache eine Suppe mit drei Äpfeln und einer roten Zwiebel.")),
    "time-manner-place": (
        statement(bt.motion_clause(pronoun("we"), lex.MOTION["travel"], "ES", "train",
                                   ("on Monday", "am Montag"))),
        ("We are travelling to Spain by train on Monday.",
         "Wir reisen am Montag mit dem Zug nach Spanien.")),
    "country with article": (
        statement(bt.motion_clause(pronoun("she"), lex.MOTION["fly"], "CH")),
        ("She is flying to Switzerland.", "Sie fliegt in die Schweiz.")),
    "plural country, dative": (
        statement(bt.place_clause(pronoun("they"), lex.OTHER_VERBS["live"], "NL")),
        ("They live in the Netherlands.", "Sie wohnen in den Niederlanden.")),
    "seit + present": (
        statement(bt.language_clause(pronoun("I"), lex.LANGUAGE_VERBS["learn"], ["fr"],
                                     "perfect_progressive", ("year", 3))),
        ("I have been learning French for three years.",
         "Ich lerne seit drei Jahren Französisch.")),
    "date with weekday, separable verb": (
        statement(make_clause(np_subject(Phrase(lex.EVENTS["concert"], det="the")),
                              lex.OTHER_VERBS["take place"],
                              time=bt.date_phrase(datetime.date(2021, 3, 1)))),
        ("The concert takes place on Monday, the 1st of March 2021.",
         "Das Konzert findet am Montag, dem 1. März 2021, statt.")),
    "date at the end of the sentence": (
        statement(make_clause(np_subject(Phrase(lex.EVENTS["meeting"], det="the")),
                              lex.OTHER_VERBS["be"],
                              time=bt.date_phrase(datetime.date(2021, 3, 3)))),
        ("The meeting is on Wednesday, the 3rd of March 2021.",
         "Die Besprechung ist am Mittwoch, dem 3. März 2021.")),
    "passive past, year only": (
        statement(born_clause(np_subject(Phrase(lex.FAMILY["grandmother"], det="my")),
                              ("in 1950", "1950"))),
        ("My grandmother was born in 1950.", "Meine Großmutter wurde 1950 geboren.")),
    "currency amount": (
        statement(make_clause(np_subject(Phrase(NOUNS["umbrella"], adjective="red", det="the")),
                              lex.OTHER_VERBS["cost"], en_rest=["twenty-three euros"],
                              de_middle=["dreiundzwanzig Euro"])),
        ("The red umbrella costs twenty-three euros.",
         "Der rote Regenschirm kostet dreiundzwanzig Euro.")),
    "because, verb-final": (
        because_clause(
            bt.language_clause(name_subject("Anna"), lex.LANGUAGE_VERBS["learn"], ["es"],
                               "progressive"),
            bt.motion_clause(pronoun("she"), lex.MOTION["move"], "ES",
                             time=("next year", "nächstes Jahr"))),
        ("Anna is learning Spanish because she is moving to Spain next year.",
         "Anna lernt Spanisch, weil sie nächstes Jahr nach Spanien zieht.")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rendering(name):
    rendered, expected = CASES[name]
    assert rendered == expected


def test_money_uses_cldr_plurals():
    assert bt.money(23, "EUR") == ("twenty-three euros", "dreiundzwanzig Euro")
    assert bt.money(20, "GBP") == ("twenty British pounds", "zwanzig britische Pfund")
    assert bt.money(5, "CHF", digits=True) == ("5 Swiss francs", "5 Schweizer Franken")


def test_every_cldr_name_resolves():
    cldr = bt._cldr()
    assert len(cldr.countries) == len(lex.PLAIN_COUNTRIES) + len(lex.ARTICLE_COUNTRIES)
    for (en, _, _), (de, _, _), _ in cldr.countries.values():
        assert en.startswith("to ") and de.startswith(("nach ", "in die ", "in den "))
    assert cldr.weekdays[0] == ("Monday", "Montag") and cldr.months[3] == ("March", "März")
    assert all(" " not in de for _, de in cldr.languages.values())


# ------------------------------------------------- the corpus


def test_default_size_and_uniqueness(pairs):
    assert len(pairs) == 30000
    assert len({en for en, _ in pairs}) == len(pairs)
    assert len({de for _, de in pairs}) == len(pairs)


def test_deterministic_for_a_seed():
    assert bt.generate_pairs(500, seed=3) == bt.generate_pairs(500, seed=3)
    assert bt.generate_pairs(500, seed=3) != bt.generate_pairs(500, seed=4)
    assert bt.generate_pairs(500, seed=3) == bt.generate_pairs(1000, seed=3)[:500]


def test_splits_are_disjoint_on_both_sides(splits, pairs):
    assert set(splits) == {"train", "validation", "test"}
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [27000, 1500, 1500]
    for side in (0, 1):
        sets = [{pair[side] for pair in splits[k]} for k in splits]
        assert sum(map(len, sets)) == len(set.union(*sets)) == 30000
    assert sorted(splits["train"] + splits["validation"] + splits["test"]) == sorted(pairs)


def test_sentence_format(pairs):
    for en, de in pairs:
        for text in (en, de):
            assert text and text[-1] in ".?" and (text[0].isupper() or text[0].isdigit()), text
            assert not re.search(r"[\t\n\r]|  | [,.?]|,,", text), text


def test_german_uses_umlauts(pairs):
    german = " ".join(de for _, de in pairs)
    words = set(re.findall(r"\w+", german))
    assert {"Äpfel", "März", "für", "Großmutter", "weiß"} <= words
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
    transliterated = {w.translate(table) for w in words if re.search("[äöüÄÖÜ]", w)}
    assert not transliterated & words


def test_corpus_covers_the_phenomena(pairs):
    german = [de for _, de in pairs]
    patterns = [", dass ", ", weil ", r"\?$", r"am \w+, dem \d+\. \w+ \d{4}", "in die Schweiz",
                " nach ", "seit ", " mit dem ", r"\bden\b", r"\bdem\b", " kein", "nicht",
                r"^Gestern ", "Euro", r"\b\d+ \w+", " geboren", " mit$|mit[.?]"]
    for pattern in patterns:
        assert any(re.search(pattern, de) for de in german), pattern


def test_too_many_pairs_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(bt, "_sample_pair", lambda rng: ("Hello.", "Hallo."))
    with pytest.raises(ValueError, match="unique pairs"):
        bt.generate_pairs(num_pairs=2)


def test_bad_fractions_raise():
    with pytest.raises(ValueError, match="validation_fraction=0.6"):
        bt.load_splits(num_pairs=10, validation_fraction=0.6, test_fraction=0.5)


def test_write_tsv(tmp_path):
    pairs = [("I know that she buys three apples.", "Ich weiß, dass sie drei Äpfel kauft."),
             ("Do you speak French?", "Sprichst du Französisch?")]
    path = bt.write_tsv(pairs, tmp_path / "sub" / "train.tsv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [tuple(line.split("\t")) for line in lines] == pairs
    with pytest.raises(ValueError, match="tabs or newlines"):
        bt.write_tsv([("a\tb", "c")], tmp_path / "bad.tsv")
