"""A small hand-written English-German lexicon for the built-in translation corpus.

CLDR (through Babel) gives names of months, weekdays, countries, languages and
currencies, and `num2words` gives number words, but neither has common nouns
with their gender and plural, verb conjugations or adjective endings. This
module holds just enough of those, written out by hand, for
`zoo.data.builtin_translation` to build grammatical German sentences.

Persons are indexed 0..4 as 1sg (I/ich), 2sg (you/du), 3sg, 1pl (we/wir),
3pl (they/sie). Genders are "m", "f", "n"; "pl" marks a plural-only noun.
"""

from typing import NamedTuple


class Noun(NamedTuple):
    en: str
    en_plural: str
    de: str
    gender: str
    de_plural: str
    kind: str = "T"  # P produce, F food, K kitchen, C clothes, T other things, H humans


class Verb(NamedTuple):
    en: str  # base form
    en_3sg: str
    en_past: str
    en_ing: str
    de: str  # infinitive without the separable prefix
    de_present: tuple  # five present forms, persons 0..4
    participle: str
    aux: str = "haben"
    prefix: str = ""  # separable prefix: "mit" + "bringen"
    kinds: str = "PFKCT"  # noun kinds this verb takes as its object


def _nouns(table, kind):
    rows = [line.split("|") for line in table.strip().splitlines()]
    return {row[0]: Noun(*row, kind=kind) for row in rows}


def _regular(stem):
    """Present forms of a regular weak verb: kauf -> kaufe, kaufst, kauft, ..."""
    e = "e" if stem.endswith(("t", "d")) else ""
    return (stem + "e", stem + e + "st", stem + e + "t", stem + "en", stem + "en")


# Countable objects: en | en plural | de | gender | de plural.
NOUNS = {
    **_nouns("""
apple|apples|Apfel|m|Äpfel
pear|pears|Birne|f|Birnen
banana|bananas|Banane|f|Bananen
orange|oranges|Orange|f|Orangen
lemon|lemons|Zitrone|f|Zitronen
tomato|tomatoes|Tomate|f|Tomaten
potato|potatoes|Kartoffel|f|Kartoffeln
onion|onions|Zwiebel|f|Zwiebeln
carrot|carrots|Karotte|f|Karotten
""", "P"),
    **_nouns("""
egg|eggs|Ei|n|Eier
bread roll|bread rolls|Brötchen|n|Brötchen
cake|cakes|Kuchen|m|Kuchen
sandwich|sandwiches|Sandwich|n|Sandwiches
""", "F"),
    **_nouns("""
cup|cups|Tasse|f|Tassen
glass|glasses|Glas|n|Gläser
bottle|bottles|Flasche|f|Flaschen
plate|plates|Teller|m|Teller
spoon|spoons|Löffel|m|Löffel
fork|forks|Gabel|f|Gabeln
knife|knives|Messer|n|Messer
""", "K"),
    **_nouns("""
shirt|shirts|Hemd|n|Hemden
jacket|jackets|Jacke|f|Jacken
shoe|shoes|Schuh|m|Schuhe
hat|hats|Hut|m|Hüte
dress|dresses|Kleid|n|Kleider
""", "C"),
    **_nouns("""
book|books|Buch|n|Bücher
newspaper|newspapers|Zeitung|f|Zeitungen
pen|pens|Stift|m|Stifte
key|keys|Schlüssel|m|Schlüssel
chair|chairs|Stuhl|m|Stühle
lamp|lamps|Lampe|f|Lampen
umbrella|umbrellas|Regenschirm|m|Regenschirme
watch|watches|Uhr|f|Uhren
ticket|tickets|Fahrkarte|f|Fahrkarten
flower|flowers|Blume|f|Blumen
candle|candles|Kerze|f|Kerzen
ball|balls|Ball|m|Bälle
towel|towels|Handtuch|n|Handtücher
postcard|postcards|Postkarte|f|Postkarten
letter|letters|Brief|m|Briefe
""", "T"),
}

