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


class DetoxRules:
    """The detox rule file, compiled once; each rule's phrases are tried longest first, so a longer
    phrase wins over a phrase it contains."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        def compiled(phrases: Any, prefix: str = "") -> list[tuple[str, re.Pattern[str]]]:
            return [(str(p), re.compile(prefix + _phrase_pattern(str(p)), re.I))
                    for p in sorted(phrases, key=lambda p: -len(str(p)))]

        self.drop = compiled(data.get("drop", []), r",?\s*")
        self.soften = [(verb, pattern, str(data["soften"][verb]))
                       for verb, pattern in compiled(data.get("soften") or {})]
        self.soften_for_people = [(verb, str(data["soften_for_people"][verb]))
                                  for verb, _ in compiled(data.get("soften_for_people") or {})]
        self.people_words = [str(w) for w in data.get("people_words", [])]
        self._people_patterns: dict[tuple[str, ...], list[tuple[str, re.Pattern[str], str]]] = {}

    def _for_people(self, animate: tuple[str, ...]) -> list[tuple[str, re.Pattern[str], str]]:
        """Rule 3's patterns: each verb followed by a living reference or a people word."""
        if animate not in self._people_patterns:
            targets = [re.escape(phrase) for phrase in animate]
            targets += [re.escape(word) for word in self.people_words]
            ahead = r"(?=\s+(?:" + "|".join(targets) + r")\b)"
            self._people_patterns[animate] = [
                (verb, re.compile(_phrase_pattern(verb) + ahead, re.I), neutral)
                for verb, neutral in self.soften_for_people]
        return self._people_patterns[animate]

    def apply(self, question: str, references: Sequence[Reference]) -> tuple[str, list[str]]:
        """The detoxified question and one line per change, in rule order."""
        changes: list[str] = []
        text = question
        for ref in references:  # rule 4
            pattern = re.compile(_phrase_pattern(ref.phrase), re.I)
            if ref.neutral != ref.phrase and pattern.search(text):
                text = pattern.sub(ref.neutral, text)
                changes.append(f'rule 4: "{ref.phrase}" -> "{ref.neutral}"')
        for phrase, pattern in self.drop:  # rule 1
            if pattern.search(text):
                text = pattern.sub("", text)
                changes.append(f'rule 1: dropped "{phrase}"')
        for verb, pattern, neutral in self.soften:  # rule 2
            text = self._replace(text, verb, pattern, neutral, changes, "rule 2")
        animate = tuple(ref.neutral for ref in references if ref.animate)
        for verb, pattern, neutral in self._for_people(animate):  # rule 3
            text = self._replace(text, verb, pattern, neutral, changes, "rule 3")
        return tidy(text), changes

    @staticmethod
    def _replace(text: str, verb: str, pattern: re.Pattern[str], neutral: str,
                 changes: list[str], rule: str) -> str:
        if not pattern.search(text):
            return text
        changes.append(f'{rule}: "{verb}" -> "{neutral}"')
        return pattern.sub(lambda m: _keep_case(m.group(0), neutral), text)

    def explanation(self, changes: Sequence[str]) -> str:
        """The ``explanation`` field of a detox answer: the changes made, or why the question came
        back unchanged."""
        if not changes:
            return "offline: nothing in the question states the harm openly; returned unchanged"
        return "offline: " + "; ".join(changes)
