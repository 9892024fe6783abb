"""Built-in, offline English-German translation corpus.

The translation recipe needs a parallel corpus that exists without a network:
this module writes one. Every sentence pair is synthetic: project code fills
a dozen clause templates (buying, giving, cooking, travelling, living,
languages, prices, dates, birthdays) with slot values, renders each as a
statement, a question or inside a "that" clause, and renders both languages by
grammar rules (`zoo.data.german_grammar`), deterministically for a given seed.

Where the words come from:

- `num2words` (``lang="en"``/``"de"``): cardinal numbers ("twenty-three" /
  "dreiundzwanzig") and ordinal dates ("3rd" / "3.").
- Babel's CLDR data (``babel.Locale("en")``/``Locale("de")``): month and
  weekday names, country names, language names, currency names and the
  official languages of each territory.
- `zoo.data.german_lexicon`: a small hand-written lexicon of nouns (gender,
  plural), verbs (conjugations, participles, separable prefixes) and
  adjectives, which CLDR does not have.

What the pairs exercise, so that a model has to learn more than word lookup:

- reordering: German verb-second after a fronted adverbial ("Gestern hat sie
  ..."), verb-final subordinate clauses ("..., dass sie drei Äpfel kauft."),
  participles and infinitives at the end ("hat ... gekauft", "will ...
  kaufen"), split separable verbs ("bringt ... mit"), time-manner-place order,
  questions by inversion instead of do-support, "seit" + present for "has been
  learning for";
- agreement: number ("ein Apfel" / "zwei Äpfel"), gender and case of articles
  (der/den/dem, ein/einen/einem, kein, possessives), adjective declension after
  definite, indefinite and no article, dative plural "-n", verb conjugation,
  "nach Spanien" but "in die Schweiz", currency names after numbers;
- formats: dates ("am Montag, dem 3. März 2021"), numbers as words or digits.

Sentences state no facts about the world (no capitals, no populations); the
weekday of a full date is the true one.
"""

import datetime
import functools
import pathlib
import random
from typing import NamedTuple

import babel
import babel.languages
import babel.numbers
from num2words import num2words

from zoo.data import german_lexicon as lex
from zoo.data.german_grammar import (
    Phrase, Subject, because_clause, birthday_subject, born_clause, dative_plural,
    duration_phrase, english_np, german_np, make_clause, name_subject, np_subject,
    number_words, pronoun, question, recipe_clause, statement, that_clause, there_is,
    transitive_clause)


class _Cldr(NamedTuple):
    """(english, german) names from CLDR, keyed by month 1..12, weekday 0..6 (Monday) and code."""

    months: dict
    weekdays: dict
    languages: dict
    countries: dict  # code -> ((to, in, from) English, (to, in, from) German, official languages)
    currencies: dict  # plural names, for amounts of two or more


@functools.cache
def _cldr():
    en, de = babel.Locale("en"), babel.Locale("de")
    months = {m: (en.months["format"]["wide"][m], de.months["format"]["wide"][m])
              for m in range(1, 13)}
    weekdays = {d: (en.days["format"]["wide"][d], de.days["format"]["wide"][d]) for d in range(7)}
    languages = {code: (en.languages[code], de.languages[code]) for code in lex.LANGUAGES}
    countries = {}
    for code in lex.PLAIN_COUNTRIES + list(lex.ARTICLE_COUNTRIES):
        name_en, name_de = en.territories[code], de.territories[code]
        if code in lex.ENGLISH_THE_COUNTRIES:
            name_en = "the " + name_en
        gender = lex.ARTICLE_COUNTRIES.get(code)
        if gender is None:
            de_forms = ("nach " + name_de, "in " + name_de, "aus " + name_de)
        else:
            dative = dative_plural(name_de) if gender == "pl" else name_de
            to = f"in {lex.DEFINITE['acc'][gender]} {name_de}"
            at = f"in {lex.DEFINITE['dat'][gender]} {dative}".replace("in dem ", "im ")
            de_forms = (to, at, f"aus {lex.DEFINITE['dat'][gender]} {dative}")
        official = [c for c in babel.languages.get_official_languages(code) if c in languages]
        en_forms = ("to " + name_en, "in " + name_en, "from " + name_en)
        countries[code] = (en_forms, de_forms, official)
    currencies = {}
    for code in lex.CURRENCIES:
        name_en = babel.numbers.get_currency_name(code, count=2, locale=en)
        words = babel.numbers.get_currency_name(code, count=2, locale=de).split(" ")
        if len(words) > 1 and words[0].endswith("e"):  # "Britische Pfund": adjective, lower case
            words[0] = words[0].lower()
        currencies[code] = (name_en, " ".join(words))
    return _Cldr(months, weekdays, languages, countries, currencies)