# Relatives, for possessive phrases ("her brother" / "ihrem Bruder").
FAMILY = _nouns("""
brother|brothers|Bruder|m|Brüder
sister|sisters|Schwester|f|Schwestern
mother|mothers|Mutter|f|Mütter
father|fathers|Vater|m|Väter
son|sons|Sohn|m|Söhne
daughter|daughters|Tochter|f|Töchter
grandmother|grandmothers|Großmutter|f|Großmütter
grandfather|grandfathers|Großvater|m|Großväter
uncle|uncles|Onkel|m|Onkel
aunt|aunts|Tante|f|Tanten
child|children|Kind|n|Kinder
parents|parents|Eltern|pl|Eltern
""", "H")

TRANSPORT = _nouns("""
train|trains|Zug|m|Züge
bus|buses|Bus|m|Busse
car|cars|Auto|n|Autos
bike|bikes|Fahrrad|n|Fahrräder
ship|ships|Schiff|n|Schiffe
ferry|ferries|Fähre|f|Fähren
coach|coaches|Reisebus|m|Reisebusse
plane|planes|Flugzeug|n|Flugzeuge
""", "T")

EVENTS = _nouns("""
concert|concerts|Konzert|n|Konzerte
meeting|meetings|Besprechung|f|Besprechungen
wedding|weddings|Hochzeit|f|Hochzeiten
exam|exams|Prüfung|f|Prüfungen
party|parties|Party|f|Partys
conference|conferences|Konferenz|f|Konferenzen
festival|festivals|Festival|n|Festivals
match|matches|Spiel|n|Spiele
lecture|lectures|Vorlesung|f|Vorlesungen
job interview|job interviews|Vorstellungsgespräch|n|Vorstellungsgespräche
""", "T")

DISHES = _nouns("""
soup|soups|Suppe|f|Suppen
salad|salads|Salat|m|Salate
cake|cakes|Kuchen|m|Kuchen
sauce|sauces|Soße|f|Soßen
juice|juices|Saft|m|Säfte
""", "F")

DURATIONS = _nouns("""
day|days|Tag|m|Tage
week|weeks|Woche|f|Wochen
month|months|Monat|m|Monate
year|years|Jahr|n|Jahre
""", "T")

# Adjectives: en -> (German stem used before endings, noun kinds it fits).
ADJECTIVES = {
    "red": ("rot", "PCKT"), "green": ("grün", "PCKT"), "yellow": ("gelb", "PCKT"),
    "blue": ("blau", "CKT"), "black": ("schwarz", "CKT"), "white": ("weiß", "CKT"),
    "big": ("groß", "PFKCT"), "small": ("klein", "PFKCT"), "cheap": ("billig", "PFKCT"),
    "expensive": ("teur", "FKCT"), "new": ("neu", "KCT"), "old": ("alt", "KCT"),
    "beautiful": ("schön", "KCT"), "heavy": ("schwer", "KT"), "fresh": ("frisch", "PF"),
    "sweet": ("süß", "P"), "clean": ("sauber", "KC"),
    "dirty": ("schmutzig", "KC"), "warm": ("warm", "C"),
}

# Verbs taking an accusative object.
TRANSITIVE = {
    "buy": Verb("buy", "buys", "bought", "buying", "kaufen", _regular("kauf"), "gekauft"),
    "need": Verb("need", "needs", "needed", "needing", "brauchen", _regular("brauch"), "gebraucht"),
    "see": Verb("see", "sees", "saw", "seeing", "sehen",
                ("sehe", "siehst", "sieht", "sehen", "sehen"), "gesehen"),
    "find": Verb("find", "finds", "found", "finding", "finden", _regular("find"), "gefunden"),
    "sell": Verb("sell", "sells", "sold", "selling", "verkaufen", _regular("verkauf"), "verkauft"),
    "order": Verb("order", "orders", "ordered", "ordering", "bestellen", _regular("bestell"),
                  "bestellt"),
    "eat": Verb("eat", "eats", "ate", "eating", "essen",
                ("esse", "isst", "isst", "essen", "essen"), "gegessen", kinds="PF"),
    "wash": Verb("wash", "washes", "washed", "washing", "waschen",
                 ("wasche", "wäschst", "wäscht", "waschen", "waschen"), "gewaschen", kinds="PKC"),
    "carry": Verb("carry", "carries", "carried", "carrying", "tragen",
                  ("trage", "trägst", "trägt", "tragen", "tragen"), "getragen"),
    "forget": Verb("forget", "forgets", "forgot", "forgetting", "vergessen",
                   ("vergesse", "vergisst", "vergisst", "vergessen", "vergessen"), "vergessen"),
    "bring": Verb("bring", "brings", "brought", "bringing", "bringen", _regular("bring"),
                  "mitgebracht", prefix="mit"),
    "pack": Verb("pack", "packs", "packed", "packing", "packen", _regular("pack"),
                 "eingepackt", prefix="ein"),
}

