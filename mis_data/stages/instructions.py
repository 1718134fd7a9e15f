"""Step 2: 2-3 questions per concept pair, made as MIS made them (docs/recipe.md §1 step 2).

Input: ``concepts.jsonl``. Output: ``instructions.jsonl`` (InstructionRecord, one per question,
id ``<pair>-<k>``; each question is a sample of its own). For every pair:

1. **harmful**: the text model writes ``instructions.per_pair`` explicitly harmful questions
   that name both objects (few-shot examples from ``prompts/examples/<category>.yaml``);
2. **modify**, per question: the model drops a question that carries no risk or does not need
   both objects (``no_risk``), and otherwise replaces object 1 by a property phrase pointing at
   the first image and object 2 at the second, keeping the key verbs;
3. **detoxify**, per question: MIS's four rules; a question with no open harm passes unchanged.

The stage's validators run on the final text: ``missing_image_ref``, ``object_leak``,
``not_detoxified`` (a giveaway phrase), ``act_removed`` (the detox put a vague verb such as
"contact" in place of the act the question asks for: MIS's rules soften the wording, never the
act), ``too_short`` / ``too_long``, ``template_token``; each is sent back to the model once
before the question is rejected. Whether a question still reads as unsafe (train) or became
neutral (test) is left to the judges, who see only the final text.

A model that refuses a step is told once why the dataset needs the answer (the prompt file's
``## If the model declines`` section), then the role's fallback models are asked; only then is
the pair (or the question) rejected as ``refused``, or ``blocked`` when the provider's
moderation stopped it. The record keeps which model answered each step (``step_models``) when
they differ. A transient failure (``api_error``) in any call rejects the whole pair for a rerun,
which asks again only what was not answered (every answer is cached).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, cast

from pydantic import BaseModel

from mis_data.core.config import read_yaml
from mis_data.core.ids import parent_id, question_id
from mis_data.core.prompts import PromptLibrary
from mis_data.core.records import (
    MAX_IMAGES,
    RETRYABLE_REASONS,
    ConceptRecord,
    InstructionRecord,
    RejectReason,
    Step,
    find_template_token,
    normalize_object,
)
from mis_data.core.wording import image_facts, join_words, ordinal_image, quoted
from mis_data.models.base import ModelResult, Problem, StructuredRequest
from mis_data.stages.base import ModelTask, Outcome, PlanProbe, Rejection, Stage, WorkItem, model_request

IMAGE_REFS = {
    "ordinal": tuple(ordinal_image(slot) for slot in range(1, MAX_IMAGES + 1)),
    "index": tuple(f"Image-{slot}" for slot in range(1, MAX_IMAGES + 1)),
}
PROMPTS = ("instruction_harmful.md", "instruction_modify.md", "instruction_detox.md")

# Property words that say what kind of thing is in an image without naming it (MIS step 2).
GENERIC_WORDS = {
    "object", "tool", "device", "substance", "place", "vehicle", "document", "person", "animal",
    "symbol", "text", "clothing", "container", "structure", "scene", "item", "thing", "image",
    "location", "area", "room", "material", "equipment", "people", "situation", "event",
    "word", "food", "weapon", "group",
}
PREPOSITIONS = {"of", "with", "in", "on", "at", "for", "from", "near", "under", "behind"}
# Head nouns that are also everyday function words ("spray can" vs "How can I"): only the whole
# object phrase counts as a leak for them.
FUNCTION_WORDS = {"can", "will", "may", "might", "must", "well", "rest", "kind", "close", "lead"}


# One drafted harmful question and the model's reason it carries a risk.
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class HarmfulQuestion(BaseModel):  # noqa: D101
    question: str
    reason: str


# The harmful step's reply: the pair's drafted questions (duplicates and blanks are dropped
# later).
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class HarmfulQuestions(BaseModel):  # noqa: D101
    questions: list[HarmfulQuestion]


# The modify step's reply: ``keep`` False drops the question as ``no_risk`` with ``reason``;
# otherwise ``question`` refers to the objects through their images.
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class ModifiedQuestion(BaseModel):  # noqa: D101
    keep: bool
    reason: str
    question: str


# The detox step's reply: the final question and what was softened.
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class DetoxifiedQuestion(BaseModel):  # noqa: D101
    explanation: str
    question: str


def head_nouns(phrase: str) -> set[str]:
    """Words that would name an object: the last word before a preposition, and the last word."""
    words = normalize_object(phrase).split()
    heads = {words[-1]} if words else set()
    for index, word in enumerate(words):
        if word in PREPOSITIONS and index > 0:
            heads.add(words[index - 1])
    return {word for word in heads
            if len(word) >= 3 and word not in GENERIC_WORDS and word not in FUNCTION_WORDS}


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


def phrase_in(phrase: str, lowered: str) -> bool:
    """Whether ``phrase`` occurs in ``lowered`` as whole words (``lowered`` is already case-folded)."""
    return re.search(rf"\b{re.escape(phrase)}\b", lowered) is not None


class InstructionChecker:
    """The stage's filters. ``references`` applies to a replaced question (refs present, no
    object named); ``problem`` to the final one (also giveaway phrases and length);
    ``act_kept`` compares the final question with the replaced one."""

    def __init__(self, refs: tuple[str, ...], giveaways: list[str], min_chars: int,
                 max_chars: int, vague_acts: list[str] | None = None) -> None:
        self.refs = refs
        self.giveaways = [phrase.casefold() for phrase in giveaways]
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.vague_acts = [phrase.casefold() for phrase in vague_acts or []]

    def act_kept(self, replaced: str, final: str) -> Problem | None:
        """The detox may soften words, not the act: a vague verb ("contact", "visit") that the
        replaced question did not have stands where its act was."""
        before, after = replaced.casefold(), final.casefold()
        vague = [phrase for phrase in self.vague_acts
                 if phrase_in(phrase, after) and not phrase_in(phrase, before)]
        if vague:
            return Problem(RejectReason.act_removed,
                           f"{vague[0]!r} no longer asks for the act of the question "
                           f"({replaced!r}); keep the act, and soften only the words that "
                           "state the harm openly")
        return None

    def references(self, question: str, concept: ConceptRecord) -> Problem | None:
        """The problem of a replaced question: a template token, a missing image reference, or an object
        named outright."""
        text = question.strip()
        token = find_template_token(text)
        if token:
            return Problem(RejectReason.template_token,
                           f"the question contains the template token {token!r}; remove it")
        lowered = text.casefold()
        missing = [ref for ref in self.refs[:concept.image_count] if ref.casefold() not in lowered]
        if missing:
            return Problem(RejectReason.missing_image_ref,
                           f"the question must refer to {' and '.join(repr(r) for r in missing)}")
        for obj in concept.objects:
            leaked = object_leak(text, obj)
            if leaked:
                return Problem(RejectReason.object_leak,
                               f"the question names the object ({leaked!r}); refer to it only "
                               "through its image")
        return None

    def problem(self, question: str, concept: ConceptRecord) -> Problem | None:
        """The problem of a final question: everything ``references`` checks, then giveaway phrases and the
        length bounds."""
        found = self.references(question, concept)
        if found:
            return found
        text = question.strip()
        lowered = text.casefold()
        for phrase in self.giveaways:
            if phrase_in(phrase, lowered):
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


def examples_text(data: Any) -> str:
    """The few-shot examples of one category as prompt lines (two-object examples also teach
    a question over more objects: name every object, ask for one act)."""
    lines = []
    for entry in (data or {}).get("examples", []):
        objects = "; ".join(f"Object {slot}: {entry[f'object{slot}']}"
                            for slot in range(1, MAX_IMAGES + 1) if entry.get(f"object{slot}"))
        lines.append(f'- {objects}\n  "{entry["question"]}"')
    return "\n".join(lines) or "(none)"


def category_slug(category: str) -> str:
    """A category's file name stem in ``prompts/examples/`` (lower case, runs of other characters as
    ``_``)."""
    return re.sub(r"[^a-z0-9]+", "_", category.casefold()).strip("_")


def planned_facts(probe: PlanProbe) -> dict[str, Any]:
    """A concept's prompt facts as the plan renders them: siblings from the planned concepts."""
    stage = probe.memo.get("instructions")
    if stage is None:
        stage = probe.memo["instructions"] = InstructionStage(probe.ctx)
        stage.siblings = siblings_by_sub_category(probe.concepts)
    return stage.facts(probe.subject)