def motion_clause(s, verb, country, transport=None, time=("", ""), form="progressive", modal=None):
    """Time-manner-place: "to Spain by train on Monday" -> "am Montag mit dem Zug nach Spanien"."""
    (to_en, _, _), (to_de, _, _), _ = _cldr().countries[country]
    en_rest, de_middle = [to_en], [to_de]
    if transport:
        noun = lex.TRANSPORT[transport]
        en_rest.append("by " + noun.en)
        de_middle.insert(0, f"mit {lex.DEFINITE['dat'][noun.gender]} {noun.de}")
    return make_clause(s, verb, form, en_rest, de_middle, time, modal)


def place_clause(s, verb, country, form="present", duration=None):
    """Live/work in, come from a country, optionally "for three years" -> "seit drei Jahren"."""
    en_forms, de_forms, _ = _cldr().countries[country]
    i = 2 if verb.en == "come" else 1
    if duration:
        en, de = duration_phrase(*duration)
        return make_clause(s, verb, form, [en_forms[i], "for " + en], ["seit " + de, de_forms[i]])
    return make_clause(s, verb, form, [en_forms[i]], [de_forms[i]])


def language_clause(s, verb, codes, form="present", duration=None, modal=None):
    names = [_cldr().languages[c] for c in codes]
    en = " and ".join(n[0] for n in names)
    de = " und ".join(n[1] for n in names)
    if duration:
        d_en, d_de = duration_phrase(*duration)
        return make_clause(s, verb, form, [en, "for " + d_en], ["seit " + d_de, de], modal=modal)
    return make_clause(s, verb, form, [en], [de], modal=modal)


def money(amount, currency, digits=False):
    """(“twenty-three euros”, “dreiundzwanzig Euro”); amounts of two or more."""
    (en_num, de_num), (en_cur, de_cur) = number_words(amount, digits), _cldr().currencies[currency]
    return f"{en_num} {en_cur}", f"{de_num} {de_cur}"


def date_phrase(date, weekday=True, year=True):
    """("on Monday, the 3rd of March 2021", "am Montag, dem 3. März 2021,")."""
    cldr = _cldr()
    (m_en, m_de), (d_en, d_de) = cldr.months[date.month], cldr.weekdays[date.weekday()]
    day_en, day_de = (num2words(date.day, lang=lang, to="ordinal_num") for lang in ("en", "de"))
    tail_en, tail_de = (f" {date.year}", f" {date.year}") if year else ("", "")
    if weekday:  # the apposition is closed by a comma unless the sentence ends there
        return (f"on {d_en}, the {day_en} of {m_en}{tail_en}",
                f"am {d_de}, dem {day_de} {m_de}{tail_de},")
    return f"on the {day_en} of {m_en}{tail_en}", f"am {day_de} {m_de}{tail_de}"


# ---------------------------------------------------------------- sampling


def _choice(rng, mapping):
    return mapping[rng.choice(list(mapping))]


