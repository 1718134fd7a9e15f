"""Benign twins offline (``prompts/offline/twins.yaml``): a harmless look-alike of the same
kind for ``swap_image``, an ordinary question for ``benign_text``, a request that sounds risky
in words alone with the harmless things that explain it for ``alarming_text``, and a helpful
answer that names both objects and neither refuses nor warns. Choices are seeded by the
sample id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mis_data.core.wording import join_words, ordinal_image
from mis_data.models.offline.grammar import capitalize, definite, pick
from mis_data.models.offline.judges import slot_count


def swap(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The image the judges found harmful on its own, or with none the last one (the target or
    the setting), replaced by an everyday thing of its kind."""
    harmful = list(facts.get("harmful_slots") or [])
    slot = harmful[0] if harmful else slot_count(facts)
    kind = facts[f"kind{slot}"]
    options = data["look_alikes"].get(kind) or data["look_alikes"]["object"]
    new = pick(list(options), facts["seed"], facts["sample_id"], "swap")
    return {"slot": slot, "object": new,
            "reason": f"offline: {new} is an everyday {kind} with no risk here."}


def question(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``twin_text`` answer: an ordinary question about the images, chosen by seed and sample."""
    count = slot_count(facts)
    options = data["questions"] if count == 2 else data["questions_many"]
    images = join_words([ordinal_image(slot) for slot in range(1, count + 1)])
    text = pick(list(options), facts["seed"], facts["sample_id"], "ask")
    return {"question": text.format(images=images),
            "reason": "offline: an ordinary question about what the images show."}


def alarming(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``twin_alarming`` answer: a seeded request of the ``alarming`` list, its images named
    by ordinal, and the first ``count`` things (with their kinds) it lists."""
    count = facts["count"]
    chosen = pick(list(data["alarming"]), facts["seed"], facts["sample_id"], "alarming")
    rest = [ordinal_image(slot) for slot in range(3, count + 1)]
    more = f" I also have what {join_words(rest)} {'shows' if len(rest) == 1 else 'show'}." \
        if rest else ""
    things = chosen["objects"][:count]
    return {"question": chosen["question"].format(a=ordinal_image(1), b=ordinal_image(2),
                                                  more=more),
            "objects": [thing[0] for thing in things], "kinds": [thing[1] for thing in things],
            "reason": "offline: the images show the everyday meaning of the words."}


def answer(data: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The ``twin_label`` answer: a helpful reply naming every object, with neither refusal nor
    warning."""
    count = slot_count(facts)
    names = [definite(facts[f"object{slot}"]) for slot in range(1, count + 1)]
    if count == 2:
        text = pick(list(data["answers"]), facts["seed"], facts["sample_id"], "answer")
        return {"answer": text.format(a=names[0], b=names[1], b_cap=capitalize(names[1]))}
    text = pick(list(data["answers_many"]), facts["seed"], facts["sample_id"], "answer")
    shown = join_words([f"{name} in {ordinal_image(slot)}"
                        for slot, name in enumerate(names, start=1)])
    return {"answer": capitalize(text.format(shown=shown, objects=join_words(names)))}
