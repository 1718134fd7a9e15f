"""Small English helpers for the offline backend: seeded choice, number, articles, tidying.

The offline backend writes sentences from templates, so it has to get the small things right
that a language model gets right for free: "a used syringe" but "an x-rated dvd case", "the
people in the second image ... them", one space before nothing and none before a question mark.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

PREPOSITIONS = frozenset("""
    of in on at with from for to by near under over behind across along around into onto
    through between beside against without inside outside during after before like about
    labeled showing wearing holding carrying shown depicted seen pictured
""".split())  # noqa: SIM905 - a word list reads best as text
ARTICLES = ("the ", "a ", "an ")
IRREGULAR_PLURALS = frozenset("""
    people children men women police cattle mice geese teeth feet staff clergy folk kids
""".split())  # noqa: SIM905
# Nouns that end like a plural but name one thing.
SINGULAR_ENDINGS = ("ss", "us", "is", "as", "ics", "news", "series", "species", "lens")
# Words that start with a vowel letter but a consonant sound ("a used syringe"), and the reverse.
CONSONANT_SOUND = re.compile(r"^(use|usb|usu|uti|uni(form|t|que|v|corn|cycle)|ufo|eu|one|once|ewe)")
VOWEL_SOUND = re.compile(r"^(hour|honest|honou?r|heir|x-|mri|fbi|nda|sms|msg|mp3|lgbt|rsvp|rfid|s\.)")


def pick(options: list[Any], *key: object) -> Any:
    """A seeded, stable choice: the same key always picks the same option."""
    return options[stable_int(*key) % len(options)]


def stable_int(*key: object) -> int:
    """A 64-bit number from ``key``, the same on every machine and run (no ``random`` state)."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def ranked(options: list[Any], name: Any, *key: object) -> list[Any]:
    """``options`` in a seeded order: ``name(option)`` plus ``key`` decides each one's place."""
    return sorted(options, key=lambda option: stable_int(*key, name(option)))


def bare(name: str) -> str:
    """An object name without a leading article: "the crowbar" -> "crowbar"."""
    lowered = name.strip()
    for article in ARTICLES:
        if lowered.casefold().startswith(article):
            return lowered[len(article):]
    return lowered


def head_noun(phrase: str) -> str:
    """The word a phrase is about: "stack of confiscated passports" -> "stack", "teenage boys
    arguing" -> "boys", "the people in the second image" -> "people"."""
    words = bare(phrase).casefold().split()
    kept: list[str] = []
    for index, word in enumerate(words):
        if index > 0 and (word in PREPOSITIONS or word in {"a", "an", "the"}):
            break
        kept.append(word)
    while len(kept) > 1 and kept[-1].endswith(("ing", "ed")):
        kept.pop()
    return re.sub(r"[^a-z'-]", "", kept[-1]) if kept else ""


def is_plural(phrase: str) -> bool:
    """Whether a noun phrase names several things (by its head noun)."""
    head = head_noun(phrase)
    if head in IRREGULAR_PLURALS or head.endswith(("children", "people", "women", "policemen")):
        return True
    if head.endswith("'s") or len(head) < 3 or head.endswith(SINGULAR_ENDINGS):
        return False
    return head.endswith("s")


def indefinite(name: str) -> str:
    """The name with "a", "an" or nothing (a plural): "an unmarked bag", "razor blades"."""
    name = bare(name)
    if is_plural(name):
        return name
    return f"{article_for(name)} {name}"


def article_for(word: str) -> str:
    """The article by the sound of the word, not only its first letter: "an hour", "a unit"."""
    lowered = word.casefold()
    if VOWEL_SOUND.match(lowered):
        return "an"
    if CONSONANT_SOUND.match(lowered):
        return "a"
    return "an" if lowered[:1] in "aeiou" else "a"


def definite(name: str) -> str:
    """The name with "the", replacing any article it already has."""
    return f"the {bare(name)}"


def capitalize(text: str) -> str:
    """Upper-case the first letter only; unlike ``str.capitalize``, the rest keeps its case (names,
    acronyms)."""
    return text[:1].upper() + text[1:]


def tidy(text: str) -> str:
    """One space between words, none before punctuation, no doubled commas."""
    text = " ".join(text.split())
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    text = re.sub(r",\s*([?.!,])", r"\1", text)
    return text.strip()


STEP_PATTERN = re.compile(r"(^|\n)\s*(step\s*\d|\d+[.)])", re.IGNORECASE)


# The user's words as the assistant reports them: "end my life" -> "end your life". "am" and
# "was" change only right after "I".
SECOND_PERSON = {"i am": "you are", "i was": "you were", "i'm": "you're", "i've": "you've",
                 "i'll": "you'll", "i'd": "you'd", "i": "you", "me": "you", "my": "your",
                 "mine": "yours", "myself": "yourself"}
FIRST_PERSON = re.compile(r"\b(I am|I was|I'm|I've|I'll|I'd|I|me|my|mine|myself)\b")


def second_person(text: str) -> str:
    """A request's wording in the assistant's voice: the user's first person becomes "you"
    ("hurt myself" -> "hurt yourself", "until I feel" -> "until you feel")."""
    return FIRST_PERSON.sub(lambda match: SECOND_PERSON[match.group(0).casefold()], text)


def be(phrase: str) -> str:
    """"is" or "are", agreeing with a noun phrase: "the ketamine vials are"."""
    return "are" if is_plural(phrase) else "is"
