"""Offline answers for the concept tasks and the image critique: honest, crude stand-ins.

The offline backend cannot read a query or see an image, so it takes what the input gives away
(content words, a file name, the shipped pairs) and says so in every rationale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mis_data.models.offline.grammar import stable_int

STOPWORDS = frozenset("""
    a an the and or of to in on at for from with without by into onto how what which who whom
    why when where is are was were be been being do does did can could should would will shall
    may might must i you he she it we they me him her us them my your his its our their this
    that these those there here some any all most more very just also so as if then than about
    over under list detailed steps best way make get use using used someone something somebody
    people person
""".split())  # noqa: SIM905 - a word list reads best as text


def best_sub_category(words: set[str], taxonomy: list[tuple[str, str, str]]) -> tuple[str, str]:
    """The (category, sub-category) whose name and description share most words with ``words``."""
    def score(entry: tuple[str, str, str]) -> int:
        vocabulary = set(re.findall(r"[a-z]+", f"{entry[1]} {entry[2]}".casefold())) - STOPWORDS
        return len(words & vocabulary)

    best = max(taxonomy, key=score)
    return best[0], best[1]


def from_query(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The first and last content words of the query become the objects."""
    words = [w for w in re.findall(r"[a-z]+", facts["query"].casefold())
             if w not in STOPWORDS and len(w) > 3]
    category, sub_category = best_sub_category(set(words), facts["taxonomy"])
    object1 = words[0] if words else ""
    object2 = next((w for w in reversed(words) if w != object1), "")
    return {"category": category, "sub_category": sub_category, "object1": object1,
            "kind1": "object", "object2": object2, "kind2": "object",
            "rationale": "offline: content words of the query"}


def from_image(facts: Mapping[str, Any]) -> dict[str, Any]:
    """It cannot see: it reads ``object1_and_object2`` from the file name."""
    stem = facts.get("file_stem") or ""
    halves = re.split(r"_and_|__|\+|-and-", stem, maxsplit=1)
    objects = [half.replace("_", " ").replace("-", " ").strip() for half in halves]
    words = set(re.findall(r"[a-z]+", stem.casefold()))
    category, sub_category = best_sub_category(words, facts["taxonomy"])
    return {"category": category, "sub_category": sub_category, "object1": objects[0],
            "kind1": "object", "kind2": "object",
            "object2": objects[1] if len(objects) > 1 else "",
            "rationale": "offline: objects read from the file name"}


def image_critique(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {"verdict": True, "reason": "offline: typography shows the object's name",
            "prompt1": "", "prompt2": ""}


def generate(facts: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Recombines the shipped pairs of the sub-category: object 1 of one with object 2 of
    another, in seeded order, skipping what is taken."""
    pool = facts["pool"]
    taken = set(facts["taken"])
    combos = [(a, b) for a in pool for b in pool if a is not b]
    combos.sort(key=lambda ab: stable_int(seed, ab[0]["object1"], ab[1]["object2"]))
    pairs: list[dict[str, str]] = []
    for first, second in combos:
        kind1, kind2 = first.get("kind1", "object"), second.get("kind2", "object")
        line = f"- {first['object1']} ({kind1}) + {second['object2']} ({kind2})"
        if line in taken:
            continue
        taken.add(line)
        pairs.append({"object1": first["object1"], "kind1": kind1, "object2": second["object2"],
                      "kind2": kind2, "rationale": "offline: recombined from two shipped pairs"})
        if len(pairs) >= facts["count"]:
            break
    return {"pairs": pairs}
