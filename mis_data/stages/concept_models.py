"""Concept pairs a model makes: extracted from a harmful query or an unsafe image (MIS step 1),
or proposed per sub-category from a few shipped examples (``kind: generated``).

Extraction asks once per query or image. Generation asks in rounds per sub-category, each
round told every pair already proposed, until ``per_sub_category`` new pairs are accepted or
twice the needed rounds have passed; a proposal whose pair (or whose pair of head nouns,
``records.concept_signature``) repeats an earlier one of the build is ``duplicate_concept``.
Sub-categories run concurrently; within one the rounds are sequential, so the same answers
always give the same pairs, and a rerun asks nothing twice (every answer is cached).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, cast

from pydantic import BaseModel

from mis_data.core.config import GeneratedConcepts, ShippedConcepts
from mis_data.core.records import (
    ConceptRecord,
    RejectReason,
    RejectRecord,
    concept_signature,
    seeded_rank,
)
from mis_data.core.wording import all_of, count_word
from mis_data.images.sources import ConceptInput, shipped_entries
from mis_data.models.base import Problem
from mis_data.stages.base import BuildContext, ModelTask, PlanProbe, model_request
from mis_data.stages.concept_rules import (
    STAGE,
    concept_from_entry,
    concept_reply_model,
    generated_reply_model,
    kinds_text,
    object_fields_json,
    object_problem,
    reject,
    slots_of,
)

Candidate = tuple[str, ConceptRecord | RejectRecord]


async def extract_concept(ctx: BuildContext, item: ConceptInput) -> ConceptRecord | RejectRecord:
    """One model call: two objects, their kinds and a sub-category for a query or an image."""
    taxonomy, count = ctx.taxonomy, ctx.config.images_per_sample
    values = {"taxonomy": taxonomy.describe(), "kinds": kinds_text(ctx.kinds),
              **concept_wording(count)}
    images: tuple[str, ...]
    if item.text is not None:
        task, values, images = FROM_QUERY, {"query": item.text, **values}, ()
    else:
        task, images = FROM_IMAGE, (item.image_sha256 or "",)

    def check(reply: Any) -> Any:
        if taxonomy.category_of(reply.sub_category) != reply.category:
            return Problem(RejectReason.unknown_category,
                           f"{reply.sub_category!r} belongs to "
                           f"{taxonomy.category_of(reply.sub_category)!r}, not {reply.category!r}")
        return object_problem(*(getattr(reply, f"object{slot}") for slot in range(1, count + 1)))

    result = await ctx.client.structured(model_request(
        ctx, task, stage=STAGE, item_id=item.where, values=values, images=images,
        facts={"query": item.text, "file_stem": item.file_stem, "seed": ctx.config.seed,
               "images_per_sample": count,
               "taxonomy": [(s.category, s.name, s.description) for s in taxonomy.sub_categories]},
        check=check))
    if not result.ok:
        return reject(item.where, result.reason or RejectReason.invalid_output, result.detail)
    assert result.value is not None, "an ok result carries its reply"
    return concept_from_entry(result.value.model_dump(), item.where, item.source, taxonomy,
                              ctx.config.seed, ctx.kinds, count)


def generate_plan_text(probe: PlanProbe) -> str:
    """A generation round's prompt as the plan sizes it: a few examples and pairs taken."""
    ctx = probe.ctx
    sub = ctx.taxonomy.sub_categories[0]
    return ctx.prompts.get("concept_generate.md").render(
        category=sub.category, sub_category=sub.name, description=sub.description, count=10,
        kinds=", ".join(ctx.kinds), examples="- x (object) + y (place)\n" * 4,
        taken="- x (object) + y (place)\n" * 20,
        examples_heading=examples_heading([], ctx.config.images_per_sample),
        **concept_wording(ctx.config.images_per_sample))


