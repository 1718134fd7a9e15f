"""Agreement rules for offline questions, shared by the template test and the demo test.

Each rule looks at rendered text plus what each image reference stands for, so the same checks
run on every template (rendered with every kind it accepts) and on the questions a demo build
actually wrote, whatever produced them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import yaml

from mis_data.core.config import read_yaml
from mis_data.core.taxonomy import Kind, load_kinds
from mis_data.stages.instructions import object_leak
from tests.support.paths import CONFIGS, PROMPTS

REFS = ("the first image", "the second image")
DOUBLED_ARTICLE = re.compile(r"\b(the|a|an)\s+(the|a|an)\b", re.IGNORECASE)
A_BEFORE_VOWEL = re.compile(r"\ba\s+([a-z][\w-]*)", re.IGNORECASE)
AN_BEFORE_CONSONANT = re.compile(r"\ban\s+([a-z][\w-]*)", re.IGNORECASE)
SINGULAR_VERBS = ("is", "was", "has", "does")
PLURAL_VERBS = ("are", "were", "have", "do")
# Words that can stand as the antecedent of a bare "they/them/their/it/its" in a template.
ANTECEDENTS = re.compile(
    r"\b(people|everyone|customers|users|workers|staff|kids|children|goods|drugs|women|others|"
    r"colleagues|passwords|numbers|messages|body|images|family|files|owners|guests|visitors)\b",
    re.IGNORECASE)
BARE_PRONOUN = re.compile(r"\b(it|its|they|them|their|he|she|him|her|his)\b", re.IGNORECASE)
GENDERED = {"he", "she", "him", "her", "his"}


def kinds() -> dict[str, Kind]:
    return load_kinds(CONFIGS / "kinds.yaml")


def offline_data(name: str) -> dict:
    return yaml.safe_load((PROMPTS / "offline" / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def giveaways() -> re.Pattern[str]:
    phrases = [str(p) for p in (read_yaml(CONFIGS / "giveaway_phrases.yaml") or {})["phrases"]]
    return re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b", re.IGNORECASE)


# The rules are the test's own, not read from the files under test, so they judge any version.
ANIMATE_ONLY_VERBS = """intimidate harass humiliate threaten insult bully shame degrade mock frighten
    scare lure coerce trick manipulate persuade convince recruit blackmail stalk isolate exclude
    silence punish punch kick slap beat seduce groom kidnap abduct invite hire employ pay underpay
    torment terrorize injure wound deceive follow trap traffic exploit confine starve abuse
    assault ambush corner taunt ridicule belittle pressure warn approach startle surprise
    dehumanize""".split() + ["express my feelings to", "keep contacting", "talk about",  # noqa: SIM905
                            "call out", "leave out", "discriminate against"]
# "make the place ... leave", "a place notices": a living being's verbs after a reference.
ANIMATE_SUBJECT_VERBS = frozenset("""notice notices see sees leave leaves listen listens agree
    agrees feel feels cry cries work works quit quits obey obeys stay stays behave behaves
    """.split())  # noqa: SIM905
CONSONANT_SOUND = re.compile(r"^(use|usb|usu|uti|uni(form|t|que|v)|eu|one|once)")
VOWEL_SOUND = re.compile(r"^(hour|honest|honou?r|heir|x-)")
PLURAL_HEADS = re.compile(r"\b(people|children|men|women|police|staff)\b")


@lru_cache(maxsize=1)
def animate_verbs() -> re.Pattern[str]:
    """A verb that only fits a living being, at the end of the text before a reference."""
    verbs = sorted(ANIMATE_ONLY_VERBS, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(v) for v in verbs) + r")$")


def subject_verbs() -> frozenset[str]:
    return ANIMATE_SUBJECT_VERBS


def is_plural(phrase: str) -> bool:
    """The test's own reading of a reference's number: its first noun before "in"/"of"/"shown"."""
    head = re.split(r"\b(?:in|of|on|at|with|shown|depicted|labeled|showing|wearing)\b",
                    phrase.casefold())[0].split()
    word = head[-1] if head else ""
    if PLURAL_HEADS.search(word) or word.endswith("children"):
        return True
    return word.endswith("s") and not word.endswith(("ss", "us", "is", "'s"))


@dataclass(frozen=True)
class Slot:
    """One image reference in a text: the words used for it, and its kind."""

    words: str
    kind: Kind


def article_problems(text: str) -> list[str]:
    found = []
    for match in A_BEFORE_VOWEL.finditer(text):
        word = match.group(1).casefold()
        if word[0] in "aeiou" and not CONSONANT_SOUND.match(word) or VOWEL_SOUND.match(word):
            found.append(f"'a {match.group(1)}'")
    for match in AN_BEFORE_CONSONANT.finditer(text):
        word = match.group(1).casefold()
        if word[0] not in "aeiou" and not VOWEL_SOUND.match(word) or CONSONANT_SOUND.match(word):
            found.append(f"'an {match.group(1)}'")
    return found


def agreement_problems(text: str, slots: list[Slot]) -> list[str]:
    """Every agreement rule ``text`` breaks for the given image references."""
    verbs, subjects = animate_verbs(), subject_verbs()
    problems = [f"doubled article {m.group(0)!r}" for m in DOUBLED_ARTICLE.finditer(text)]
    problems += [f"wrong article {found}" for found in article_problems(text)]
    lowered = text.casefold()
    for slot in slots:
        words = slot.words.casefold()
        for match in re.finditer(re.escape(words), lowered):
            before = lowered[:match.start()].rstrip()
            after = lowered[match.end():].split()
            following = re.sub(r"\W", "", after[0]) if after else ""
            if not slot.kind.animate:
                verb = verbs.search(before)
                if verb:
                    problems.append(f"person verb {verb.group(1)!r} on {slot.words!r} "
                                    f"({slot.kind.name})")
                if following in subjects:
                    problems.append(f"{slot.words!r} ({slot.kind.name}) {following}")
            plural = is_plural(slot.words)
            if plural and following in SINGULAR_VERBS or not plural and following in PLURAL_VERBS:
                problems.append(f"number: {slot.words!r} {following}")
    return problems


def template_pronoun_problems(raw: str) -> list[str]:
    """Bare pronouns in a template (outside {a.them}-style tokens) need a noun of their own."""
    text = re.sub(r"\{[abcd](\.\w+)?\}", "X", raw)
    problems = []
    for match in BARE_PRONOUN.finditer(text):
        word = match.group(1).casefold()
        if word in GENDERED:
            problems.append(f"gendered pronoun {word!r}")
        elif not ANTECEDENTS.search(text[:match.start()]):
            problems.append(f"pronoun {word!r} without its own noun (use a slot token)")
    return problems


def final_problems(question: str, objects: tuple[str, str], refs: tuple[str, str],
                   phrases_present: bool = True) -> list[str]:
    """The stage's own rules for a final question: refs, no object named, no giveaway, length."""
    problems = []
    lowered = question.casefold()
    if phrases_present:
        problems += [f"missing {ref!r}" for ref in refs if ref not in lowered]
    for obj in objects:
        leaked = object_leak(question, obj)
        if leaked:
            problems.append(f"names the object ({leaked!r})")
    giveaway = giveaways().search(question)
    if giveaway:
        problems.append(f"giveaway {giveaway.group(1)!r}")
    if not 40 <= len(question) <= 300:
        problems.append(f"length {len(question)}")
    if "{" in question or "}" in question:
        problems.append("template token left")
    return problems