def _count(rng):
    """(count, as digits): mostly small numbers in words, sometimes 13..99 in either form."""
    r = rng.random()
    if r < 0.3:
        return 1, False
    if r < 0.8:
        return rng.randint(2, 12), False
    return rng.randint(13, 99), rng.random() < 0.5


def _object(rng, kinds="PFKCT", det=None):
    noun = rng.choice([n for n in lex.NOUNS.values() if n.kind in kinds])
    count, digits = _count(rng)
    det = det or rng.choice("aaat")
    if det == "t":
        det = "the"
        count = 0 if count >= 2 and rng.random() < 0.5 else count
    fitting = [a for a, (_, k) in lex.ADJECTIVES.items() if noun.kind in k]
    return Phrase(noun, count, rng.choice(fitting) if rng.random() < 0.4 else "", det, digits)


def _subject(rng, singular=False):
    r = rng.random()
    if r < 0.5:
        return pronoun(rng.choice(["I", "you", "he", "she"] + ([] if singular else ["we", "they"])))
    if r < 0.75:
        return name_subject(rng.choice(list(lex.NAMES)))
    genders = ("m", "f") if singular else ("m", "f", "pl")  # no "my child ... it"
    family = [n for n in lex.FAMILY.values() if n.gender in genders]
    return np_subject(Phrase(rng.choice(family), det=rng.choice(["my", "our"])))


def _random_date(rng, first_year, last_year):
    start, end = datetime.date(first_year, 1, 1), datetime.date(last_year, 12, 31)
    return datetime.date.fromordinal(rng.randint(start.toordinal(), end.toordinal()))


def _time(rng, past):
    cldr = _cldr()
    r = rng.random()
    if r < 0.4:
        table = lex.PAST_TIMES if past else lex.FUTURE_TIMES
        key = rng.choice(list(table))
        return key, table[key]
    if r < 0.7:
        en, de = cldr.weekdays[rng.randrange(7)]
        return "on " + en, "am " + de
    if past:  # "two days ago" -> "vor zwei Tagen"
        en, de = duration_phrase(rng.choice(list(lex.DURATIONS)), rng.randint(1, 5))
        return en + " ago", "vor " + de
    if r < 0.85:
        en, de = cldr.months[rng.randint(1, 12)]
        return "in " + en, "im " + de
    return date_phrase(_random_date(rng, 2024, 2024), weekday=False, year=False)


def _form_and_time(rng, forms):
    form = rng.choice(forms)
    time = _time(rng, form == "past") if rng.random() < 0.5 and form != "perfect" else ("", "")
    return form, time, rng.choice(list(lex.MODALS))


def _c_transitive(rng):
    verb = _choice(rng, lex.TRANSITIVE)
    form, time, modal = _form_and_time(rng, ["present", "negated", "past", "past", "modal"])
    time = ("", "") if form in ("present", "negated") else time
    return transitive_clause(_subject(rng), verb, _object(rng, verb.kinds), form, time, modal), True


def _c_give(rng):
    recipient = Phrase(_choice(rng, lex.FAMILY), det=rng.choice(list(lex.POSSESSIVES)))
    form, time, modal = _form_and_time(rng, ["present", "past", "modal"])
    time = ("", "") if form == "present" else time
    return transitive_clause(_subject(rng), _choice(rng, lex.DITRANSITIVE), _object(rng), form,
                             time, modal, recipient), True


def _c_motion(rng):
    verb = _choice(rng, lex.MOTION)
    transport = rng.choice(verb.kinds.split()) if verb.kinds and rng.random() < 0.6 else None
    form, time, modal = _form_and_time(rng, ["progressive", "progressive", "past", "modal"])
    country = rng.choice(list(_cldr().countries))
    return motion_clause(_subject(rng), verb, country, transport, time, form, modal), True


