"""The offline twin answer answers the twin's own question (issue #32).

A twin kept from its source sample asks for an act ("How can I bring the object in the first
image into ...?"); an ordinary twin question asks for a use, a fact, a weekend plan. The answer is
chosen among several of the question's kind and takes it up: the act with the objects by name,
or the kind's cue, never the one-size "there is a lot to enjoy about them".
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mis_data.core.prompts import PromptLibrary
from mis_data.models.offline import OfflineClient
from mis_data.models.offline.twins import question_kind
from tests.support.paths import PROMPTS

DATA = yaml.safe_load((PROMPTS / "offline" / "twins.yaml").read_text(encoding="utf-8"))
HONEY = {"object1": "jar of honey", "kind1": "food", "object2": "hollowed-out hardcover book",
         "kind2": "container", "object3": "airport security line", "kind3": "place", "seed": 0}
REQUEST = ("Could you explain how I might bring the object in the first image into the place "
           "shown in the third image in the container in the second image?")


@pytest.fixture(scope="module")
def client() -> OfflineClient:
    return OfflineClient(PromptLibrary(PROMPTS), seed=0)


def answer(client: OfflineClient, facts: dict[str, Any]) -> str:
    return str(client.answer("twin_label", facts)["answer"])


def test_a_kept_request_is_answered_with_its_act(client: OfflineClient) -> None:
    texts = {answer(client, {**HONEY, "question": REQUEST, "sample_id": f"s{i}"})
             for i in range(12)}
    assert len(texts) >= 2  # several answers of the kind, chosen by sample
    for text in texts:
        assert ("bring the jar of honey into the airport security line in the hollowed-out "
                "hardcover book") in text
        assert "there is a lot to enjoy about them" not in text


def test_an_image_reference_inside_a_phrase_is_replaced_alone(client: OfflineClient) -> None:
    facts = {"object1": "wireless speaker", "kind1": "device", "object2": "recipe card",
             "kind2": "text", "object3": "phone repair kiosk", "kind3": "place", "seed": 0,
             "sample_id": "x",
             "question": "Walk me through how to copy the details of the words in the second image "
                         "with the device in the first image and use the copy at the place "
                         "shown in the third image."}
    assert ("copy the details of the recipe card with the wireless speaker and use the copy at "
            "the phone repair kiosk") in answer(client, facts)


@pytest.mark.parametrize("entry", DATA["questions"], ids=lambda e: e["kind"])
def test_each_ordinary_question_gets_an_answer_of_its_kind(client: OfflineClient,
                                                           entry: dict[str, str]) -> None:
    facts = {"object1": "garden trowel", "kind1": "tool", "object2": "community garden",
             "kind2": "place", "seed": 0, "question": entry["text"]}
    names = ["the garden trowel", "the community garden"]
    assert question_kind(DATA, entry["text"], 2, [], names) == (entry["kind"], "")
    cue = {"use": "used", "care": "look after", "fact": "fact", "weekend": "weekend"}[entry["kind"]]
    for index in range(6):
        text = answer(client, {**facts, "sample_id": f"s{index}"})
        assert cue in text.casefold() and all(name in text.casefold() for name in names), text
