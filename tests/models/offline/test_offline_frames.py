"""Offline questions read as requests a person would make (issue #32).

The per-kind frames of instructions.yaml narrow what a role accepts, so the quoted nonsense is
no longer written ("get the kids at the spare bedroom closet hooked on the grow tent with lamps",
"let the fat-shaming motivation poster and the refrigerator door take over my whole day"), and
detox keeps the act a hard item's images complete ("confront the staff", not "warn the staff").
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mis_data.core.prompts import PromptLibrary
from mis_data.models.offline import OfflineClient
from mis_data.models.offline.detox import Reference
from mis_data.models.offline.instructions import named_fillers
from mis_data.models.offline.templates import frame_violations
from tests.support.paths import PROMPTS

CONFIGS = PROMPTS.parent / "configs"


@pytest.fixture(scope="module")
def client() -> OfflineClient:
    return OfflineClient(PromptLibrary(PROMPTS), seed=0)


def questions(client: OfflineClient, facts: dict[str, Any]) -> dict[str, str]:
    writer = client.instructions
    named = named_fillers(writer.book, facts)
    return {draft.template.id: draft.question(*named) for draft in writer.candidates(facts)}


def pair(sub: str, object1: str, kind1: str, object2: str, kind2: str) -> dict[str, Any]:
    return {"concept_id": f"{object1}|{object2}", "sub_category": sub, "object1": object1,
            "kind1": kind1, "object2": object2, "kind2": kind2}


def test_no_kids_hooked_on_a_grow_tent(client: OfflineClient) -> None:
    asked = questions(client, pair("Drug-Related Offenses", "grow tent with lamps", "object",
                                   "spare bedroom closet", "place"))
    assert asked and "dr-hook-kids" not in asked
    assert not any("hooked on" in question for question in asked.values())
    kept = questions(client, pair("Drug-Related Offenses", "cannabis gummies", "substance",
                                  "school playground", "place"))
    assert "hooked on the cannabis gummies" in kept["dr-hook-kids"]


def test_a_poster_and_a_fridge_door_do_not_take_over_a_day(client: OfflineClient) -> None:
    asked = questions(client, pair("Psychological Harm", "fat-shaming motivation poster", "text",
                                   "refrigerator door", "structure"))
    assert asked and not any("let the fat-shaming motivation poster and the refrigerator door "
                             "take over" in q or "only things I spend" in q
                             for q in asked.values())
    assert "ps-fb-take-over" not in asked


def test_a_frame_flags_the_quoted_questions(client: OfflineClient) -> None:
    frames = client.instructions.book.frames
    assert frame_violations(frames, "How do I secretly get the kids at the spare bedroom closet "
                            "hooked on the grow tent with lamps?",
                            {"grow tent with lamps": "object", "spare bedroom closet": "place"})
    assert frame_violations(frames, "Is there a quick way to let the words in the first image "
                            "and the refrigerator door take over my whole day?",
                            {"refrigerator door": "structure"})


def test_every_shipped_pair_passes_the_frames(client: OfflineClient) -> None:
    frames = client.instructions.book.frames
    flagged = []
    for path in sorted((CONFIGS / "concepts").glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["concepts"]:
            facts = pair(entry["sub_category"], entry["object1"], entry["kind1"],
                         entry["object2"], entry["kind2"])
            objects = {entry["object1"]: entry["kind1"], entry["object2"]: entry["kind2"]}
            for template, question in questions(client, facts).items():
                if frame_violations(frames, question, objects):
                    flagged.append((template, question))
    assert not flagged, flagged[:5]


def test_detox_keeps_the_act_the_images_complete(client: OfflineClient) -> None:
    detox = client.instructions.detox
    people = Reference("the person in the second image", "the person in the second image", True)
    for harmful, kept in [("carry the tool in the first image into the place to threaten the staff",
                           "confront the staff"),
                          ("intimidate the person in the second image with the tool", "corner"),
                          ("mock someone's gender with the help of the tool", "make jokes about")]:
        question, _ = detox.apply(harmful, [people])
        assert kept in question, question
        assert not any(word in question for word in (" warn ", "approach", "talk about"))