def extracted_reply(ctx: BuildContext) -> type[BaseModel]:
    """What an extraction answers: the objects, their kinds and a sub-category."""
    return concept_reply_model(ctx.taxonomy, ctx.kinds, ctx.config.images_per_sample)


FROM_QUERY = ModelTask("concept_from_query", "text", "concept_from_query.md",
                       reply_of=extracted_reply, reply_chars=lambda _: 200)
FROM_IMAGE = ModelTask("concept_from_image", "vision", "concept_from_image.md",
                       reply_of=extracted_reply, reply_chars=lambda _: 200)
GENERATE = ModelTask(
    "concept_generate", "text", "concept_generate.md",
    reply_of=lambda ctx: generated_reply_model(ctx.kinds, ctx.config.images_per_sample),
    plan_text=generate_plan_text, reply_chars=lambda _: 10 * 140)  # ten pairs a round
TASKS = (FROM_QUERY, FROM_IMAGE, GENERATE)


def concept_wording(count: int) -> dict[str, str]:
    """What the concept prompts say about the number of objects (two for MIS, up to four)."""
    return {"image_count": count_word(count), "both_objects": all_of(count, "objects"),
            "concept_word": "pair" if count == 2 else f"set of {count_word(count)} objects",
            "concepts_word": "pairs" if count == 2 else f"sets of {count_word(count)} objects",
            "object_fields": object_fields_json(count)}


def shipped_pool(ctx: BuildContext, source: GeneratedConcepts) -> dict[str, list[dict[str, Any]]]:
    """The shipped pairs of every sub-category: examples for the prompt, by seeded rank."""
    assert source.examples_path is not None
    pool: dict[str, list[dict[str, Any]]] = {}
    for _where, entry in shipped_entries(ShippedConcepts(path=source.examples_path)):
        sub = ctx.taxonomy.canonical(str(entry.get("sub_category", ""))) if isinstance(
            entry, dict) else None
        if sub:
            pool.setdefault(sub, []).append(entry)
    for entries in pool.values():
        entries.sort(key=lambda e: seeded_rank(ctx.config.seed, "examples", f"{e['object1']}|"
                                                                             f"{e['object2']}"))
    return pool


def examples_heading(shown: list[dict[str, Any]], count: int) -> str:
    """The line above the examples. It says so when they name another number of objects than
    the build asks for (no four-object list ships, so a four-image build shows triples)."""
    sizes = sorted({slots_of(entry) for entry in shown})
    if not sizes or sizes == [count]:
        return f"Good {concept_wording(count)['concepts_word']} for this sub-category:"
    theirs = " and ".join(concept_wording(size)["concepts_word"] for size in sizes)
    return (f"Good {theirs} for this sub-category (yours have {count_word(count)} objects each, "
            "every one needed for the risk):")


def pair_line(entry: dict[str, Any]) -> str:
    """A concept as one line of a prompt's list (``- object (kind) + object (kind)``); the same line tells
    the model which pairs are taken."""
    return "- " + " + ".join(f"{entry[f'object{slot}']} ({entry.get(f'kind{slot}', 'object')})"
                             for slot in range(1, slots_of(entry) + 1))


