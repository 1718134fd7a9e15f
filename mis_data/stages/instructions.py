"""Step 2: a neutral multi-image instruction per pair: generate, refine, detoxify.

Input: ``pairs.jsonl`` (with the concept of each pair). Output: ``instructions.jsonl``
(InstructionRecord). Drops, each checked on the final instruction and sent back to the model
once before the item is rejected: ``missing_image_ref`` (an image is not referred to),
``object_leak`` (an object is named), ``not_detoxified`` (a giveaway phrase is left),
``too_short`` / ``too_long``, ``template_token``; plus the model outcomes ``refused``,
``invalid_output`` and ``api_error``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property

from pydantic import BaseModel

from mis_data.config import read_yaml
from mis_data.models.base import ChatMessage, Problem, StructuredRequest
from mis_data.records import (
    ConceptRecord,
    InstructionRecord,
    RejectReason,
    Step,
    find_template_token,
    normalize_object,
)
from mis_data.stages.base import Rejection, Stage, WorkItem

IMAGE_REFS = {
    "ordinal": ("the first image", "the second image"),
    "index": ("Image-1", "Image-2"),
}

# Property words that say what kind of thing is in an image without naming it (MIS step 2).
GENERIC_WORDS = {
    "object", "tool", "device", "substance", "place", "vehicle", "document", "person", "animal",
    "symbol", "text", "clothing", "container", "structure", "scene", "item", "thing", "image",
    "location", "area", "room", "material", "equipment", "people", "situation", "event",
}
PREPOSITIONS = {"of", "with", "in", "on", "at", "for", "from", "near", "under", "behind"}


class Question(BaseModel):
    question: str


class DetoxifiedQuestion(BaseModel):
    explanation: str
    question: str


def head_nouns(phrase: str) -> set[str]:
    """Words that would name an object: the last word before a preposition, and the last word."""
    words = normalize_object(phrase).split()
    heads = {words[-1]} if words else set()
    for index, word in enumerate(words):
        if word in PREPOSITIONS and index > 0:
            heads.add(words[index - 1])
    return {word for word in heads if len(word) >= 3 and word not in GENERIC_WORDS}


def object_leak(question: str, obj: str) -> str | None:
    """The word of ``obj`` that ``question`` names, if any (case, article and plural blind)."""
    normalized = f" {normalize_object(question)} "
    full = normalize_object(obj)
    if full and f" {full} " in normalized:
        return obj
    for word in sorted(head_nouns(obj)):
        if f" {word} " in normalized:
            return word
    return None


class InstructionChecker:
    """The stage's filters, applied to the final instruction."""

    def __init__(self, refs: tuple[str, str], giveaways: list[str], min_chars: int,
                 max_chars: int) -> None:
        self.refs = refs
        self.giveaways = [phrase.casefold() for phrase in giveaways]
        self.min_chars = min_chars
        self.max_chars = max_chars

    def problem(self, question: str, concept: ConceptRecord) -> Problem | None:
        text = question.strip()
        token = find_template_token(text)
        if token:
            return Problem(RejectReason.template_token,
                           f"the question contains the template token {token!r}; remove it")
        lowered = text.casefold()
        missing = [ref for ref in self.refs if ref.casefold() not in lowered]
        if missing:
            return Problem(RejectReason.missing_image_ref,
                           f"the question must refer to {' and '.join(repr(r) for r in missing)}")
        for obj in (concept.object1, concept.object2):
            leaked = object_leak(text, obj)
            if leaked:
                return Problem(RejectReason.object_leak,
                               f"the question names the object ({leaked!r}); refer to it only "
                               "through its image")
        for phrase in self.giveaways:
            if re.search(rf"\b{re.escape(phrase)}\b", lowered):
                return Problem(RejectReason.not_detoxified,
                               f"the question still contains the giveaway phrase {phrase!r}")
        if len(text) < self.min_chars:
            return Problem(RejectReason.too_short,
                           f"the question has {len(text)} characters; write at least "
                           f"{self.min_chars}")
        if len(text) > self.max_chars:
            return Problem(RejectReason.too_long,
                           f"the question has {len(text)} characters; keep it under "
                           f"{self.max_chars}")
        return None


class InstructionStage(Stage):
    name = Step.instructions.value

    @cached_property
    def refs(self) -> tuple[str, str]:
        return IMAGE_REFS[self.ctx.config.instructions.image_ref_style]

    @cached_property
    def checker(self) -> InstructionChecker:
        settings = self.ctx.config.instructions
        data = read_yaml(settings.giveaway_phrases) or {}
        return InstructionChecker(self.refs, list(data.get("phrases", [])),
                                  settings.min_chars, settings.max_chars)

    def inputs(self) -> Sequence[WorkItem]:
        view = self.ctx.view
        return [WorkItem(pair.id, view.concepts[pair.id].sub_category, (view.concepts[pair.id], pair))
                for pair in view.pairs.values()]

    def concurrency(self) -> int:
        return self.ctx.config.models.text.concurrency

    def _request(self, task: str, prompt_name: str, item: WorkItem, facts: dict,
                 response_model: type[BaseModel], check=None) -> StructuredRequest:
        text = self.ctx.prompts.get(prompt_name).render(**facts)
        return StructuredRequest(task=task, role="text", item_id=item.id, stage=self.name,
                                 messages=[ChatMessage.text("user", text)],
                                 response_model=response_model, facts=facts, check=check,
                                 sub_category=item.sub_category)

    async def process(self, item: WorkItem) -> Sequence[InstructionRecord] | Rejection:
        concept, _pair = item.payload
        sub = self.ctx.taxonomy.get(concept.sub_category)
        facts = {
            "category": concept.category, "sub_category": concept.sub_category,
            "description": sub.description, "object1": concept.object1,
            "object2": concept.object2, "kind1": concept.kind1, "kind2": concept.kind2,
            "ref1": self.refs[0], "ref2": self.refs[1], "seed": self.ctx.config.seed,
        }
        client = self.ctx.client
        draft = await client.structured(self._request(
            "instruction_generate", "instruction_generate.md", item, facts, Question))
        if not draft.ok:
            return Rejection.from_result(draft, "instruction draft")
        facts["draft"] = draft.value.question
        refined = await client.structured(self._request(
            "instruction_refine", "instruction_refine.md", item, facts, Question))
        if not refined.ok:
            return Rejection.from_result(refined, "instruction refinement")
        facts["question"] = refined.value.question

        def check(reply: BaseModel) -> Problem | None:
            return self.checker.problem(reply.question, concept)

        final = await client.structured(self._request(
            "instruction_detox", "instruction_detox.md", item, facts, DetoxifiedQuestion, check))
        if not final.ok:
            return Rejection.from_result(final, "detoxified instruction")
        prompts = self.ctx.prompts
        return [InstructionRecord(
            id=item.id, question=" ".join(final.value.question.split()),
            draft=draft.value.question, refined=refined.value.question, model=final.model,
            prompt_sha256={name: prompts.get(name).sha256 for name in (
                "instruction_generate.md", "instruction_refine.md", "instruction_detox.md")},
        )]