# Verbs with a dative recipient and an accusative object ("gives her brother two apples").
DITRANSITIVE = {
    "give": Verb("give", "gives", "gave", "giving", "geben",
                 ("gebe", "gibst", "gibt", "geben", "geben"), "gegeben"),
    "show": Verb("show", "shows", "showed", "showing", "zeigen", _regular("zeig"), "gezeigt"),
    "send": Verb("send", "sends", "sent", "sending", "schicken", _regular("schick"), "geschickt"),
    "buy": TRANSITIVE["buy"],
}

LANGUAGE_VERBS = {
    "speak": Verb("speak", "speaks", "spoke", "speaking", "sprechen",
                  ("spreche", "sprichst", "spricht", "sprechen", "sprechen"), "gesprochen"),
    "learn": Verb("learn", "learns", "learnt", "learning", "lernen", _regular("lern"), "gelernt"),
    "understand": Verb("understand", "understands", "understood", "understanding", "verstehen",
                       _regular("versteh"), "verstanden"),
    "teach": Verb("teach", "teaches", "taught", "teaching", "unterrichten",
                  _regular("unterricht"), "unterrichtet"),
}

# Motion verbs, perfect with "sein"; kinds lists the transport they take ("" = none).
MOTION = {
    "travel": Verb("travel", "travels", "travelled", "travelling", "reisen",
                   ("reise", "reist", "reist", "reisen", "reisen"), "gereist", "sein",
                   kinds="train bus car bike ship ferry coach plane"),
    "go": Verb("go", "goes", "went", "going", "fahren",
               ("fahre", "fährst", "fährt", "fahren", "fahren"), "gefahren", "sein",
               kinds="train bus car bike ship ferry coach"),
    "fly": Verb("fly", "flies", "flew", "flying", "fliegen", _regular("flieg"), "geflogen", "sein",
                kinds=""),
    "move": Verb("move", "moves", "moved", "moving", "ziehen", _regular("zieh"), "gezogen", "sein",
                 kinds=""),
}

OTHER_VERBS = {
    "live": Verb("live", "lives", "lived", "living", "wohnen", _regular("wohn"), "gewohnt"),
    "work": Verb("work", "works", "worked", "working", "arbeiten", _regular("arbeit"), "gearbeitet"),
    "come": Verb("come", "comes", "came", "coming", "kommen", _regular("komm"), "gekommen", "sein"),
    "make": Verb("make", "makes", "made", "making", "machen", _regular("mach"), "gemacht"),
    "cost": Verb("cost", "costs", "cost", "costing", "kosten", _regular("kost"), "gekostet"),
    "pay": Verb("pay", "pays", "paid", "paying", "bezahlen", _regular("bezahl"), "bezahlt"),
    "know": Verb("know", "knows", "knew", "knowing", "wissen",
                 ("weiß", "weißt", "weiß", "wissen", "wissen"), "gewusst"),
    "think": Verb("think", "thinks", "thought", "thinking", "glauben", _regular("glaub"), "geglaubt"),
    "hope": Verb("hope", "hopes", "hoped", "hoping", "hoffen", _regular("hoff"), "gehofft"),
    "say": Verb("say", "says", "said", "saying", "sagen", _regular("sag"), "gesagt"),
    "take place": Verb("take place", "takes place", "took place", "taking place", "finden",
                       _regular("find"), "stattgefunden", prefix="statt"),
    "be": Verb("be", "is", "was", "being", "sein", ("bin", "bist", "ist", "sind", "sind"),
               "gewesen", "sein"),
}

AUXILIARIES = {
    "haben": ("habe", "hast", "hat", "haben", "haben"),
    "sein": ("bin", "bist", "ist", "sind", "sind"),
    "werden_past": ("wurde", "wurdest", "wurde", "wurden", "wurden"),
}

