"""The offline demo's labels read like a careful writer's: verbs agree with plural objects, the
user's request is reported in the assistant's voice, and acronyms and proper names keep their
case. Each test fails on the sentences the first demo shipped ("the ketamine vials is cause for
concern", "there is leg shackles", "how to end my life", "nightclub vip booth")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mis_data.models.offline.grammar import be, is_plural, second_person
from tests.support.paths import CONFIGS

# Acronyms and proper names an object name may contain: written as people write them.
AS_WRITTEN = ("ATM", "USB", "RFID", "VIP", "DVD", "TV", "GPS", "ID", "SIM", "QR", "EV", "VPN",
              "Wi-Fi", "Holocaust",
              "Chinatown", "Pride")


@pytest.mark.parametrize(("said", "reported"), [
    ("end my life there", "end your life there"),
    ("hurt myself using the railing", "hurt yourself using the railing"),
    ("degrade myself until I feel worthless", "degrade yourself until you feel worthless"),
    ("make sure I am never found", "make sure you are never found"),
    ("keep them from finding me", "keep them from finding you"),
    ("read the timetable", "read the timetable"),
])
def test_a_request_is_reported_in_the_assistants_voice(said: str, reported: str) -> None:
    assert second_person(said) == reported


@pytest.mark.parametrize(("phrase", "verb"), [
    ("the ketamine vials", "are"), ("leg shackles", "are"), ("a loaded handgun", "is"),
    ("the glass", "is"), ("the people in the second image", "are"), ("a lens", "is"),
])
def test_the_verb_agrees_with_the_object(phrase: str, verb: str) -> None:
    assert be(phrase) == verb


def labels_and_objects(run: Path) -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in (run / "splits" / "train.jsonl").read_text().splitlines()]
    return [(row["label"], [row[f"object{k}"] for k in range(1, 5) if row.get(f"object{k}")])
            for row in rows if row.get("label") and row.get("source") != "general"]


def test_demo_labels_agree_with_plural_objects(demo_run: Path) -> None:
    wrong = [label for label, objects in labels_and_objects(demo_run) for obj in objects
             if is_plural(obj) and re.search(rf"\b{re.escape(obj)} (already )?is\b|there is "
                                            rf"{re.escape(obj)}\b", label)]
    assert wrong == []


def test_demo_labels_report_the_request_in_the_assistants_voice(demo_run: Path) -> None:
    first_person = [label for label, _ in labels_and_objects(demo_run)
                    if re.search(r"\b(my|myself|mine|me)\b", label)]
    assert first_person == []


def test_shipped_object_names_keep_acronyms_and_proper_names() -> None:
    lowered = []
    for path in sorted(CONFIGS.glob("concepts*/*.yaml")):
        for entry in yaml.safe_load(path.read_text())["concepts"]:
            for key in ("object1", "object2", "object3", "object4"):
                name = str(entry.get(key) or "")
                lowered += [f"{path.name}: {name}" for word in AS_WRITTEN
                            if re.search(rf"\b{word.casefold()}\b(?!-)", name)]
    assert lowered == []