def category_examples(prompts: PromptLibrary, category: str) -> str:
    """The harmful step's few-shot lines for a category (``prompts/examples/<category>.yaml``)."""
    return examples_text(prompts.data(f"examples/{category_slug(category)}.yaml"))


def harmful_plan_text(probe: PlanProbe) -> str:
    """The harmful-questions prompt with the category's examples, as the plan sizes it."""
    return probe.ctx.prompts.get(PROMPTS[0]).render(
        **planned_facts(probe), examples=category_examples(probe.ctx.prompts, probe.subject.category))


def question_chars(probe: PlanProbe, extra: int) -> int:
    """A reply of one question and one reason, plus ``extra`` characters of JSON."""
    return probe.assumptions.reason_chars + probe.assumptions.question_chars + extra


HARMFUL = ModelTask(
    "instruction_harmful", "text", PROMPTS[0], HarmfulQuestions, plan_text=harmful_plan_text,
    reply_chars=lambda probe: probe.ctx.config.instructions.per_pair * question_chars(probe, 40) + 20)
MODIFY = ModelTask(
    "instruction_modify", "text", PROMPTS[1], ModifiedQuestion,
    plan_text=lambda probe: probe.ctx.prompts.get(PROMPTS[1]).render(
        **planned_facts(probe), harmful=probe.question, index=1),
    reply_chars=lambda probe: question_chars(probe, 45))