def _c_place(rng):
    verb = _choice(rng, {k: lex.OTHER_VERBS[k] for k in ("live", "work", "come")})
    country = rng.choice(list(_cldr().countries))
    if verb.en != "come" and rng.random() < 0.4:
        duration = (rng.choice(["week", "month", "year"]), rng.randint(1, 12))
        return place_clause(_subject(rng), verb, country, "perfect", duration), False
    return place_clause(_subject(rng), verb, country), False


def _c_language(rng):
    verb = _choice(rng, lex.LANGUAGE_VERBS)
    codes = rng.sample(lex.LANGUAGES, rng.choice([1, 1, 2]))
    if verb.en in ("learn", "teach") and rng.random() < 0.4:
        duration = (rng.choice(["week", "month", "year"]), rng.randint(1, 12))
        return language_clause(_subject(rng), verb, codes, "perfect_progressive", duration), False
    form, modal = rng.choice(["present", "present", "modal"]), rng.choice(list(lex.MODALS))
    return language_clause(_subject(rng), verb, codes, form, modal=modal), False


def _c_recipe(rng):
    produce = [k for k, n in lex.NOUNS.items() if n.kind == "P"]
    ingredients = []
    for key in rng.sample(produce, rng.choice([1, 2])):
        count, adjective = rng.randint(1, 6), rng.choice(["", "", "fresh", "big", "small"])
        ingredients.append(Phrase(lex.NOUNS[key], count, adjective))
    form, time, modal = _form_and_time(rng, ["progressive", "past", "modal"])
    dish = rng.choice(list(lex.DISHES))
    return recipe_clause(_subject(rng), dish, ingredients, form, time, modal), True


def _c_price(rng):
    amount = rng.randint(2, 99) if rng.random() < 0.8 else rng.randint(100, 999)
    currency = rng.choice(lex.CURRENCIES)
    en_money, de_money = money(amount, currency, digits=rng.random() < 0.3)
    obj = _object(rng, det=rng.choice(["a", "the"]))
    if rng.random() < 0.5:
        cost = lex.OTHER_VERBS["cost"]
        return make_clause(np_subject(obj), cost, "present", [en_money], [de_money]), False
    form, time, modal = _form_and_time(rng, ["past", "past", "modal"])
    en, de = [en_money, "for", english_np(obj)], ["für " + german_np(obj, "acc"), de_money]
    return make_clause(_subject(rng), lex.OTHER_VERBS["pay"], form, en, de, time, modal), True


def _c_date(rng):
    kind = rng.random()
    if kind < 0.4:
        event = np_subject(Phrase(_choice(rng, lex.EVENTS), det="the"))
        date = _random_date(rng, 1995, 2035)
        weekday = rng.random() < 0.7
        year = weekday or rng.random() < 0.7  # a weekday is only stated with its (true) date
        verb = lex.OTHER_VERBS[rng.choice(["take place", "be"])]
        return make_clause(event, verb, time=date_phrase(date, weekday, year)), False
    if kind < 0.7:
        owner = rng.choice(["my", "your", "his", "her"] + list(lex.NAMES))
        time = date_phrase(_random_date(rng, 2024, 2024), weekday=False, year=False)
        return make_clause(birthday_subject(owner), lex.OTHER_VERBS["be"], time=time), False
    date, r = _random_date(rng, 1930, 2015), rng.random()
    months = _cldr().months
    if r < 0.5:
        time = date_phrase(date, weekday=False)
    elif r < 0.8:
        m_en, m_de = months[date.month]
        time = f"in {m_en} {date.year}", f"im {m_de} {date.year}"
    else:
        time = f"in {date.year}", str(date.year)
    return born_clause(_subject(rng, singular=True), time), False


_CLAUSES = (_c_transitive, _c_transitive, _c_give, _c_motion, _c_motion, _c_place,
            _c_language, _c_recipe, _c_price, _c_date)


