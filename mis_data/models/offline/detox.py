"""MIS's four detoxification rules as written rules (``prompts/offline/detox_rules.yaml``).

MIS step 2 (docs/recipe.md §1) detoxifies a question whose objects are already replaced by image
references. The offline backend applies the same four rules from data, in this order:

4. a reference that names a harmful kind ("the weapon in the first image") becomes its neutral
   form ("the object in the first image"), from ``configs/kinds.yaml``;
1. words that announce the wrongdoing ("without being caught", "secretly") are dropped;
2. a verb that names the harm itself is replaced when a neutral verb keeps the same action
   ("break into" -> "get into"); a verb with no such paraphrase ("attack") stays, so the
   question still reads as unsafe and the judges send it to train, as in MIS;
3. a verb aimed at a person or animal ("lure the person in ...") is rewritten implicitly.

Whatever the rules leave of the harm is for the offline judge to see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from mis_data.models.offline.grammar import tidy


@dataclass(frozen=True)
class Reference:
    """An image reference in the question: as replaced, as detoxified, and whether it is alive."""

    phrase: str
    neutral: str
    animate: bool


def _phrase_pattern(phrase: str) -> str:
    return r"\b" + re.escape(phrase).replace(r"\ ", r"\s+") + r"\b"


def _keep_case(found: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if found[:1].isupper() else replacement


@lru_cache(maxsize=4096)
def _phrase_regex(phrase: str) -> re.Pattern[str]:
    """Rule 4's pattern for one reference phrase, compiled once: the same few phrases ("the
    tool in the first image") come back in every question."""
    return re.compile(_phrase_pattern(phrase), re.I)


def _needle(phrase: str) -> str:
    """A piece of text every match of ``phrase``'s pattern contains, lower-cased: its longest
    space-separated word (the pattern matches the words literally, case-blind, with any
    whitespace between them). ``""`` (found in any text) for a phrase that is not plain ASCII,
    whose case-blind matches ``str.lower`` may not find."""
    if not phrase.isascii():
        return ""
    return max(phrase.split(" "), key=len).lower()


@dataclass(frozen=True)
class Rule:
    """One compiled phrase of a rule: the phrase, its pattern, what replaces it, and the needle
    a text must contain for the pattern to match at all."""

    phrase: str
    pattern: re.Pattern[str]
    neutral: str = ""

    @cached_property
    def needle(self) -> str:
        """See ``_needle``."""
        return _needle(self.phrase)


class _Text:
    """The question being detoxified, with its lower-cased form for the needle test (ASCII text
    only: other text is always searched with the full patterns)."""

    def __init__(self, text: str) -> None:
        self.set(text)

    def set(self, text: str) -> None:
        self.text = text
        self.lowered = text.lower() if text.isascii() else None

    def may_match(self, rule: Rule) -> bool:
        """False only when the rule's pattern cannot match: its needle is not in the text."""
        return self.lowered is None or rule.needle in self.lowered


class DetoxRules:
    """The detox rule file, compiled once; each rule's phrases are tried longest first, so a longer
    phrase wins over a phrase it contains."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        def compiled(phrases: Any, prefix: str = "") -> list[tuple[str, re.Pattern[str]]]:
            return [(str(p), re.compile(prefix + _phrase_pattern(str(p)), re.I))
                    for p in sorted(phrases, key=lambda p: -len(str(p)))]

        self.drop = [Rule(phrase, pattern) for phrase, pattern in compiled(data.get("drop", []),
                                                                           r",?\s*")]
        self.soften = [Rule(verb, pattern, str(data["soften"][verb]))
                       for verb, pattern in compiled(data.get("soften") or {})]
        self.soften_for_people = [(verb, str(data["soften_for_people"][verb]))
                                  for verb, _ in compiled(data.get("soften_for_people") or {})]
        self.people_words = [str(w) for w in data.get("people_words", [])]
        self._people_patterns: dict[tuple[str, ...], list[Rule]] = {}
        # Answers by (question, references): the offline writer detoxifies a draft to choose
        # it, and the detox step then asks for the same question again.
        self._remembered = lru_cache(maxsize=16384)(self._apply)

    def _for_people(self, animate: tuple[str, ...]) -> list[Rule]:
        """Rule 3's patterns: each verb followed by a living reference or a people word."""
        if animate not in self._people_patterns:
            targets = [re.escape(phrase) for phrase in animate]
            targets += [re.escape(word) for word in self.people_words]
            ahead = r"(?=\s+(?:" + "|".join(targets) + r")\b)"
            self._people_patterns[animate] = [
                Rule(verb, re.compile(_phrase_pattern(verb) + ahead, re.I), neutral)
                for verb, neutral in self.soften_for_people]
        return self._people_patterns[animate]

    def apply(self, question: str, references: Sequence[Reference]) -> tuple[str, list[str]]:
        """The detoxified question and one line per change, in rule order."""
        text, changes = self._remembered(question, tuple(references))
        return text, list(changes)

    def _apply(self, question: str, references: tuple[Reference, ...]) -> tuple[str, tuple[str, ...]]:
        changes: list[str] = []
        text = _Text(question)
        for ref in references:  # rule 4
            if ref.neutral == ref.phrase:
                continue
            pattern = _phrase_regex(ref.phrase)
            if pattern.search(text.text):
                text.set(pattern.sub(ref.neutral, text.text))
                changes.append(f'rule 4: "{ref.phrase}" -> "{ref.neutral}"')
        for rule in self.drop:  # rule 1
            if text.may_match(rule) and rule.pattern.search(text.text):
                text.set(rule.pattern.sub("", text.text))
                changes.append(f'rule 1: dropped "{rule.phrase}"')
        for rule in self.soften:  # rule 2
            self._replace(text, rule, changes, "rule 2")
        animate = tuple(ref.neutral for ref in references if ref.animate)
        for rule in self._for_people(animate):  # rule 3
            self._replace(text, rule, changes, "rule 3")
        return tidy(text.text), tuple(changes)

    @staticmethod
    def _replace(text: _Text, rule: Rule, changes: list[str], label: str) -> None:
        if not text.may_match(rule) or not rule.pattern.search(text.text):
            return
        changes.append(f'{label}: "{rule.phrase}" -> "{rule.neutral}"')
        text.set(rule.pattern.sub(lambda m: _keep_case(m.group(0), rule.neutral), text.text))

    def explanation(self, changes: Sequence[str]) -> str:
        """The ``explanation`` field of a detox answer: the changes made, or why the question came
        back unchanged."""
        if not changes:
            return "offline: nothing in the question states the harm openly; returned unchanged"
        return "offline: " + "; ".join(changes)
