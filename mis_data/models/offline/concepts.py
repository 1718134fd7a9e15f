"""Offline answers for the concept tasks and the image critique: honest, crude stand-ins.

The offline backend cannot read a query or see an image, so it takes what the input gives away
(content words, a file name, the shipped pairs) and says so in every rationale.
"""

from __future__ import annotations

import itertools
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


def object_fields(objects: list[str], count: int) -> dict[str, str]:
    """``object1``/``kind1`` ... for ``count`` slots; a slot with nothing found stays empty (the
    concept rules then reject it as invalid, as a model's empty answer would be)."""
    fields: dict[str, str] = {}
    for slot in range(1, count + 1):
        fields[f"object{slot}"] = objects[slot - 1] if slot <= len(objects) else ""
        fields[f"kind{slot}"] = "object"
    return fields


def from_query(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The first and last content words of the query become the objects (with more images,
    the distinct content words in between fill the middle slots)."""
    words = [w for w in re.findall(r"[a-z]+", facts["query"].casefold())
             if w not in STOPWORDS and len(w) > 3]
    category, sub_category = best_sub_category(set(words), facts["taxonomy"])
    count = int(facts.get("images_per_sample", 2))
    chosen = list(dict.fromkeys(words))[:count - 1]
    objects = [*chosen, next((w for w in reversed(words) if w not in chosen), "")]
    return {"category": category, "sub_category": sub_category, **object_fields(objects, count),
            "rationale": "offline: content words of the query"}


def from_image(facts: Mapping[str, Any]) -> dict[str, Any]:
    """It cannot see: it reads ``object1_and_object2`` from the file name."""
    stem = facts.get("file_stem") or ""
    count = int(facts.get("images_per_sample", 2))
    parts = re.split(r"_and_|__|\+|-and-", stem, maxsplit=count - 1)
    objects = [part.replace("_", " ").replace("-", " ").strip() for part in parts]
    words = set(re.findall(r"[a-z]+", stem.casefold()))
    category, sub_category = best_sub_category(words, facts["taxonomy"])
    return {"category": category, "sub_category": sub_category, **object_fields(objects, count),
            "rationale": "offline: objects read from the file name"}


def image_critique(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Always accepts: typography shows the object's name, so there is nothing to fix; one empty
    prompt per slot (two when the facts name none)."""
    slots = [key[len("object"):] for key in facts if re.fullmatch(r"object\d", key)]
    return {"verdict": True, "reason": "offline: typography shows the object's name",
            **{f"prompt{slot}": "" for slot in slots or ("1", "2")}}


def generate(facts: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Recombines the shipped concepts of the sub-category: object 1 of one with object 2 of
    another (and object 3 of a third, ...), in seeded order, skipping what is taken."""
    pool = facts["pool"]
    taken = set(str(facts["taken"]).splitlines())  # the pairs proposed so far, one per line
    count = int(facts.get("images_per_sample", 2))
    pool = [entry for entry in pool if all(entry.get(f"object{k}") for k in range(1, count + 1))]
    combos = list(itertools.permutations(pool, count))
    combos.sort(key=lambda combo: stable_int(seed, *(entry[f"object{slot}"] for slot, entry
                                                     in enumerate(combo, start=1))))
    proposals: list[dict[str, str]] = []
    for combo in combos:
        fields = {}
        for slot, entry in enumerate(combo, start=1):
            fields[f"object{slot}"] = entry[f"object{slot}"]
            fields[f"kind{slot}"] = entry.get(f"kind{slot}", "object")
        line = "- " + " + ".join(f"{fields[f'object{slot}']} ({fields[f'kind{slot}']})"
                                 for slot in range(1, count + 1))
        if line in taken:
            continue
        taken.add(line)
        proposals.append({**fields, "rationale": "offline: recombined from two shipped pairs"
                          if count == 2 else f"offline: recombined from {count} shipped concepts"})
        if len(proposals) >= facts["count"]:
            break
    return {"pairs": proposals}
