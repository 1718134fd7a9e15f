"""Step 1: concept pairs (two depictable things whose combination carries a risk).

Input: the concept sources of the config: the shipped list, a JSONL/CSV file of harmful
queries, a Hugging Face dataset of queries, a folder of unsafe images (a model names two
objects, their kinds and a sub-category for each), or ``generated`` (the text model proposes
new pairs per sub-category). Output: ``concepts.jsonl`` (ConceptRecord). Drops:
``unknown_category`` (not in the taxonomy), ``invalid_concept`` (empty, vague or identical
objects, an unknown kind), ``duplicate_concept`` (same pair after normalizing case, articles,
plurals and order; for generated pairs also the same pair of head nouns), ``bad_image`` /
``bad_source`` (an unusable image or query), and the model outcomes.

A whole-file stage: duplicates and per-sub-category quotas depend on every candidate, so
candidates are gathered in config order, filtered in that order, and the file is written once,
atomically. A rerun with the file present does nothing.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from mis_data.config import GeneratedConcepts, ShippedConcepts
from mis_data.records import ConceptRecord, RejectReason, RejectRecord, Step, seeded_rank
from mis_data.sources import ConceptInput, concept_inputs, shipped_entries
from mis_data.stages.base import BuildContext, Decision, WholeStage
from mis_data.stages.concept_models import Candidate, Generator, extract_concept
from mis_data.stages.concept_rules import STAGE, concept_from_entry


async def extracted_candidates(ctx: BuildContext, inputs: list[ConceptInput]) -> list[Candidate]:
    """Ask the model for a concept per query or image; results keep the input order."""
    limit = asyncio.Semaphore(ctx.config.models.text.capacity)

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
            candidates += [(where, concept_from_entry(entry, where, label, ctx.taxonomy,
                                                      ctx.config.seed, ctx.kinds,
                                                      ctx.config.images_per_sample))
                           for where, entry in shipped_entries(source)]
        elif isinstance(source, GeneratedConcepts):
            candidates += await Generator(ctx, source, candidates).all()
        else:
            inputs, problems = concept_inputs(source, ctx.store)
            candidates.extend((p.id, p) for p in problems)
            candidates.extend(await extracted_candidates(ctx, inputs))
    return candidates


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
                detail=f"{where}: {' + '.join(map(repr, candidate.objects))} repeats the "
                       f"concept from {seen[candidate.key]}",
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
