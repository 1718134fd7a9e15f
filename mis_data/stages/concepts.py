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

With ``targets:`` the build may ask for more concepts of some sub-categories after a round
(``top_up``): the next entries of the shipped lists (in the order the quota ranks them), then
new pairs from the ``generated`` source, told every pair taken so far. They are added to the
file with their ``round``, in one atomic write.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from mis_data.core.config import GeneratedConcepts, ShippedConcepts
from mis_data.core.records import ConceptRecord, RejectReason, RejectRecord, Step, seeded_rank
from mis_data.images.sources import ConceptInput, concept_inputs, shipped_entries
from mis_data.stages.base import BuildContext, Decision, WholeStage, record_decided_rejects
from mis_data.stages.concept_models import Candidate, Generator, extract_concept, pair_line
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
        chosen = {concept.id for group in by_sub.values()
                  for concept in sorted(group, key=lambda c: quota_rank(ctx, c))[:quota]}
        kept = [concept for concept in kept if concept.id in chosen]
    return kept, rejects


def quota_rank(ctx: BuildContext, concept: ConceptRecord) -> str:
    """The seeded order in which the quota keeps shipped concepts (and a top-up takes more)."""
    return seeded_rank(ctx.config.seed, "concept-quota", concept.id)


@dataclass
class TopUp:
    """What a top-up round added per sub-category, and which ones had nothing more to give."""

    added: dict[str, int] = field(default_factory=dict)
    exhausted: list[str] = field(default_factory=list)


def unused_shipped(ctx: BuildContext, wants: dict[str, int], keys: set[str]
                   ) -> dict[str, list[ConceptRecord]]:
    """Shipped concepts of the wanted sub-categories that the build has not taken, by rank."""
    found: dict[str, list[ConceptRecord]] = defaultdict(list)
    for source in ctx.config.concepts.sources:
        if not isinstance(source, ShippedConcepts):
            continue
        for where, entry in shipped_entries(source):
            candidate = concept_from_entry(entry, where, f"shipped:{source.path.name}",
                                           ctx.taxonomy, ctx.config.seed, ctx.kinds,
                                           ctx.config.images_per_sample)
            if (isinstance(candidate, ConceptRecord) and candidate.sub_category in wants
                    and candidate.key not in keys):
                found[candidate.sub_category].append(candidate)
    return {sub: sorted(group, key=lambda c: quota_rank(ctx, c)) for sub, group in found.items()}


async def top_up(ctx: BuildContext, wants: dict[str, int], round_number: int) -> TopUp:
    """Add up to ``wants[sub]`` concepts per sub-category, marked with ``round_number``."""
    existing = list(ctx.view.concepts.values())
    keys = {concept.key for concept in existing}
    added: list[ConceptRecord] = []
    for sub, group in unused_shipped(ctx, wants, keys).items():
        for concept in group:
            if len([c for c in added if c.sub_category == sub]) >= wants[sub]:
                break
            if concept.key not in keys:
                keys.add(concept.key)
                added.append(concept)
    missing = {sub: want - sum(c.sub_category == sub for c in added)
               for sub, want in wants.items()}
    rejects: list[RejectRecord] = []
    for source in ctx.config.concepts.sources:
        if not isinstance(source, GeneratedConcepts):
            continue
        generator = Generator(ctx, source, [(c.id, c) for c in [*existing, *added]])
        subs = [sub for sub in generator.sub_categories() if missing.get(sub, 0) > 0]
        groups = await asyncio.gather(*(generator.one_sub_category(
            sub, missing[sub], label=f"r{round_number}.",
            proposed=[pair_line(c.model_dump()) for c in existing
                      if c.sub_category == sub and c.source == "generated"])
            for sub in subs))
        for sub, proposals in zip(subs, groups, strict=True):
            for _where, candidate in proposals:
                if isinstance(candidate, RejectRecord):
                    rejects.append(candidate)
                else:
                    added.append(candidate)
                    missing[sub] -= 1
    added = [concept.model_copy(update={"round": round_number}) for concept in added]
    if added:
        ctx.run.write_records(Step.concepts.value, [*existing, *sorted(added, key=lambda c: c.id)])
    record_decided_rejects(ctx.run, STAGE, rejects)
    result = TopUp()
    for sub in wants:
        result.added[sub] = sum(c.sub_category == sub for c in added)
        if result.added[sub] < wants[sub]:
            result.exhausted.append(sub)
    return result


class ConceptStage(WholeStage):
    """The concepts step as a whole-file stage (see the module docstring for its inputs, output and drops)."""
    name = Step.concepts.value

    async def decide(self) -> Decision:
        """Gather every source's candidates, filter them in config order, and write the kept concepts
        sorted by id."""
        kept, rejects = apply_filters(await gather_candidates(self.ctx), self.ctx)
        kept.sort(key=lambda concept: concept.id)
        return Decision(records=list(kept), rejects=rejects)