# Modal: English statement (base, 3sg), question (aux or "do", rest), German present forms.
MODALS = {
    "can": (("can", "can"), ("can", ""), ("kann", "kannst", "kann", "können", "können")),
    "want": (("want to", "wants to"), ("do", "want to"), ("will", "willst", "will", "wollen", "wollen")),
    "must": (("have to", "has to"), ("do", "have to"), ("muss", "musst", "muss", "müssen", "müssen")),
    "would like": (("would like to", "would like to"), ("would", "like to"),
                   ("möchte", "möchtest", "möchte", "möchten", "möchten")),
}

# Subject pronouns: en, de, person, gender.
PRONOUNS = {
    "I": ("I", "ich", 0), "you": ("you", "du", 1), "he": ("he", "er", 2),
    "she": ("she", "sie", 2), "we": ("we", "wir", 3), "they": ("they", "sie", 4),
}
NAMES = {"Anna": "f", "Maria": "f", "Julia": "f", "Laura": "f", "Sophie": "f",
         "Thomas": "m", "Peter": "m", "Lukas": "m", "Paul": "m", "Felix": "m"}
POSSESSIVES = {"my": "mein", "your": "dein", "his": "sein", "her": "ihr", "our": "unser",
               "their": "ihr"}

# Declension tables, by case then gender ("pl" = plural).
DEFINITE = {"nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
            "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
            "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"}}
EIN_ENDINGS = {"nom": {"m": "", "f": "e", "n": "", "pl": "e"},  # ein, kein, mein, ...
               "acc": {"m": "en", "f": "e", "n": "", "pl": "e"},
               "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"}}
WEAK = {"nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},  # adjective after der/die/das
        "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
        "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"}}
MIXED = {"nom": {"m": "er", "f": "e", "n": "es", "pl": "en"},  # adjective after ein/kein/mein
         "acc": {"m": "en", "f": "e", "n": "es", "pl": "en"},
         "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"}}
STRONG_PLURAL = {"nom": "e", "acc": "e", "dat": "en"}  # "drei rote Äpfel"

# Time adverbials: en -> de.
FUTURE_TIMES = {"today": "heute", "tomorrow": "morgen", "next week": "nächste Woche",
                "next month": "nächsten Monat", "next year": "nächstes Jahr",
                "at the weekend": "am Wochenende", "this evening": "heute Abend",
                "in the summer": "im Sommer", "in the winter": "im Winter"}
PAST_TIMES = {"yesterday": "gestern", "last week": "letzte Woche", "last month": "letzten Monat",
              "last year": "letztes Jahr", "this morning": "heute Morgen",
              "last summer": "letzten Sommer"}

# Places for "There is ... in the basket": en -> (de, noun kinds).
CONTAINERS = {"in the basket": ("im Korb", "PFT"), "in the box": ("in der Kiste", "PKCT"),
              "in the bag": ("in der Tasche", "PFKCT"), "in the fridge": ("im Kühlschrank", "PF"),
              "on the table": ("auf dem Tisch", "PFKT"), "in the cupboard": ("im Schrank", "KC"),
              "in the drawer": ("in der Schublade", "KT"), "in the car": ("im Auto", "PFCT")}

# Countries that take an article in German (CLDR name without it): gender.
ARTICLE_COUNTRIES = {"CH": "f", "SK": "f", "UA": "f", "MN": "f", "NL": "pl"}
ENGLISH_THE_COUNTRIES = {"NL"}
# Countries without article in both languages (CLDR names are used as they are).
PLAIN_COUNTRIES = (
    "ES FR IT DE AT PT GR PL CZ HU DK SE NO FI IE BE HR RO BG SI EE LV LT IS JP CN IN KR VN TH "
    "ID AU NZ CA MX BR AR CL PE CO EG MA KE ZA IL JO GE AM CU UY EC GH TZ ET LU MT CY RS AL MK "
    "SG MY PK NP KZ UZ").split()
LANGUAGES = (
    "en fr es it pt nl sv da no fi pl cs hu el tr ru uk ar he hi ja zh ko th vi id de ro bg hr "
    "sr sl sk et lv lt is ga mt sq mk ka hy sw am fa ur ne kk uz ms").split()
CURRENCIES = "EUR USD GBP JPY CHF INR SEK NOK DKK PLN CZK CAD AUD MXN HUF NZD BRL ZAR".split()
