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
    lowered = text.casefold()
    return [word for word in words if _prefix(word).search(lowered)]


@lru_cache(maxsize=4096)
def _prefix(word: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(word.casefold())}")


class JudgeRules:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.intent_markers = [str(word) for word in data.get("intent_markers", [])]
        self.hazard_words = [str(word) for word in data.get("hazardous_object_words", [])]
        self.hazard_kinds = {str(kind) for kind in data.get("hazardous_kinds", [])}

    def markers(self, question: str) -> list[str]:
        return contains_any(question, self.intent_markers)

    def unsafe(self, question: str) -> bool:
        return bool(self.markers(question))

    def hazardous(self, name: str, kind: str) -> bool:
        return kind in self.hazard_kinds or bool(contains_any(name, self.hazard_words))

    def images_harmful(self, facts: Mapping[str, Any]) -> tuple[bool, bool]:
        flags = (self.hazardous(facts["object1"], facts.get("kind1", "object")),
                 self.hazardous(facts["object2"], facts.get("kind2", "object")))
        style = facts.get("style")
        if style == "hard":
            return False, False
        if style == "easy" and not any(flags):
            return True, False
        return flags

    def answer_text(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        found = self.markers(facts["question"])
        reason = (f"offline: the question states the harm openly ({', '.join(found)})." if found
                  else "offline: the wording alone is an ordinary request.")
        return {"label": "Unsafe" if found else "Safe", "sub_category": facts["sub_category"],
                "reason": reason}

    def answer_images(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        first, second = self.images_harmful(facts)
        shown = [facts[key] for key, flag in (("object1", first), ("object2", second)) if flag]
        reason = (f"offline: harmful on its own: {' and '.join(shown)}." if shown
                  else "offline: each image is ordinary alone; the risk is in the combination.")
        return {"image1_harmful": first, "image2_harmful": second, "combination_harmful": True,
                "meaningful": True, "sub_category": facts["sub_category"], "reason": reason}
