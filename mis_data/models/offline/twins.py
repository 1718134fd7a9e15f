"""Benign twins offline (``prompts/offline/twins.yaml``): a harmless look-alike of the same
kind for ``swap_image``, an ordinary question for ``benign_text``, and a helpful answer that
names both objects and neither refuses nor warns. Choices are seeded by the sample id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mis_data.models.offline.grammar import capitalize, definite, pick


def swap(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    slot = int(facts["slot"])
    kind = facts[f"kind{slot}"]
    options = data["look_alikes"].get(kind) or data["look_alikes"]["object"]
    new = pick(list(options), facts["seed"], facts["sample_id"], "swap")
    return {"object": new, "reason": f"offline: {new} is an everyday {kind} with no risk here."}


def question(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    return {"question": pick(list(data["questions"]), facts["seed"], facts["sample_id"], "ask"),
            "reason": "offline: an ordinary question about what the images show."}


def answer(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    a, b = definite(facts["object1"]), definite(facts["object2"])
    text = pick(list(data["answers"]), facts["seed"], facts["sample_id"], "answer")
    return {"answer": text.format(a=a, b=b, b_cap=capitalize(b))}
