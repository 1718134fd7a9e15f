"""Records: stable ids, normalization for duplicate checks, template-token filters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mis_data.core.ids import sample_id
from mis_data.core.records import (
    ConceptRecord,
    InstructionRecord,
    concept_key,
    find_template_token,
    normalize_object,
    scrub_template_tokens,
)


def test_normalization_ignores_case_articles_plurals() -> None:
    assert normalize_object("The Crowbars") == normalize_object("a crowbar") == "crowbar"
    assert normalize_object("Bottles of Bleach") == normalize_object("a bottle of bleach")
    assert normalize_object("batteries") == normalize_object("battery")
    assert normalize_object("glass") == "glass"


def test_concept_key_is_order_insensitive() -> None:
    assert concept_key("crowbar", "Jewelry Stores") == concept_key("the jewelry store", "crowbars")


def test_sample_ids_are_stable_and_seeded() -> None:
    first = sample_id(0, "Property Crimes", "crowbar", "store")
    assert first == sample_id(0, "Property Crimes", "Crowbars", "the store")
    assert first != sample_id(1, "Property Crimes", "crowbar", "store")


@pytest.mark.parametrize("text", ["<image> hi", "a </img> b", "<IMG_CONTEXT>", "x <|vision_start|>",
                                  "<video>", "< image >"])
def test_template_tokens_are_found_and_scrubbed(text: str) -> None:
    assert find_template_token(text)
    assert find_template_token(scrub_template_tokens(text)) is None


def test_plain_angle_brackets_are_not_template_tokens() -> None:
    assert find_template_token("if a < b and c > d") is None


def test_records_reject_template_tokens_and_empty_objects() -> None:
    with pytest.raises(ValidationError):
        InstructionRecord(id="x", question="Use <image> now", model="m")
    with pytest.raises(ValidationError):
        ConceptRecord(id="x", category="c", sub_category="s", object1="the", object2="knife",
                      source="t")
