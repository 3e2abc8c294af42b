"""Write the quickstart's English-Spanish corpus from a small grammar of our own.

Every sentence is ``subject verb object`` (present or past tense), some negated, some asked as a
yes/no question, some with a time word. Subjects are pronouns or noun phrases; Spanish verbs are
conjugated for the subject's person and number, and Spanish articles and adjectives agree with their
noun in gender and number (``the red cars`` -> ``los coches rojos``). Each English sentence appears
once, so the test split that `nmt prepare` draws holds combinations never seen in training.

Deterministic for a given seed and size. Written by the nmtcli authors; no external data::

    python3 make_grammar_corpus.py                     # writes eng-spa.txt beside this file
    python3 make_grammar_corpus.py --pairs 500 -o -    # 500 pairs on stdout
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

# Person/number keys: 1s 2s 3s 1p 3p (no plural "you": English cannot tell it from the singular).
PRONOUNS = {"1s": ("I", "yo"), "2s": ("you", "tú"), "3s": ("he", "él"), "1p": ("we", "nosotros"),
            "3p": ("they", "ellos")}  # fmt: skip
PRONOUNS_3S_F = ("she", "ella")

# English singular, English plural, Spanish singular, Spanish plural, gender.
SUBJECT_NOUNS = [
    ("boy", "boys", "niño", "niños", "m"),
    ("girl", "girls", "niña", "niñas", "f"),
    ("man", "men", "hombre", "hombres", "m"),
    ("woman", "women", "mujer", "mujeres", "f"),
    ("teacher", "teachers", "maestro", "maestros", "m"),
    ("doctor", "doctors", "doctora", "doctoras", "f"),
    ("cat", "cats", "gato", "gatos", "m"),
    ("dog", "dogs", "perro", "perros", "m"),
    ("friend", "friends", "amiga", "amigas", "f"),
    ("student", "students", "alumno", "alumnos", "m"),
]
OBJECT_NOUNS = [
    ("book", "books", "libro", "libros", "m"),
    ("car", "cars", "coche", "coches", "m"),
    ("house", "houses", "casa", "casas", "f"),
    ("table", "tables", "mesa", "mesas", "f"),
    ("apple", "apples", "manzana", "manzanas", "f"),
    ("letter", "letters", "carta", "cartas", "f"),
    ("door", "doors", "puerta", "puertas", "f"),
    ("window", "windows", "ventana", "ventanas", "f"),
    ("shirt", "shirts", "camisa", "camisas", "f"),
    ("hat", "hats", "sombrero", "sombreros", "m"),
    ("box", "boxes", "caja", "cajas", "f"),
    ("chair", "chairs", "silla", "sillas", "f"),
    ("cake", "cakes", "pastel", "pasteles", "m"),
    ("bottle", "bottles", "botella", "botellas", "f"),
    ("pencil", "pencils", "lápiz", "lápices", "m"),
]
# English, Spanish masculine singular; the other forms follow the -o/-a pattern unless given.
ADJECTIVES = [
    ("red", "rojo"),
    ("black", "negro"),
    ("white", "blanco"),
    ("small", "pequeño"),
    ("new", "nuevo"),
    ("old", "viejo"),
    ("pretty", "bonito"),
    ("tall", "alto"),
    ("green", "verde"),
    ("big", "grande"),
]
ARTICLES = {  # (definite, number, gender) -> Spanish
    (True, "s", "m"): "el", (True, "s", "f"): "la", (True, "p", "m"): "los", (True, "p", "f"): "las",
    (False, "s", "m"): "un", (False, "s", "f"): "una", (False, "p", "m"): "unos", (False, "p", "f"): "unas",
}  # fmt: skip


@dataclass(frozen=True)
class Verb:
    """A transitive verb: English base, third-person -s form, past; Spanish infinitive."""

    base: str
    third: str
    past: str
    spanish: str
    objects: tuple[str, ...]  # English object nouns that make sense with it

    def spanish_form(self, person: str, tense: str) -> str:
        stem, ending = self.spanish[:-2], self.spanish[-2:]
        if tense == "present":
            table = {"ar": ["o", "as", "a", "amos", "an"], "er": ["o", "es", "e", "emos", "en"],
                     "ir": ["o", "es", "e", "imos", "en"]}  # fmt: skip
        else:
            table = {"ar": ["é", "aste", "ó", "amos", "aron"], "er": ["í", "iste", "ió", "imos", "ieron"],
                     "ir": ["í", "iste", "ió", "imos", "ieron"]}  # fmt: skip
        index = ["1s", "2s", "3s", "1p", "3p"].index(person)
        form = stem + table[ending][index]
        if self.spanish == "leer" and tense == "past" and person in ("3s", "3p"):
            form = {"3s": "leyó", "3p": "leyeron"}[person]  # the one spelling change we need
        return form


ALL_OBJECTS = tuple(noun[0] for noun in OBJECT_NOUNS)
VERBS = [
    Verb("buy", "buys", "bought", "comprar", ALL_OBJECTS),
    Verb("sell", "sells", "sold", "vender", ALL_OBJECTS),
    Verb("watch", "watches", "watched", "mirar", ALL_OBJECTS),
    Verb("find", "finds", "found", "encontrar", ALL_OBJECTS),
    Verb("need", "needs", "needed", "necesitar", ALL_OBJECTS),
    Verb(
        "wash",
        "washes",
        "washed",
        "lavar",
        ("car", "table", "window", "shirt", "hat", "chair", "bottle", "door", "box", "apple"),
    ),
    Verb("paint", "paints", "painted", "pintar", ("house", "table", "door", "window", "box", "chair", "car")),
    Verb("open", "opens", "opened", "abrir", ("book", "door", "window", "box", "letter", "bottle")),
    Verb("write", "writes", "wrote", "escribir", ("book", "letter")),
    Verb("read", "reads", "read", "leer", ("book", "letter")),
    Verb("eat", "eats", "ate", "comer", ("apple", "cake")),
    Verb("carry", "carries", "carried", "llevar", ALL_OBJECTS),
]
# Spanish "encontrar" is irregular in the present (encuentro): give its stem change explicitly.
STEM_CHANGES = {("encontrar", "present"): ("encontr", "encuentr")}
TIME_WORDS = {"present": [("today", "hoy"), ("now", "ahora")], "past": [("yesterday", "ayer")]}


def adjective_form(spanish: str, number: str, gender: str) -> str:
    """Spanish adjective agreeing with a noun: ``rojo`` -> roja, rojos, rojas; ``verde`` -> verdes."""
    if spanish.endswith("o"):
        stem = spanish[:-1]
        return stem + ("o" if gender == "m" else "a") + ("s" if number == "p" else "")
    return spanish + ("s" if number == "p" else "")


def noun_phrase(rng: random.Random, nouns: list, number: str) -> tuple[str, str, str, str]:
    """``-> (English, Spanish, gender, English noun)``: article, optional adjective, noun."""
    english_s, english_p, spanish_s, spanish_p, gender = rng.choice(nouns)
    definite = rng.random() < 0.6
    english_noun, spanish_noun = (english_s, spanish_s) if number == "s" else (english_p, spanish_p)
    spanish = [ARTICLES[(definite, number, gender)], spanish_noun]
    english = [english_noun]
    if rng.random() < 0.6:
        english_adjective, spanish_adjective = rng.choice(ADJECTIVES)
        english.insert(0, english_adjective)
        spanish.append(adjective_form(spanish_adjective, number, gender))
    if definite:
        english.insert(0, "the")
    elif number == "s":
        english.insert(0, "an" if english[0][0] in "aeiou" else "a")
    else:
        english.insert(0, "some")
    return " ".join(english), " ".join(spanish), gender, english_s


def sentence(rng: random.Random) -> tuple[str, str]:
    """One random ``(English, Spanish)`` pair."""
    tense = rng.choice(["present", "present", "past"])
    if rng.random() < 0.45:
        person = rng.choice(list(PRONOUNS))
        english_subject, spanish_subject = PRONOUNS[person]
        if person == "3s" and rng.random() < 0.5:
            english_subject, spanish_subject = PRONOUNS_3S_F
    else:
        number = rng.choice("sp")
        person = "3s" if number == "s" else "3p"
        english_subject, spanish_subject, _, _ = noun_phrase(rng, SUBJECT_NOUNS, number)
    verb = rng.choice(VERBS)
    objects = [noun for noun in OBJECT_NOUNS if noun[0] in verb.objects]
    english_object, spanish_object, _, _ = noun_phrase(rng, objects, rng.choice("sp"))
    spanish_verb = verb.spanish_form(person, tense)
    old, new = STEM_CHANGES.get((verb.spanish, tense), ("", ""))
    if old and person != "1p":
        spanish_verb = spanish_verb.replace(old, new, 1)

    mood = rng.choices(["statement", "negation", "question"], weights=[6, 2, 2])[0]
    third = person == "3s"
    if mood == "statement":
        english_verb = verb.past if tense == "past" else verb.third if third else verb.base
        english = f"{english_subject} {english_verb} {english_object}"
        spanish = f"{spanish_subject} {spanish_verb} {spanish_object}"
    elif mood == "negation":
        auxiliary = "did" if tense == "past" else "does" if third else "do"
        english = f"{english_subject} {auxiliary} not {verb.base} {english_object}"
        spanish = f"{spanish_subject} no {spanish_verb} {spanish_object}"
    else:
        auxiliary = "did" if tense == "past" else "does" if third else "do"
        english = f"{auxiliary} {english_subject} {verb.base} {english_object}"
        spanish = f"{spanish_subject} {spanish_verb} {spanish_object}"
    if mood != "question" and rng.random() < 0.25:
        english_time, spanish_time = rng.choice(TIME_WORDS[tense])
        english, spanish = f"{english} {english_time}", f"{spanish} {spanish_time}"
    english = english[0].upper() + english[1:]
    spanish = spanish[0].upper() + spanish[1:]
    if mood == "question":
        return f"{english}?", f"¿{spanish}?"
    return f"{english}.", f"{spanish}."


def generate(pairs: int, seed: int = 14) -> list[tuple[str, str]]:
    """``pairs`` distinct ``(English, Spanish)`` pairs, the same list for the same arguments."""
    rng = random.Random(seed)
    seen: dict[str, str] = {}
    attempts = 0
    while len(seen) < pairs:
        attempts += 1
        if attempts > 50 * pairs:
            raise ValueError(f"the grammar cannot make {pairs} distinct sentences")
        english, spanish = sentence(rng)
        seen.setdefault(english, spanish)
    return list(seen.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=6000, help="distinct pairs to write [default: 6000]")
    parser.add_argument("--seed", type=int, default=14, help="random seed [default: 14]")
    parser.add_argument(
        "-o", "--output", default=str(Path(__file__).with_name("eng-spa.txt")), help="file, or - for stdout"
    )
    args = parser.parse_args(argv)
    text = "".join(f"{english}\t{spanish}\n" for english, spanish in generate(args.pairs, args.seed))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
