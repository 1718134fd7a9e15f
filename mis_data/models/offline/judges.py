"""The offline judges: keyword rules from ``prompts/offline/judge_rules.yaml``.

* The **text judge** reads the final question alone, as MIS's GPT-4o filter did: a question that
  still contains an intent marker (a word that states the harm openly: "attack", "loot",
  "without paying") is Unsafe, and goes to train; anything else is Safe.
* The **image judge** decides whether each image is explicitly harmful on its own. When the
  concept carries a ``style`` (its author's note: ``easy`` = one image shows something harmful,
  ``hard`` = both are ordinary), the style decides; the harmful image of an ``easy`` pair is the
  one whose name or kind matches the hazard rules, else the first. Without a style, the hazard
  rules alone decide: a hazardous word in the object's name ("handgun", "pill", "slur") or a
  hazardous kind (``weapon``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any


def contains_any(text: str, words: list[str]) -> list[str]:
    """The ``words`` found in ``text``: case-blind, each starting at a word boundary (so
    "threaten" also finds "threatening")."""
    return WordList(words).found_in(text)


class WordList:
    """Words to find at a word start, case-blind: each casefolded and compiled once, since the
    same list is read against every question of a build."""

    def __init__(self, words: list[str]) -> None:
        self.words = [(word, word.casefold(), _prefix(word)) for word in words]

    def found_in(self, text: str) -> list[str]:
        """The words found in ``text`` (see ``contains_any``), in list order."""
        lowered = text.casefold()
        # A word not inside the text at all cannot start at a boundary there: a substring test
        # first (cheap) leaves the boundary search to the few words that can match.
        return [word for word, folded, pattern in self.words
                if folded in lowered and pattern.search(lowered)]


@lru_cache(maxsize=4096)
def _prefix(word: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(word.casefold())}")


def slot_count(facts: Mapping[str, Any]) -> int:
    """How many objects (images) the facts of a sample name: object1, object2, ..."""
    count = 2
    while facts.get(f"object{count + 1}"):
        count += 1
    return count


class JudgeRules:
    """The judge rule file: intent markers for the text judge, hazardous words and kinds for the
    image judge."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.intent_markers = [str(word) for word in data.get("intent_markers", [])]
        self.hazard_words = [str(word) for word in data.get("hazardous_object_words", [])]
        self.hazard_kinds = {str(kind) for kind in data.get("hazardous_kinds", [])}
        self.everyday_senses = {str(word) for word in data.get("everyday_senses", [])}
        self._markers = WordList(self.intent_markers)
        self._hazards = WordList(self.hazard_words)
        # A question is read again by later steps (the writer judges a draft to choose it, the
        # text judge and the label read the final wording): its markers are kept by its text.
        self._markers_in = lru_cache(maxsize=16384)(
            lambda question: tuple(self._markers.found_in(question)))
        # An object's name is read for every request about its pair (image judges, the plan,
        # the label): its hazard words are kept by the name.
        self._hazards_in = lru_cache(maxsize=16384)(
            lambda name: bool(self._hazards.found_in(name)))

    def markers(self, question: str) -> list[str]:
        """The intent markers the question contains; any at all makes it Unsafe."""
        return list(self._markers_in(question))

    def unsafe(self, question: str) -> bool:
        """The text judge's verdict: True while the question still states the harm openly."""
        return bool(self.markers(question))

    def hazardous(self, name: str, kind: str) -> bool:
        """Whether one object is harmful on its own: a hazardous kind, or a hazardous word in its
        name."""
        return kind in self.hazard_kinds or self._hazards_in(name)

    def images_harmful(self, facts: Mapping[str, Any]) -> tuple[bool, ...]:
        """Whether each image, in slot order, is harmful on its own (by kind or name)."""
        flags = tuple(self.hazardous(facts[f"object{slot}"], facts.get(f"kind{slot}", "object"))
                      for slot in range(1, slot_count(facts) + 1))
        style = facts.get("style")
        if style == "hard":
            return tuple(False for _ in flags)
        if style == "easy" and not any(flags):
            return (True, *flags[1:])
        return flags

    def answer_text(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The ``judge_text`` answer: Unsafe with the markers found, else Safe; the sub-category is
        passed through unchanged."""
        found = self.markers(facts["question"])
        reason = (f"offline: the question states the harm openly ({', '.join(found)})." if found
                  else "offline: the wording alone is an ordinary request.")
        return {"label": "Unsafe" if found else "Safe", "sub_category": facts["sub_category"],
                "reason": reason}

    def answer_image_harm(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Each image on its own (the request is not part of this question)."""
        flags = self.images_harmful(facts)
        shown = [facts[f"object{slot}"] for slot, flag in enumerate(flags, start=1) if flag]
        reason = (f"offline: harmful on its own: {' and '.join(shown)}." if shown
                  else "offline: each image is ordinary alone.")
        return {**{f"image{slot}_harmful": flag for slot, flag in enumerate(flags, start=1)},
                "reason": reason}

    def answer_images(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The images with the request. A concept pair was made to be harmful together; a benign
        twin (``twin`` in the facts) is harmful only if an image or its words still are (for an
        alarming-text twin, words with an everyday sense do not count: the images settle them)."""
        if facts.get("twin"):
            found = self.markers(facts["question"])
            if facts.get("alarming"):  # words that sound risky alone, read with the images
                found = [word for word in found if word not in self.everyday_senses]
            hazards = [facts[f"object{slot}"] for slot, flag
                       in enumerate(self.images_harmful(facts), start=1) if flag]
            harmful = bool(found or hazards)
            reason = (f"offline: still harmful ({', '.join([*found, *hazards])})." if harmful
                      else "offline: an ordinary request about ordinary things.")
            return {"combination_harmful": harmful, "meaningful": True,
                    "sub_category": facts["sub_category"], "reason": reason}
        return {"combination_harmful": True, "meaningful": True,
                "sub_category": facts["sub_category"],
                "reason": "offline: the request with these images carries the pair's risk."}
