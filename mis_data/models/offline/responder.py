"""The rewrite stage's responder offline (``prompts/offline/responder.yaml``): a stand-in
vision-language model that answers free text, as ``complete`` does with a real one.

The answer is picked by a seeded hash of (seed, sample, which prompt): asked the sample's own
question it mostly complies, asked the rewritten prompt it mostly answers safely, so an offline
build exercises every branch of the stage (an unsafe answer to analyse, a safe one that leaves
nothing to contrast, a refusal and an unsafe answer at the quality gate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mis_data.core.wording import join_words, ordinal_image
from mis_data.models.offline.grammar import definite, stable_int


def answer(data: Mapping[str, Any], facts: Mapping[str, Any], seed: int) -> str:
    """The answer to one request: ``facts`` name the sample (``item``), its first object, how
    many images it shows and whether the prompt is the rewritten one."""
    which = "rewritten" if facts.get("rewritten") else "original"
    draw = stable_int(seed, facts["item"], "respond", which) % 100
    text = next(option["text"] for option in data[which] if draw < option["limit"])
    images = join_words([ordinal_image(slot) for slot in range(1, int(facts["image_count"]) + 1)])
    return str(text).format(images=images, first=definite(str(facts["object1"])))