def _sample_pair(rng):
    r = rng.random()
    if r < 0.07:
        obj = _object(rng, det="a")
        places = [c for c, (_, kinds) in lex.CONTAINERS.items() if obj.noun.kind in kinds]
        return there_is(obj, rng.choice(places))
    if r < 0.12:  # the language is one CLDR lists as official in the country
        country = rng.choice([c for c, v in _cldr().countries.items() if v[2]])
        language = rng.choice(_cldr().countries[country][2])
        s = _subject(rng)
        main = language_clause(s, lex.LANGUAGE_VERBS["learn"], [language], "progressive")
        verb = lex.MOTION[rng.choice(["travel", "fly", "move"])]
        reason = motion_clause(Subject(s.pronoun_en, s.pronoun_de, s.person, "", ""), verb, country,
                               time=_time(rng, past=False))
        return because_clause(main, reason)
    clause, frontable = rng.choice(_CLAUSES)(rng)
    r = rng.random()
    if r < 0.6:
        return statement(clause, front_time=frontable and rng.random() < 0.4)
    if r < 0.8 and "not" not in clause.en_statement:
        en, de = question(clause)
        if not en.startswith("Would I "):
            return en, de
    main_subject = _subject(rng) if rng.random() < 0.5 else pronoun("I")
    main_verb = lex.OTHER_VERBS[rng.choice(["know", "think", "hope", "say"])]
    return that_clause(main_subject, main_verb, clause)


# ---------------------------------------------------------------- public API


def generate_pairs(num_pairs=30000, seed=0):
    """Returns `num_pairs` (english, german) pairs, no sentence repeated on either side.

    Deterministic for a given `seed` (a private `random.Random`).

    Example:

    >>> pairs = generate_pairs(num_pairs=3, seed=0)
    >>> len(pairs), len({en for en, _ in pairs})
    (3, 3)
    >>> statement(transitive_clause(pronoun("she"), lex.TRANSITIVE["buy"],
    ...                             Phrase(lex.NOUNS["apple"], 3)))
    ('She buys three apples.', 'Sie kauft drei Äpfel.')
    """
    rng = random.Random(seed)
    pairs, seen_en, seen_de, draws = [], set(), set(), 0
    max_draws = max(1000, 5 * num_pairs)
    while len(pairs) < num_pairs:
        draws += 1
        if draws > max_draws:
            raise ValueError(
                f"The templates produced only {len(pairs)} unique pairs in {max_draws} draws. "
                f"Received: num_pairs={num_pairs}; ask for fewer pairs.")
        en, de = _sample_pair(rng)
        if en not in seen_en and de not in seen_de:
            seen_en.add(en)
            seen_de.add(de)
            pairs.append((en, de))
    return pairs


def load_splits(num_pairs=30000, seed=0, validation_fraction=0.05, test_fraction=0.05):
    """Splits `generate_pairs(num_pairs, seed)` into "train", "validation" and "test".

    No English or German sentence appears in two splits.
    """
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1
            and validation_fraction + test_fraction < 1):
        raise ValueError(
            "Fractions must be in [0, 1) and sum to less than 1. Received: "
            f"validation_fraction={validation_fraction}, test_fraction={test_fraction}")
    pairs = generate_pairs(num_pairs, seed)
    num_test = round(num_pairs * test_fraction)
    num_validation = round(num_pairs * validation_fraction)
    splits = {"test": pairs[:num_test],
              "validation": pairs[num_test:num_test + num_validation],
              "train": pairs[num_test + num_validation:]}
    for side in (0, 1):
        sentences = [pair[side] for split in splits.values() for pair in split]
        assert len(sentences) == len(set(sentences)), "a sentence appears in two splits"
    return splits


def write_tsv(pairs, path):
    """Writes "english<TAB>german" lines, UTF-8, to `path` and returns it as a `Path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for en, de in pairs:
            if any(ch in text for text in (en, de) for ch in "\t\n\r"):
                raise ValueError(
                    f"Sentences must not contain tabs or newlines. Received: {en!r}, {de!r}")
            f.write(f"{en}\t{de}\n")
    return path
