"""The offline backend's caches give what the uncached code gives, whatever was asked before.

The offline backend keeps answers of pure functions (a template book's fitting templates, a
pair's candidate drafts, normalized words) so a build does not work them out again for every
request. A cache keyed on too little would hand one pair's answer to another; these tests ask
pairs that differ in one input only, in both orders, and compare with the uncached code.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mis_data.core.prompts import PromptLibrary
from mis_data.core.records import normalize_object
from mis_data.models.offline import OfflineClient, instructions
from mis_data.models.offline.detox import Reference
from mis_data.models.offline.instructions import InstructionWriter, object_words
from tests.support.offline_checks import CONFIGS, PROMPTS, REFS, kinds

SUB = "Property Crimes"


def shipped_pairs(limit: int = 40) -> list[dict[str, Any]]:
    """Facts as the instructions stage gives them, for the first ``limit`` shipped pairs."""
    vocabulary = kinds()
    entries = []
    for path in sorted((CONFIGS / "concepts").glob("*.yaml")):
        entries += yaml.safe_load(path.read_text(encoding="utf-8"))["concepts"]
    facts = []
    for index, entry in enumerate(entries[:limit]):
        pair: dict[str, Any] = {"sub_category": entry["sub_category"], "concept_id": f"pair-{index}",
                                "count": 3, "style": entry.get("style"), "siblings": []}
        for slot, ref in enumerate(REFS, start=1):
            kind = entry.get(f"kind{slot}", "object")
            pair |= {f"object{slot}": entry[f"object{slot}"], f"kind{slot}": kind,
                     f"phrase{slot}": vocabulary[kind].reference(ref),
                     f"neutral{slot}": vocabulary[kind].reference(ref, detoxified=True)}
        facts.append(pair)
    return facts


def fresh_writer() -> InstructionWriter:
    return OfflineClient(PromptLibrary(PROMPTS), seed=0).instructions


def answers(writer: InstructionWriter, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every step-2 answer for the pairs, asked in the order given."""
    found = {}
    for pair in pairs:
        harmful = writer.harmful(pair)
        modified = [writer.modify({**pair, "harmful": q["question"]}) for q in harmful["questions"]]
        detoxed = [writer.detoxify({**pair, "question": m["question"]}) for m in modified]
        found[pair["concept_id"]] = (harmful, modified, detoxed)
    return found


def test_answers_do_not_depend_on_what_was_asked_before() -> None:
    pairs = shipped_pairs()
    assert answers(fresh_writer(), pairs) == answers(fresh_writer(), pairs[::-1])


def test_pairs_that_differ_in_one_input_get_their_own_candidates() -> None:
    """Same sub-category and kinds, different object names: the templates whose words name the
    object ("holiday") are left out for the pair that has it, and only for that pair."""
    writer = fresh_writer()
    base = {"sub_category": SUB, "concept_id": "c1", "object1": "crowbar", "kind1": "tool",
            "object2": "jewelry store", "kind2": "place"}
    other = {**base, "object2": "holiday cottage"}
    first, second = writer.candidates(base), writer.candidates(other)
    assert first == fresh_writer().candidates(base)
    assert second == fresh_writer().candidates(other)
    words = object_words("holiday cottage")
    assert any(draft.template.fixed_words() & words for draft in first)
    assert not any(draft.template.fixed_words() & words for draft in second)
    # A caller that changes the list it got does not change the next caller's.
    first.clear()
    assert writer.candidates(base) == fresh_writer().candidates(base) != []


def test_the_book_fits_each_kinds_on_their_own() -> None:
    book = fresh_writer().book
    tool_place = book.compatible(SUB, "tool", "place")
    place_tool = book.compatible(SUB, "place", "tool")
    assert tool_place and place_tool
    assert [order for _, order in tool_place] != [order for _, order in place_tool]
    tool_place.clear()
    assert book.compatible(SUB, "tool", "place") == fresh_writer().book.compatible(SUB, "tool", "place")


@pytest.mark.parametrize(("text", "normal"), [("The Crowbars", "crowbar"),
                                              ("bottles of bleach", "bottle of bleach"),
                                              ("crowbar stores", "crowbar store")])
def test_normalized_names_are_each_their_own(text: str, normal: str) -> None:
    assert normalize_object(text) == normal
    assert normalize_object(text) == normalize_object.__wrapped__(text)


def test_detox_answers_are_kept_per_question_and_references() -> None:
    """The same question with other references, or another question, is detoxified anew; a
    caller changing its list of changes does not change the next caller's."""
    detox = fresh_writer().detox
    question = "How can I use the weapon in the first image?"
    weapon = Reference("the weapon in the first image", "the object in the first image", False)
    place = Reference("the place shown in the second image", "the place shown in the second image",
                      False)
    for _ in range(2):
        text, changes = detox.apply(question, [weapon])
        assert text == "How can I use the object in the first image?"
        assert changes == ['rule 4: "the weapon in the first image" -> "the object in the first image"']
        changes.clear()
        assert detox.apply(question, [place]) == (question, [])


@pytest.mark.parametrize("question", [
    "How to steal the device in the first image?",
    "HOW TO STEAL the device in the first image?",
    # Not ASCII: the long s, which a case-blind pattern matches as "s" but ``str.lower`` keeps;
    # the quick lower-case test cannot see that, so such text always gets the full patterns.
    "How to \u017fteal the device in the first image?",
])
def test_the_quick_test_before_a_rule_misses_no_match(question: str) -> None:
    text, changes = fresh_writer().detox.apply(question, [])
    assert changes == ['rule 2: "steal" -> "take"']
    assert text.casefold() == "how to take the device in the first image?"


def test_the_judge_reads_each_question_on_its_own() -> None:
    judge = fresh_writer().judge
    for _ in range(2):
        found = judge.markers("How to loot the place?")
        assert found == ["loot"]
        found.clear()
        assert judge.markers("How to get into the place?") == []
        assert judge.markers("HOW TO LOOT THE PLACE?") == ["loot"]


def test_find_gives_each_pair_its_own_draft_even_once_forgotten(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The drafts of a pair by their harmful wording are kept per pair: a question of one pair is
    not found for another, and a pair dropped from the kept ones is worked out again."""
    monkeypatch.setattr(instructions, "PAIRS_KEPT", 2)
    writer, fresh = fresh_writer(), fresh_writer()
    pairs = shipped_pairs(6)
    asked = [(pair, question["question"]) for pair in pairs
             for question in writer.harmful(pair)["questions"]]
    for _ in range(2):  # the second round finds pairs the first round pushed out
        for pair, question in asked:
            draft = writer.find(pair, question)
            assert draft is not None
            assert draft.question(*instructions.named_fillers(writer.book, pair)) == question
            other = {**pair, "concept_id": "another"}  # other openers: maybe no such question
            assert writer.find(other, question) == fresh.find(other, question)
        assert writer.find(pairs[0], "How do I bake bread?") is None
    assert len(writer._named) <= 2 and len(writer._candidates) <= 2


def test_the_image_judge_reads_each_name_on_its_own() -> None:
    judge = fresh_writer().judge
    for _ in range(2):
        assert judge.hazardous("loaded handgun", "object")
        assert not judge.hazardous("tote bag", "object")
        assert judge.hazardous("tote bag", "weapon")
