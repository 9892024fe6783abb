"""English and German noun phrases and clauses for the built-in translation corpus.

The grammar that `zoo.data.builtin_translation` renders its templates with:
inflection of noun phrases (articles, numbers, adjective endings, dative
plural) and clauses kept in parts (subject, finite verb, middle field, right
bracket) so that the German side can be put in verb-second, verb-first or
verb-final order while the English side keeps subject-verb-object order.
Words come from `zoo.data.german_lexicon`; nothing here is downloaded.

Example:

>>> from zoo.data import german_lexicon as lex
>>> c = transitive_clause(pronoun("she"), lex.TRANSITIVE["bring"], Phrase(lex.NOUNS["bottle"], 3),
...                       form="past", time=("yesterday", "gestern"))
>>> statement(c, front_time=True)
('Yesterday she brought three bottles.', 'Gestern hat sie drei Flaschen mitgebracht.')
>>> that_clause(pronoun("I"), lex.OTHER_VERBS["know"], c)[1]
'Ich weiß, dass sie gestern drei Flaschen mitgebracht hat.'
"""

import functools
from typing import NamedTuple

from num2words import num2words

from zoo.data import german_lexicon as lex
from zoo.data.german_lexicon import Noun


class Subject(NamedTuple):
    en: str
    de: str
    person: int  # 0..4: I, you, he/she/it, we, they
    pronoun_en: str
    pronoun_de: str


class Phrase(NamedTuple):
    """A noun phrase: `count` 1 is singular, 0 a plural without a number."""

    noun: Noun
    count: int = 1
    adjective: str = ""  # English key into `german_lexicon.ADJECTIVES`
    det: str = "a"  # "a", "the", "no", or a possessive ("my", "her", ...)
    digits: bool = False  # write the count as digits instead of words


class Clause(NamedTuple):
    """One clause in both languages, kept in parts so it can be reordered."""

    en_statement: list
    en_question: list
    en_time: str
    de_subject: str
    de_finite: str
    de_time: str
    de_middle: list
    de_final: list  # right bracket: participle, infinitive or separable prefix
    de_joined: bool = False  # the prefix joins the finite verb when it moves last


@functools.cache
def number_words(n, digits=False):
    if digits:
        return str(n), str(n)
    return num2words(n, lang="en"), num2words(n, lang="de")


def dative_plural(word):
    return word if word.endswith(("n", "s")) else word + "n"


def english_np(p):
    plural = p.count != 1 or p.noun.gender == "pl"
    words = [{"the": "the", "a": "", "no": "" if not plural else "any"}.get(p.det, p.det)]
    if p.count >= 2:
        words.append(number_words(p.count, p.digits)[0])
    words += [p.adjective, p.noun.en_plural if plural else p.noun.en]
    words = [w for w in words if w]
    if not plural and p.det in ("a", "no"):
        words.insert(0, "an" if words[0][0] in "aeiou" else "a")
    return " ".join(words)


def german_np(p, case):
    plural = p.count != 1 or p.noun.gender == "pl"
    gender = "pl" if plural else p.noun.gender
    words, endings = [], lex.MIXED[case][gender]
    if p.det == "the":
        words.append(lex.DEFINITE[case][gender])
        endings = lex.WEAK[case][gender]
    elif p.det != "a" or not plural:  # ein, kein, mein, dein, ...
        stem = {"a": "ein", "no": "kein"}.get(p.det) or lex.POSSESSIVES[p.det]
        words.append(stem + lex.EIN_ENDINGS[case][gender])
    else:  # no article: "drei rote Äpfel"
        endings = lex.STRONG_PLURAL[case]
    if p.count >= 2:
        words.append(number_words(p.count, p.digits)[1])
    if p.adjective:
        words.append(lex.ADJECTIVES[p.adjective][0] + endings)
    noun = p.noun.de_plural if plural else p.noun.de
    words.append(dative_plural(noun) if plural and case == "dat" else noun)
    return " ".join(words)


def pronoun(key):
    en, de, person = lex.PRONOUNS[key]
    return Subject(en, de, person, en, de)


