"""The shipped offline demo reads like MIS: its recipe, its route shares, its question and label style.

All checks read the session's ``demo_run`` (the shipped ``configs/demo.yaml`` built once), so they
hold for whatever the offline backend and its data files produce, and they would fail on a backend
that picks whole templates with a coin flip: malformed questions, routes that do not follow the
text, labels that do not name the question's act.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from mis_data.core.records import REFUSAL_OPENER
from mis_data.core.rundir import RunDir
from mis_data.models.offline.grammar import second_person
from mis_data.reports.stats import diversity_by_side, question_diversity, read_facts, write_stats
from tests.support.offline_checks import REFS, Slot, agreement_problems, final_problems, kinds, offline_data

MIS_SHARES = {"train": 64, "easy": 27, "hard": 8}  # MIS: 3,927 train, 1,675 easy, 510 hard


def rows(run: Path, name: str) -> list[dict[str, Any]]:
    path = run / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def demo(demo_run: Path) -> dict[str, Any]:
    concepts = {c["id"]: c for c in rows(demo_run, "concepts")}
    instructions = rows(demo_run, "instructions")
    return {"concepts": concepts, "instructions": instructions,
            "by_id": {r["id"]: r for r in instructions},
            "judgements": rows(demo_run, "judgements"), "labels": rows(demo_run, "labels")}


def test_three_or_more_samples_per_pair(demo: dict[str, Any]) -> None:
    per_pair = Counter(r["concept_id"] for r in demo["instructions"])
    assert len(demo["instructions"]) >= 450
    assert len(demo["instructions"]) / len(demo["concepts"]) >= 3
    assert min(per_pair.values()) >= 2


def test_harmful_replaced_and_final_differ(demo: dict[str, Any]) -> None:
    records = demo["instructions"]
    different = [r for r in records if len({r["harmful"], r["replaced"], r["question"]}) == 3]
    assert len(different) >= 0.9 * len(records)


def test_route_shares_are_within_ten_points_of_mis(demo: dict[str, Any]) -> None:
    routes = Counter(j["route"] for j in demo["judgements"])
    total = sum(routes.values())
    shares = {route: 100 * routes[route] / total for route in MIS_SHARES}
    assert all(abs(shares[r] - MIS_SHARES[r]) <= 10 for r in MIS_SHARES), shares


def test_routes_follow_the_final_text(demo: dict[str, Any]) -> None:
    """Train exactly when the final question still states the harm (no coin flip)."""
    markers = offline_data("judge_rules.yaml")["intent_markers"]
    for judgement in demo["judgements"]:
        question = demo["by_id"][judgement["id"]]["question"].casefold()
        stated = any(re.search(rf"\b{re.escape(m.casefold())}", question) for m in markers)
        assert (judgement["route"] == "train") == stated, question


def test_every_sub_category_is_in_easy_and_in_hard(demo_run: Path, demo: dict[str, Any]) -> None:
    subs = {c["sub_category"] for c in demo["concepts"].values()}
    for split in ("easy", "hard"):
        members = rows(demo_run / "splits", split)
        assert {m["sub_category"] for m in members} == subs, split


def test_every_question_obeys_the_agreement_rules(demo: dict[str, Any]) -> None:
    vocabulary = kinds()
    problems = []
    for record in demo["instructions"]:
        concept = demo["concepts"][record["concept_id"]]
        kind = [vocabulary[concept["kind1"]], vocabulary[concept["kind2"]]]
        objects = (concept["object1"], concept["object2"])
        forms = {
            "harmful": [Slot(f"the {obj}", k) for obj, k in zip(objects, kind, strict=True)],
            "replaced": [Slot(k.reference(ref), k) for k, ref in zip(kind, REFS, strict=True)],
            "question": [Slot(k.reference(ref, detoxified=True), k)
                         for k, ref in zip(kind, REFS, strict=True)],
        }
        for form, slots in forms.items():
            found = agreement_problems(record[form], slots)
            if form == "question":
                found += final_problems(record[form], objects, REFS)
            problems += [f"{form} {record[form]!r}: {p}" for p in found]
    assert not problems, f"{len(problems)} malformed, e.g.:\n" + "\n".join(problems[:20])


def test_questions_are_diverse(demo_run: Path) -> None:
    diversity = diversity_by_side(read_facts(RunDir(demo_run)))
    everything = question_diversity([r["question"] for r in rows(demo_run, "instructions")])
    assert everything.top_opener_share <= 0.15, everything
    assert diversity["test"].questions >= 100
    assert diversity["test"].prefixes_per_100 >= 40, diversity["test"]
    assert "question diversity" in write_stats(demo_run).text


def test_question_diversity_counts_openers_and_prefixes() -> None:
    found = question_diversity(["How can I use the tool in the first image here?",
                                "How can I use the tool in the first image there?",
                                "What is the best way to do it?", "List detailed steps to go."])
    assert (found.top_opener, found.top_opener_share) == ("how can i", 0.5)
    assert found.prefixes_per_100 == 75.0


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip()) if s]


def test_labels_name_the_act_the_question_asks_for(demo: dict[str, Any]) -> None:
    """The risk part of each label contains the harmful verb its (train) question still has, in
    the assistant's voice ("end my life" is reported as "end your life")."""
    markers = offline_data("judge_rules.yaml")["intent_markers"]
    missing = []
    for label in demo["labels"]:
        question = demo["by_id"][label["id"]]["question"]
        found = [m for m in markers if re.search(rf"\b{re.escape(m)}", question, re.IGNORECASE)]
        risk = " ".join(sentences(label["text"])[1:]).casefold()
        stems = [re.escape(second_person(m).casefold().rstrip("e")) for m in found]
        if not any(re.search(rf"\b{stem}", risk) for stem in stems):
            missing.append(f"{question!r} ({found}) -> {label['text'][:160]!r}")
    assert not missing, f"{len(missing)} labels miss their act, e.g.:\n" + "\n".join(missing[:5])


def test_labels_follow_the_mis_style(demo: dict[str, Any]) -> None:
    texts = [label["text"] for label in demo["labels"]]
    assert len(texts) >= 200 and len(set(texts)) == len(texts), "duplicate labels"
    openings = Counter(" ".join(text.split()[:4]) for text in texts)
    assert len(openings) >= 8 and openings.most_common(1)[0][1] <= 0.25 * len(texts), openings
    for label in demo["labels"]:
        text = label["text"]
        concept = demo["concepts"][demo["by_id"][label["id"]]["concept_id"]]
        first = sentences(text)[0].casefold()
        assert concept["object1"].casefold() in first and concept["object2"].casefold() in first, text
        assert 120 <= len(text.split()) <= 250, text
        assert not REFUSAL_OPENER.match(text) and "\n" not in text, text
        assert not re.search(r"\bstep \d|^\s*\d+[.)]", text, re.IGNORECASE), text


def test_no_label_sentence_is_shared_between_sub_categories(demo: dict[str, Any]) -> None:
    used: dict[str, set[str]] = defaultdict(set)
    sub_of = {j["id"]: j["sub_category"] for j in demo["judgements"]}
    for label in demo["labels"]:
        for sentence in sentences(label["text"]):
            used[sentence].add(sub_of[label["id"]])
    shared = {sentence: subs for sentence, subs in used.items() if len(subs) > 1}
    assert not shared, list(shared.items())[:5]
