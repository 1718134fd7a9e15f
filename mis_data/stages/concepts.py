"""Step 1: concept pairs (two depictable things whose combination carries a risk).

Input: the concept sources of the config: the shipped list, a JSONL/CSV file of harmful queries,
a Hugging Face dataset of queries, or a folder of unsafe images (a model names two objects for
each query or image, constrained to the taxonomy). Output: ``concepts.jsonl`` (ConceptRecord).
Drops: ``unknown_category`` (not in the taxonomy), ``invalid_concept`` (empty, vague or identical
objects), ``duplicate_concept`` (same pair after normalizing case, articles, plurals, order),
``bad_image`` / ``bad_source`` (an unusable image or query), and the model outcomes.

Unlike later stages this one is decided as a whole: duplicates and per-sub-category quotas
depend on every candidate, so candidates are gathered in config order, filtered in that order,
and the file is written once, atomically (``WholeStage``). A rerun with the file present does
nothing.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from mis_data.config import ShippedConcepts
from mis_data.models.base import ChatMessage, ImagePart, Problem, StructuredRequest, TextPart
from mis_data.records import (
    ConceptRecord,
    RejectReason,
    RejectRecord,
    Step,
    concept_key,
    normalize_object,
    sample_id,
    seeded_rank,
)
from mis_data.sources import ConceptInput, concept_inputs, shipped_entries
from mis_data.stages.base import BuildContext, Decision, WholeStage
from mis_data.taxonomy import Taxonomy

STAGE = Step.concepts.value
REQUIRED_FIELDS = ("sub_category", "object1", "object2")
# Words that name no depictable thing (MIS step 1: "vague terms are not allowed").
VAGUE_WORDS = {"behavior", "behaviour", "activity", "activities", "content", "action", "actions",
               "thing", "things", "stuff", "information", "situation", "harm", "crime", "intent",
               "violence", "danger", "risk", "something", "substances", "material"}


def concept_from_entry(
    entry: Any, where: str, source: str, taxonomy: Taxonomy, seed: int
) -> ConceptRecord | RejectRecord:
    """Validate one concept entry against the taxonomy and the record rules."""
    if not isinstance(entry, dict) or any(not entry.get(key) for key in REQUIRED_FIELDS):
        missing = [key for key in REQUIRED_FIELDS if not isinstance(entry, dict) or not entry.get(key)]
        return RejectRecord(stage=STAGE, id=where, reason=RejectReason.invalid_concept,
                            detail=f"{where}: missing or empty {', '.join(missing)}")
    sub_category = taxonomy.canonical(str(entry["sub_category"]))
    if sub_category is None:
        return RejectRecord(stage=STAGE, id=where, reason=RejectReason.unknown_category,
                            detail=f"{where}: sub-category {entry['sub_category']!r} is not in the taxonomy")
    category = taxonomy.category_of(sub_category)
    if entry.get("category") and str(entry["category"]).casefold() != category.casefold():
        return RejectRecord(stage=STAGE, id=where, reason=RejectReason.unknown_category,
                            detail=f"{where}: category {entry['category']!r} does not contain "
                                   f"{sub_category!r} (expected {category!r})")
    object1, object2 = str(entry["object1"]), str(entry["object2"])
    try:
        concept = ConceptRecord(
            id=sample_id(seed, sub_category, object1, object2),
            category=category, sub_category=sub_category,
            object1=object1, object2=object2,
            kind1=str(entry.get("kind1", "object")), kind2=str(entry.get("kind2", "object")),
            source=source, rationale=str(entry.get("rationale", "")),
        )
    except ValidationError as error:
        message = error.errors()[0]["msg"]
        return RejectRecord(stage=STAGE, id=where, reason=RejectReason.invalid_concept,
                            detail=f"{where}: {message}")
    if len(set(concept.key.split(" | "))) < 2:
        return RejectRecord(stage=STAGE, id=where, reason=RejectReason.invalid_concept,
                            detail=f"{where}: object1 and object2 are the same thing")
    return concept


Candidate = tuple[str, ConceptRecord | RejectRecord]


async def extracted_candidates(ctx: BuildContext, inputs: list[ConceptInput]) -> list[Candidate]:
    """Ask the model for a concept per query or image; results keep the input order."""
    limit = asyncio.Semaphore(ctx.config.models.text.concurrency)

    async def one(item: ConceptInput) -> Candidate:
        async with limit:
            return item.where, await extract_concept(ctx, item)

    return list(await asyncio.gather(*(one(item) for item in inputs)))


async def gather_candidates(ctx: BuildContext) -> list[Candidate]:
    """(where, candidate) from every source, in config order; ``where`` names the entry."""
    candidates: list[Candidate] = []
    for source in ctx.config.concepts.sources:
        if isinstance(source, ShippedConcepts):
            label = f"shipped:{source.path.name}"
            for where, entry in shipped_entries(source):
                candidates.append(
                    (where, concept_from_entry(entry, where, label, ctx.taxonomy, ctx.config.seed))
                )
        else:
            inputs, problems = concept_inputs(source, ctx.store)
            candidates.extend((p.id, p) for p in problems)
            candidates.extend(await extracted_candidates(ctx, inputs))
    return candidates


def concept_reply_model(taxonomy: Taxonomy) -> type[BaseModel]:
    """The extraction answer, with category and sub-category constrained to the taxonomy."""
    return create_model(
        "ConceptReply",
        category=(Literal[tuple(taxonomy.categories)], ...),
        sub_category=(Literal[tuple(taxonomy.sub_category_names)], ...),
        object1=(str, ...), object2=(str, ...), rationale=(str, ...),
    )


def extraction_problem(reply: Any, taxonomy: Taxonomy) -> Problem | None:
    """Objects must be concrete, depictable and distinct; the sub-category must fit the category."""
    if taxonomy.category_of(reply.sub_category) != reply.category:
        return Problem(RejectReason.unknown_category,
                       f"{reply.sub_category!r} belongs to {taxonomy.category_of(reply.sub_category)!r}, "
                       f"not {reply.category!r}")
    for obj in (reply.object1, reply.object2):
        words = normalize_object(obj).split()
        if not 1 <= len(words) <= 6:
            return Problem(RejectReason.invalid_concept,
                           f"object {obj!r} must be a short noun phrase (1-6 words)")
        if words[-1] in VAGUE_WORDS or all(word in VAGUE_WORDS for word in words):
            return Problem(RejectReason.invalid_concept,
                           f"object {obj!r} is vague; name something that can be drawn")
    if concept_key(reply.object1, reply.object2).split(" | ")[0] == concept_key(
            reply.object1, reply.object2).split(" | ")[1]:
        return Problem(RejectReason.invalid_concept, "object1 and object2 must differ")
    return None


async def extract_concept(ctx: BuildContext, item: ConceptInput) -> ConceptRecord | RejectRecord:
    """One model call: two objects and a sub-category for a query or an image."""
    taxonomy = ctx.taxonomy
    if item.text is not None:
        prompt = ctx.prompts.get("concept_from_query.md").render(
            query=item.text, taxonomy=taxonomy.describe())
        parts: tuple[Any, ...] = (TextPart(prompt),)
        task, role = "concept_from_query", "text"
    else:
        prompt = ctx.prompts.get("concept_from_image.md").render(taxonomy=taxonomy.describe())
        parts = (ImagePart(item.image_sha256 or ""), TextPart(prompt))
        task, role = "concept_from_image", "vision"
    request = StructuredRequest(
        task=task, role=role, item_id=item.where, stage=STAGE,
        messages=[ChatMessage("user", parts)], response_model=concept_reply_model(taxonomy),
        facts={"query": item.text, "file_stem": item.file_stem, "seed": ctx.config.seed,
               "taxonomy": [(s.category, s.name, s.description) for s in taxonomy.sub_categories]},
        check=lambda reply: extraction_problem(reply, taxonomy))
    result = await ctx.client.structured(request)
    if not result.ok:
        return RejectRecord(stage=STAGE, id=item.where, reason=result.reason or RejectReason.invalid_output,
                            detail=f"{item.where}: {result.detail}")
    reply = result.value
    entry = {"category": reply.category, "sub_category": reply.sub_category,
             "object1": reply.object1, "object2": reply.object2, "rationale": reply.rationale}
    return concept_from_entry(entry, item.where, item.source, taxonomy, ctx.config.seed)


def apply_filters(
    candidates: list[Candidate], ctx: BuildContext
) -> tuple[list[ConceptRecord], list[RejectRecord]]:
    """Drop duplicates and unwanted sub-categories, then apply the per-sub-category quota."""
    wanted = ctx.config.concepts.sub_categories
    allowed = {ctx.taxonomy.canonical(name) for name in wanted} if wanted else None
    seen: dict[str, str] = {}
    kept: list[ConceptRecord] = []
    rejects: list[RejectRecord] = []
    for where, candidate in candidates:
        if isinstance(candidate, RejectRecord):
            rejects.append(candidate)
            continue
        if allowed is not None and candidate.sub_category not in allowed:
            continue
        if candidate.key in seen:
            rejects.append(RejectRecord(
                stage=STAGE, id=where, reason=RejectReason.duplicate_concept,
                detail=f"{where}: {candidate.object1!r} + {candidate.object2!r} repeats the pair "
                       f"from {seen[candidate.key]}",
                sub_category=candidate.sub_category))
            continue
        seen[candidate.key] = where
        kept.append(candidate)
    quota = ctx.config.concepts.max_per_sub_category
    if quota:
        by_sub: dict[str, list[ConceptRecord]] = defaultdict(list)
        for concept in kept:
            by_sub[concept.sub_category].append(concept)
        def rank(concept: ConceptRecord) -> str:
            return seeded_rank(ctx.config.seed, "concept-quota", concept.id)

        chosen = {concept.id for group in by_sub.values() for concept in sorted(group, key=rank)[:quota]}
        kept = [concept for concept in kept if concept.id in chosen]
    return kept, rejects


class ConceptStage(WholeStage):
    name = Step.concepts.value

    async def decide(self) -> Decision:
        kept, rejects = apply_filters(await gather_candidates(self.ctx), self.ctx)
        kept.sort(key=lambda concept: concept.id)
        return Decision(records=list(kept), rejects=rejects)
