"""What a valid concept pair is: the checks every concept source shares (no model, no I/O).

A pair names two depictable things (concrete noun phrases of 1-6 words, never vague terms such
as "harmful content"), each of a kind from ``configs/kinds.yaml``, in a sub-category of the
taxonomy (its category must contain it), and the two objects differ. Its id is derived from the
seed, the sub-category and the normalized objects (``records.sample_id``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from mis_data.core.ids import sample_id
from mis_data.core.records import (
    MAX_IMAGES,
    ConceptRecord,
    RejectReason,
    RejectRecord,
    Step,
    concept_key,
    normalize_object,
)
from mis_data.core.taxonomy import Kind, Taxonomy
from mis_data.models.base import Problem

STAGE = Step.concepts.value
REQUIRED_FIELDS = ("sub_category", "object1", "object2")
# Words that name no depictable thing (MIS step 1: "vague terms are not allowed").
VAGUE_WORDS = {"behavior", "behaviour", "activity", "activities", "content", "action", "actions",
               "thing", "things", "stuff", "information", "situation", "harm", "crime", "intent",
               "violence", "danger", "risk", "something", "substances", "material"}


def reject(where: str, reason: RejectReason, detail: str,
           sub_category: str | None = None) -> RejectRecord:
    """A ``concepts`` reject named by ``where`` (the entry's place in its source), which also prefixes the
    detail so the log says where the entry came from."""
    return RejectRecord(stage=STAGE, id=where, reason=reason, detail=f"{where}: {detail}",
                        sub_category=sub_category)


def slots_of(entry: dict[str, Any]) -> int:
    """How many objects an entry names (object1, object2, then object3 and object4 if given)."""
    count = 2
    while count < MAX_IMAGES and entry.get(f"object{count + 1}"):
        count += 1
    return count


def concept_from_entry(entry: Any, where: str, source: str, taxonomy: Taxonomy, seed: int,
                       kinds: dict[str, Kind], count: int = 2) -> ConceptRecord | RejectRecord:
    """Validate one concept entry against the taxonomy, the kinds and the record rules; it must
    name ``count`` objects (the build's ``images_per_sample``)."""
    if not isinstance(entry, dict) or any(not entry.get(key) for key in REQUIRED_FIELDS):
        missing = [key for key in REQUIRED_FIELDS if not isinstance(entry, dict) or not entry.get(key)]
        return reject(where, RejectReason.invalid_concept, f"missing or empty {', '.join(missing)}")
    sub_category = taxonomy.canonical(str(entry["sub_category"]))
    if sub_category is None:
        return reject(where, RejectReason.unknown_category,
                      f"sub-category {entry['sub_category']!r} is not in the taxonomy")
    category = taxonomy.category_of(sub_category)
    if entry.get("category") and str(entry["category"]).casefold() != category.casefold():
        return reject(where, RejectReason.unknown_category,
                      f"category {entry['category']!r} does not contain {sub_category!r} "
                      f"(expected {category!r})")
    if slots_of(entry) != count:
        return reject(where, RejectReason.invalid_concept,
                      f"names {slots_of(entry)} objects; this build has {count} images per sample "
                      "(images_per_sample)", sub_category)
    slots = range(1, count + 1)
    chosen = [str(entry.get(f"kind{slot}") or "object") for slot in slots]
    unknown = [kind for kind in chosen if kinds and kind not in kinds]
    if unknown:
        return reject(where, RejectReason.invalid_concept,
                      f"unknown kind {unknown[0]!r} (known: {', '.join(kinds)})", sub_category)
    objects = [str(entry[f"object{slot}"]) for slot in slots]
    fields: dict[str, Any] = {
        f"{name}{slot}": value for slot, obj, kind in zip(slots, objects, chosen, strict=True)
        for name, value in (("object", obj), ("kind", kind))}
    try:
        concept = ConceptRecord(
            id=sample_id(seed, sub_category, *objects), category=category,
            sub_category=sub_category, source=source, rationale=str(entry.get("rationale", "")),
            **fields)
    except ValidationError as error:
        return reject(where, RejectReason.invalid_concept, error.errors()[0]["msg"], sub_category)
    if len(set(concept.key.split(" | "))) < count:
        return reject(where, RejectReason.invalid_concept, "two of its objects are the same thing",
                      sub_category)
    return concept


def object_problem(*objects: str) -> Problem | None:
    """Objects must be concrete, depictable and distinct."""
    for obj in objects:
        words = normalize_object(obj).split()
        if not 1 <= len(words) <= 6:
            return Problem(RejectReason.invalid_concept,
                           f"object {obj!r} must be a short noun phrase (1-6 words)")
        if words[-1] in VAGUE_WORDS or all(word in VAGUE_WORDS for word in words):
            return Problem(RejectReason.invalid_concept,
                           f"object {obj!r} is vague; name something that can be drawn")
    normalized = concept_key(*objects).split(" | ")
    if len(set(normalized)) < len(normalized):
        return Problem(RejectReason.invalid_concept, "the objects must differ")
    return None


def pair_fields(kinds: dict[str, Kind], count: int = 2) -> dict[str, Any]:
    """The fields of a proposed concept (``count`` objects), kinds constrained to the vocabulary."""
    kind = Literal[tuple(kinds)] if kinds else str
    fields: dict[str, Any] = {}
    for slot in range(1, count + 1):
        fields.update({f"object{slot}": (str, ...), f"kind{slot}": (kind, ...)})
    return {**fields, "rationale": (str, ...)}


def object_fields_json(count: int) -> str:
    """The object fields of a concept as a prompt's JSON example shows them."""
    return ", ".join(f'"object{slot}": "...", "kind{slot}": "..."' for slot in range(1, count + 1))


def concept_reply_model(taxonomy: Taxonomy, kinds: dict[str, Kind],
                        count: int = 2) -> type[BaseModel]:
    """An extracted concept, category, sub-category and kinds constrained to the data files."""
    # Built at run time from the data files, so mypy cannot check these as types.
    category: Any = Literal[tuple(taxonomy.categories)]
    sub_category: Any = Literal[tuple(taxonomy.sub_category_names)]
    return create_model(
        "ConceptReply", category=(category, ...), sub_category=(sub_category, ...),
        **pair_fields(kinds, count))


def generated_reply_model(kinds: dict[str, Kind], count: int = 2) -> type[BaseModel]:
    """A batch of proposed concepts (``count`` objects each) for one sub-category."""
    pair = create_model("ProposedPair", **pair_fields(kinds, count))
    return create_model("ProposedPairs", pairs=(list[pair], ...))  # type: ignore[valid-type]


def kinds_text(kinds: dict[str, Kind]) -> str:
    """The kinds as a prompt lists them, one ``- name: what`` line each; ``- object`` when the build
    defines none."""
    return "\n".join(f"- {kind.name}: {kind.what}" for kind in kinds.values()) or "- object"