def np_subject(p):
    """A noun phrase as subject: "my sister" / "meine Schwester"."""
    plural = p.count != 1 or p.noun.gender == "pl"
    key = "they" if plural else {"m": "he", "f": "she", "n": "it"}[p.noun.gender]
    pron_de = {"he": "er", "she": "sie", "it": "es", "they": "sie"}[key]
    return Subject(english_np(p), german_np(p, "nom"), 4 if plural else 2, key, pron_de)


def name_subject(name):
    return Subject(name, name, 2, *(("she", "sie") if lex.NAMES[name] == "f" else ("he", "er")))


# ---------------------------------------------------------------- clauses


def _english_verb(s, verb, form, modal):
    """English statement and question words (subject included) for one verb form."""
    third, be = s.person == 2, ("am", "are", "is", "are", "are")[s.person]
    do = "does" if third else "do"
    if verb.en == "be":  # only in the present
        return [s.en, be], [be, s.en]
    if form == "present":
        return [s.en, verb.en_3sg if third else verb.en], [do, s.en, verb.en]
    if form == "negated":
        return [s.en, do, "not", verb.en], [do, s.en, "not", verb.en]
    if form == "progressive":
        return [s.en, be, verb.en_ing], [be, s.en, verb.en_ing]
    if form == "past":
        return [s.en, verb.en_past], ["did", s.en, verb.en]
    if form in ("perfect", "perfect_progressive"):  # German uses the present with "seit"
        have = "has" if third else "have"
        rest = [verb.en_past] if form == "perfect" else ["been", verb.en_ing]
        return [s.en, have, *rest], [have, s.en, *rest]
    (base, base_3sg), (q_aux, q_rest), _ = lex.MODALS[modal]
    q_aux = do if q_aux == "do" else q_aux
    return [s.en, base_3sg if third else base, verb.en], [q_aux, s.en, q_rest, verb.en]


def make_clause(s, verb, form="present", en_rest=(), de_middle=(), time=("", ""), modal=None):
    """Assembles a clause; `form` is present, negated, progressive, past, perfect,
    perfect_progressive or modal (then `modal` is a key of `german_lexicon.MODALS`).

    "perfect" (English "has lived") takes regular verbs only: it uses `en_past`.
    """
    en_statement, en_question = _english_verb(s, verb, form, modal)
    joined = False
    if form == "past":
        finite, final = lex.AUXILIARIES[verb.aux][s.person], [verb.participle]
    elif form == "modal":
        finite, final = lex.MODALS[modal][2][s.person], [verb.prefix + verb.de]
    else:  # "bringt ... mit", and "mitbringt" in a subordinate clause
        finite, final, joined = verb.de_present[s.person], [verb.prefix], bool(verb.prefix)
    return Clause(en_statement + list(en_rest), en_question + list(en_rest), time[0], s.de,
                  finite, time[1], list(de_middle), final, joined)


def _words(words, end):
    text = " ".join(w for w in words if w) + end
    text = text.replace(",.", ".").replace(",?", "?").replace(",,", ",")
    return text[0].upper() + text[1:]


def statement(c, front_time=False):
    """Main clause: ("Yesterday she bought ...", "Gestern hat sie ... gekauft")."""
    if front_time and c.en_time:
        en = [c.en_time, *c.en_statement]
        de = [c.de_time, c.de_finite, c.de_subject, *c.de_middle, *c.de_final]
    else:
        en = [*c.en_statement, c.en_time]
        de = [c.de_subject, c.de_finite, c.de_time, *c.de_middle, *c.de_final]
    return _words(en, "."), _words(de, ".")


def question(c):
    """Yes/no question: do-support in English, inversion in German."""
    en = [*c.en_question, c.en_time]
    de = [c.de_finite, c.de_subject, c.de_time, *c.de_middle, *c.de_final]
    return _words(en, "?"), _words(de, "?")