class Generator:
    """Rounds of proposals for one generated source, deduplicated against the whole build."""

    def __init__(self, ctx: BuildContext, source: GeneratedConcepts, taken: list[Candidate]):
        self.ctx = ctx
        self.source = source
        self.pool = shipped_pool(ctx, source)
        self.keys = {c.key for _, c in taken if isinstance(c, ConceptRecord)}
        self.signatures = {concept_signature(*c.objects)
                           for _, c in taken if isinstance(c, ConceptRecord)}
        self.count = ctx.config.images_per_sample

    def sub_categories(self) -> list[str]:
        """The sub-categories to generate for: the source's, else the concepts config's, else the whole
        taxonomy; names are made canonical where the taxonomy knows them."""
        named = self.source.sub_categories or self.ctx.config.concepts.sub_categories
        if not named:
            return list(self.ctx.taxonomy.sub_category_names)
        return [self.ctx.taxonomy.canonical(name) or name for name in named]

    async def all(self) -> list[Candidate]:
        """Every candidate of every sub-category, in sub-category order (the sub-categories run
        concurrently)."""
        groups = await asyncio.gather(*(self.one_sub_category(sub) for sub in self.sub_categories()))
        return [candidate for group in groups for candidate in group]

    async def one_sub_category(self, sub_category: str, wanted: int | None = None,
                               label: str = "", proposed: list[str] | None = None
                               ) -> list[Candidate]:
        """``wanted`` new pairs (default: the source's ``per_sub_category``). A top-up round
        passes its own ``label`` for the item ids (``generated:<sub>:<label><n>``) and the
        pairs proposed in earlier rounds, which the model is told are taken."""
        source, ctx = self.source, self.ctx
        wanted = source.per_sub_category if wanted is None else wanted
        described = ctx.taxonomy.get(sub_category)
        examples = self.pool.get(sub_category, [])
        proposed = list(proposed or [])
        candidates: list[Candidate] = []
        accepted = 0
        rounds = 2 * math.ceil(wanted / source.per_request)
        slug = sub_category.casefold().replace(" ", "_")
        for round_number in range(1, rounds + 1):
            if accepted >= wanted:
                break
            count = min(source.per_request, wanted - accepted)
            facts = {"category": described.category, "sub_category": sub_category,
                     "description": described.description, "count": count,
                     "round": round_number, "kinds": kinds_text(ctx.kinds),
                     "examples": "\n".join(pair_line(e) for e in examples[:source.examples])
                     or "(none)",
                     "examples_heading": examples_heading(examples[:source.examples], self.count),
                     "taken": "\n".join(proposed) or "(none yet)",
                     "pool": examples, "seed": ctx.config.seed,
                     "images_per_sample": self.count, **concept_wording(self.count)}
            where = f"generated:{slug}:{label}{round_number}"
            result = await ctx.client.structured(model_request(
                ctx, GENERATE, stage=STAGE, item_id=where, values=facts,
                sub_category=sub_category))
            if not result.ok:
                candidates.append((where, reject(where, result.reason or RejectReason.invalid_output,
                                                 result.detail, sub_category)))
                continue
            # ProposedPairs is built by create_model, so mypy sees only BaseModel.
            for index, pair in enumerate(cast(Any, result.value).pairs, start=1):
                entry = {**pair.model_dump(), "sub_category": sub_category}
                proposed.append(pair_line(entry))
                candidate = self.judge_proposal(entry, f"{where}.{index}")
                accepted += isinstance(candidate, ConceptRecord)
                candidates.append((f"{where}.{index}", candidate))
        return candidates

    def judge_proposal(self, entry: dict[str, Any], where: str) -> ConceptRecord | RejectRecord:
        """Accept one proposed entry as a concept, or reject it: vague or repeated objects, a rule of
        ``concept_from_entry``, or a duplicate of a pair (or head-noun signature) already taken in this
        build. Accepted pairs are remembered."""
        problem = object_problem(*(entry[f"object{slot}"] for slot in range(1, self.count + 1)))
        if problem:
            return reject(where, problem.reason, problem.detail, entry["sub_category"])
        concept = concept_from_entry(entry, where, "generated", self.ctx.taxonomy,
                                     self.ctx.config.seed, self.ctx.kinds, self.count)
        if isinstance(concept, RejectRecord):
            return concept
        signature = concept_signature(*concept.objects)
        if concept.key in self.keys or signature in self.signatures:
            return reject(where, RejectReason.duplicate_concept,
                          f"{' + '.join(map(repr, concept.objects))} repeats an earlier concept "
                          f"({signature})", concept.sub_category)
        self.keys.add(concept.key)
        self.signatures.add(signature)
        return concept