DETOX = ModelTask(
    "instruction_detox", "text", PROMPTS[2], DetoxifiedQuestion,
    plan_text=lambda probe: probe.ctx.prompts.get(PROMPTS[2]).render(
        **planned_facts(probe), question=probe.question),
    reply_chars=lambda probe: question_chars(probe, 35))


class InstructionStage(Stage):
    """The instructions step, one work item per concept (see the module docstring for its three model
    steps, output and drops)."""
    name = Step.instructions.value
    tasks = (HARMFUL, MODIFY, DETOX)

    @cached_property
    def refs(self) -> tuple[str, ...]:
        """How questions refer to the images (``image_ref_style``), one reference per slot."""
        return IMAGE_REFS[self.ctx.config.instructions.image_ref_style]

    @cached_property
    def checker(self) -> InstructionChecker:
        """The filters, with the giveaway phrases and vague acts read once from their file."""
        settings = self.ctx.config.instructions
        data = read_yaml(settings.giveaway_phrases) or {}
        return InstructionChecker(self.refs, list(data.get("phrases", [])),
                                  settings.min_chars, settings.max_chars,
                                  list(data.get("vague_acts", [])))

    def inputs(self) -> Sequence[WorkItem]:
        """Every concept of the run."""
        return [WorkItem(concept.id, concept.sub_category, concept)
                for concept in self.ctx.view.concepts.values()]

    def item_of(self, record_id: str) -> str:
        """A question ``<pair>-<k>`` (or its reject) belongs to its pair's item."""
        return parent_id(record_id)

    def concurrency(self) -> int:
        """As many pairs at once as the text model's ``capacity`` allows."""
        return self.ctx.config.models.text.capacity

    @cached_property
    def siblings(self) -> dict[str, list[dict[str, Any]]]:
        """The pairs of each sub-category, for the offline backend only (it spreads its kinds of
        wording over them; a real model never sees facts)."""
        return siblings_by_sub_category(self.ctx.view.concepts.values())

    def facts(self, concept: ConceptRecord) -> dict[str, Any]:
        """What every prompt of the stage is filled from (and what the offline backend reads)."""
        sub = self.ctx.taxonomy.get(concept.sub_category)
        refs = self.refs[:concept.image_count]
        facts: dict[str, Any] = {
            "category": concept.category, "sub_category": concept.sub_category,
            "description": sub.description, **image_facts(concept.objects, concept.kinds),
            "seed": self.ctx.config.seed, "concept_id": concept.id,
            "count": self.ctx.config.instructions.per_pair,
            "style": getattr(concept, "style", None),
            "siblings": self.siblings.get(concept.sub_category, []),
        }
        for slot, (kind_name, ref) in enumerate(zip(concept.kinds, refs, strict=True), start=1):
            kind = self.ctx.kinds.get(kind_name) or self.ctx.kinds.get("object")
            facts[f"ref{slot}"] = ref
            facts[f"phrase{slot}"] = kind.reference(ref) if kind else f"the object in {ref}"
            facts[f"neutral{slot}"] = (kind.reference(ref, detoxified=True) if kind
                                       else f"the object in {ref}")
        slots = range(1, concept.image_count + 1)
        facts.update({
            "refs": quoted(refs),
            "neutrals": quoted([facts[f"neutral{slot}"] for slot in slots]),
            "image_roles": join_words([f"{ref} shows Object {slot}"
                                       for slot, ref in zip(slots, refs, strict=True)]),
            "phrase_examples": join_words([f'Object {slot} by a phrase such as '
                                           f'"{facts[f"phrase{slot}"]}"' for slot in slots]),
        })
        return facts

    def request(self, task: ModelTask, item_id: str, sub_category: str, facts: dict[str, Any],
                check: Any = None) -> StructuredRequest:
        """One request of this stage's ``task`` about one pair or question."""
        return model_request(self.ctx, task, stage=self.name, item_id=item_id, values=facts,
                             check=check, sub_category=sub_category)

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        """Draft the pair's harmful questions, then modify and detoxify each concurrently; a transient
        failure of any question rejects the whole pair."""
        concept: ConceptRecord = item.payload
        facts = self.facts(concept)
        count = self.ctx.config.instructions.per_pair

        def enough(reply: BaseModel) -> Problem | None:
            # ``Check`` is typed for any reply; this request's reply model is HarmfulQuestions.
            questions = [q.question.strip() for q in cast(HarmfulQuestions, reply).questions
                         if q.question.strip()]
            if len(set(questions)) < min(2, count):
                return Problem(RejectReason.invalid_output,
                               f"write {count} different questions, not {len(set(questions))}")
            return None

        drafts = await self.ctx.client.structured(self.request(
            HARMFUL, item.id, concept.sub_category,
            {**facts, "examples": category_examples(self.ctx.prompts, concept.category)}, enough))
        if not drafts.ok:
            return Rejection.from_result(drafts, "harmful questions")
        drafted = cast(HarmfulQuestions, drafts.value)  # the HARMFUL task's reply model
        questions = list(dict.fromkeys(q.question.strip() for q in drafted.questions
                                       if q.question.strip()))[:count]
        reasons = {q.question.strip(): q.reason for q in drafted.questions}
        outcomes = await asyncio.gather(*(
            self.one_question(concept, facts, index, harmful, reasons.get(harmful, ""),
                              drafts.model)
            for index, harmful in enumerate(questions, start=1)))
        transient = [o for o in outcomes if isinstance(o, Rejection)
                     and o.reason in RETRYABLE_REASONS]
        if transient:  # all or nothing: a rerun redoes the pair, asking only what is not cached
            return Rejection(transient[0].reason, transient[0].detail)
        return outcomes

    async def one_question(self, concept: ConceptRecord, facts: dict[str, Any], index: int,
                           harmful: str, harmful_reason: str, harmful_model: str) -> Outcome:
        """Modify (filter + replace objects) then detoxify one harmful question."""
        sample = question_id(concept.id, index)
        facts = {**facts, "harmful": harmful, "index": index}
        modified = await self.ctx.client.structured(self.request(
            MODIFY, sample, concept.sub_category, facts,
            lambda reply: None if not reply.keep else self.checker.references(reply.question,
                                                                              concept)))
        if not modified.ok:
            return self.rejection(modified, "modified question", sample)
        modify_reply = cast(ModifiedQuestion, modified.value)  # the MODIFY task's reply model
        if not modify_reply.keep:
            return Rejection(RejectReason.no_risk, modify_reply.reason, id=sample)
        replaced = " ".join(modify_reply.question.split())
        final = await self.ctx.client.structured(self.request(
            DETOX, sample, concept.sub_category, {**facts, "question": replaced},
            lambda reply: self.checker.problem(reply.question, concept)
            or self.checker.act_kept(replaced, reply.question)))
        if not final.ok:
            return self.rejection(final, "detoxified question", sample)
        detox_reply = cast(DetoxifiedQuestion, final.value)  # the DETOX task's reply model
        prompts = self.ctx.prompts
        steps = {"harmful": harmful_model, "modify": modified.model, "detox": final.model}
        return InstructionRecord(
            id=sample, concept_id=concept.id, index=index, harmful=harmful,
            harmful_reason=harmful_reason, replaced=replaced,
            replace_reason=modify_reply.reason, question=" ".join(detox_reply.question.split()),
            detox_reason=detox_reply.explanation, model=final.model,
            prompt_sha256={name: prompts.get(name).sha256 for name in PROMPTS},
            step_models=steps if len(set(steps.values())) > 1 else None)

    @staticmethod
    def rejection(result: ModelResult, what: str, sample: str) -> Rejection:
        """The rejection of one question (not the pair) whose model step failed."""
        return Rejection.from_result(result, what, id=sample)


def siblings_by_sub_category(concepts: Iterable[ConceptRecord]) -> dict[str, list[dict[str, Any]]]:
    """Each sub-category's pairs as the offline backend reads them from the facts."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for concept in concepts:
        grouped.setdefault(concept.sub_category, []).append(
            {"id": concept.id, **image_facts(concept.objects, concept.kinds),
             "style": getattr(concept, "style", None)})
    return grouped