def _subordinate(c):
    """German verb-final order: "sie drei Flaschen mitbringt"."""
    final = list(c.de_final)
    tail = final.pop() + c.de_finite if c.de_joined else c.de_finite
    return [c.de_subject, c.de_time, *c.de_middle, *final, tail]


def that_clause(main_subject, main_verb, c):
    """("I know that she buys three apples.", "Ich weiß, dass sie drei Äpfel kauft.")."""
    main = make_clause(main_subject, main_verb)
    en = [*main.en_statement, "that", *c.en_statement, c.en_time]
    de = [main.de_subject, main.de_finite + ",", "dass", *_subordinate(c)]
    return _words(en, "."), _words(de, ".")


def because_clause(main, reason):
    """("Anna is learning Spanish because she is moving to Spain.",
    "Anna lernt Spanisch, weil sie nach Spanien zieht.")."""
    en = [*main.en_statement, main.en_time, "because", *reason.en_statement, reason.en_time]
    de = [main.de_subject, main.de_finite, main.de_time, *main.de_middle, *main.de_final]
    de_main = " ".join(w for w in de if w) + ","
    return _words(en, "."), _words([de_main, "weil", *_subordinate(reason)], ".")


def transitive_clause(s, verb, obj, form="present", time=("", ""), modal=None, recipient=None):
    """Subject, verb and accusative object (and a dative recipient if given)."""
    en_rest, de_middle = [english_np(obj)], [german_np(obj, "acc")]
    if form == "negated":
        if obj.det == "a":  # "does not buy an apple / any apples" -> "keinen Apfel / keine Äpfel"
            obj = obj._replace(det="no", count=1 if obj.count == 1 else 0)
            en_rest, de_middle = [english_np(obj)], [german_np(obj, "acc")]
        else:  # "does not buy the apple" -> "kauft den Apfel nicht"
            de_middle.append("nicht")
    if recipient is not None:
        en_rest.insert(0, english_np(recipient))
        de_middle.insert(0, german_np(recipient, "dat"))
    return make_clause(s, verb, form, en_rest, de_middle, time, modal)


def duration_phrase(unit, count):
    """("for three years", "seit drei Jahren")."""
    p = Phrase(lex.DURATIONS[unit], count)
    return english_np(p), german_np(p, "dat")


def there_is(obj, container):
    """("There are three red apples in the basket.", "Im Korb sind drei rote Äpfel.")."""
    plural = obj.count != 1
    en = ["There", "are" if plural else "is", english_np(obj), container]
    de = [lex.CONTAINERS[container][0], "sind" if plural else "ist", german_np(obj, "nom")]
    return _words(en, "."), _words(de, ".")


def recipe_clause(s, dish, ingredients, form="progressive", time=("", ""), modal=None):
    """Dative after "mit": "mit drei Äpfeln und einer roten Zwiebel"."""
    obj = Phrase(lex.DISHES[dish])
    en = [english_np(obj), "with", " and ".join(english_np(p) for p in ingredients)]
    de = [german_np(obj, "acc"), "mit", " und ".join(german_np(p, "dat") for p in ingredients)]
    return make_clause(s, lex.OTHER_VERBS["make"], form, en, de, time, modal)


def born_clause(s, time):
    """("she was born on the 3rd of March 1950", "sie wurde am 3. März 1950 geboren")."""
    was = "were" if s.person in (1, 3, 4) else "was"
    finite = lex.AUXILIARIES["werden_past"][s.person]
    return Clause([s.en, was, "born"], [was, s.en, "born"], time[0], s.de, finite, time[1], [],
                  ["geboren"])


_BIRTHDAY = Noun("birthday", "birthdays", "Geburtstag", "m", "Geburtstage")


def birthday_subject(owner):
    """Possessive ("her") or name ("Anna") -> "her birthday" / "Annas Geburtstag"."""
    if owner in lex.POSSESSIVES:
        return np_subject(Phrase(_BIRTHDAY, det=owner))
    de = owner + ("'" if owner.endswith("s") else "s")
    return Subject(owner + "'s birthday", de + " Geburtstag", 2, "it", "er")
