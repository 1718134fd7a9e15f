"""Benign twins offline (``prompts/offline/twins.yaml``): a harmless look-alike of the same
kind for ``swap_image``, an ordinary question for ``benign_text``, a request that sounds risky
in words alone with the harmless things that explain it for ``alarming_text``, and a
helpful answer to the twin's own question, naming its objects, that neither refuses nor
warns. Choices are seeded by the sample id.

The answer is chosen by what the question asks (``question_kind``): one of the ordinary
questions of twins.yaml (its ``kind``), or a request kept from the source sample, read with the
instruction openers ("How can I {body}?") into the act it asks for, its image references
replaced by the objects' names ("bring the jar of honey into the airport security line").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mis_data.core.records import ORDINALS
from mis_data.core.wording import join_words, ordinal_image
from mis_data.models.offline.grammar import capitalize, definite, pick, second_person, tidy
from mis_data.models.offline.judges import slot_count

# "the device in the second image", "the place shown in the first image", "the words in ..."
IMAGE_REF = re.compile(r"\bthe (?:[\w'-]+ ){1,2}?(?:shown )?in the (" + "|".join(ORDINALS)
                       + r") image\b", re.IGNORECASE)


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
    text = pick([entry["text"] for entry in options], facts["seed"], facts["sample_id"], "ask")
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


def named_question(question: str, names: Sequence[str]) -> str:
    """The question with each image reference replaced by that image's object ("the device in
    the second image" -> "the smartphone camera")."""
    def name(match: re.Match[str]) -> str:
        slot = ORDINALS.index(match.group(1).casefold())
        return names[slot] if slot < len(names) else match.group(0)
    return IMAGE_REF.sub(name, question)


def request_act(question: str, openers: Sequence[str], names: Sequence[str]) -> str | None:
    """The act a request asks for, read with the instruction openers ("How can I {body}?" ->
    the body), objects by name and in the assistant's voice; None when no opener fits."""
    named = named_question(question.strip(), names)
    for opener in sorted(openers, key=len, reverse=True):
        before, _, after = opener.partition("{body}")
        pattern = re.escape(before) + r"(.+?)" + re.escape(after) + r"$"
        found = re.match(pattern, named, re.IGNORECASE)
        if found:
            return tidy(second_person(found.group(1)))
    return None


def question_kind(data: Mapping[str, Any], question: str, count: int,
                  openers: Sequence[str], names: Sequence[str]) -> tuple[str, str]:
    """What the twin's question asks (a kind of ``answers``) and, for a request, its act."""
    images = join_words([ordinal_image(slot) for slot in range(1, count + 1)])
    for entry in data["questions"] if count == 2 else data["questions_many"]:
        if entry["text"].format(images=images).casefold() == question.strip().casefold():
            return str(entry["kind"]), ""
    act = request_act(question, openers, names)
    return ("how_to", act) if act else ("about", "")


def answer(data: Mapping[str, Any], facts: Mapping[str, Any],
           openers: Sequence[str] = ()) -> dict[str, Any]:
    """The ``twin_label`` answer: a helpful reply to the twin's question, chosen among the
    answers of its kind, naming every object, with neither refusal nor warning."""
    count = slot_count(facts)
    names = [definite(facts[f"object{slot}"]) for slot in range(1, count + 1)]
    kind, act = question_kind(data, facts.get("question", ""), count, openers, names)
    text = pick(list(data["answers"][kind]), facts["seed"], facts["sample_id"], "answer", kind)
    shown = join_words([f"{name} in {ordinal_image(slot)}"
                        for slot, name in enumerate(names, start=1)])
    objects = join_words(names)
    fields = {"a": names[0], "A": capitalize(names[0]), "last": names[-1],
              "Last": capitalize(names[-1]), "objects": objects, "Objects": capitalize(objects),
              "shown": shown, "act": act}
    return {"answer": tidy(capitalize(text.format(**fields)))}
