"""How prompts speak of a sample's images, for any number of them (``images_per_sample``).

A prompt file says "$image_count images" and "$refs" rather than "two images" and "the first
image and the second image", so one file serves samples of two, three or four images. The
values are built here, from the records alone, so every stage words them the same way; for
two images they read as the two-image prompts always did ("both objects", "the first image
and the second image").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mis_data.core.records import COUNT_WORDS, ORDINALS


def join_words(items: Sequence[str], conjunction: str = "and") -> str:
    """"a and b", "a, b and c"."""
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def ordinal_image(slot: int) -> str:
    """"the first image" ... "the fourth image" for slot 1 ... 4."""
    return f"the {ORDINALS[slot - 1]} image"


def count_word(count: int) -> str:
    """A number of images (2 to 4) as prompts write it: ``3`` -> "three"; ``KeyError`` otherwise."""
    return COUNT_WORDS[count]


def all_of(count: int, noun: str) -> str:
    """"both objects" / "all three objects"."""
    return f"both {noun}" if count == 2 else f"all {count_word(count)} {noun}"


def quoted(items: Sequence[str], conjunction: str = "and") -> str:
    """The items in double quotes, joined like ``join_words``: how prompts name JSON fields."""
    return join_words([f'"{item}"' for item in items], conjunction)


def image_facts(objects: Sequence[str], kinds: Sequence[str]) -> dict[str, str]:
    """The placeholders every stage prompt may use about the images of one sample.

    ``object<k>``/``kind<k>`` per slot; ``image_count`` ("two"); ``both_objects`` ("both
    objects"); ``objects`` ("Object 1: ... (kind: ...)" lines); ``objects_by_image`` (the same
    lines with the image each object is in); ``image_list`` ("first image: ...; second image:
    ..."); ``image_fields`` (the judge's per-image JSON fields); ``image_sources`` (the DREAM
    sources of single images); ``each_image_shows`` (what a label says it describes).
    """
    count = len(objects)
    facts: dict[str, str] = {}
    for slot, (obj, kind) in enumerate(zip(objects, kinds, strict=True), start=1):
        facts[f"object{slot}"] = obj
        facts[f"kind{slot}"] = kind
    ordinals = [ORDINALS[slot] for slot in range(count)]
    facts.update({
        "image_count": count_word(count),
        "both_objects": all_of(count, "objects"),
        "both_images": all_of(count, "images"),
        "objects": "\n".join(f"Object {slot}: {obj} (kind: {kind})" for slot, (obj, kind)
                             in enumerate(zip(objects, kinds, strict=True), start=1)),
        "objects_by_image": "\n".join(
            f"Object {slot} ({ordinals[slot - 1]} image): {obj} (kind: {kind})"
            for slot, (obj, kind) in enumerate(zip(objects, kinds, strict=True), start=1)),
        "image_list": "; ".join(f"{ordinal} image: {obj}"
                                for ordinal, obj in zip(ordinals, objects, strict=True)),
        "image_fields": quoted([f"image{slot}_harmful" for slot in range(1, count + 1)]),
        "image_sources": quoted([f"image{slot}" for slot in range(1, count + 1)], "or"),
        "each_image_shows": join_words([f"what {ordinal_image(slot)} shows"
                                        for slot in range(1, count + 1)]),
    })
    return facts


def word_count(text: str) -> int:
    """Words as the label prompts count them: runs of non-space characters."""
    return len(re.findall(r"\S+", text))
