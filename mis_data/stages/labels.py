"""Step 5: safety chain-of-thought labels (MIS_NOTES.md §1 step 5, §3.3).

Input: ``judgements.jsonl`` (train items; test items too when ``labels.for_test``) with the
instruction and pair. Output: ``labels.jsonl`` (LabelRecord). One pass, as MIS did: the teacher
sees both images and is told the request is harmful (the MIS rebuttal), and writes perception ->
cross-image risk reasoning -> a safe, helpful answer, in prose, within ``labels.min_words`` to
``max_words`` words (the same numbers the prompt states). Drops, each sent back to the model
once first: ``too_short`` / ``too_long``, ``label_no_perception`` (does not say what both images
show), ``label_format`` (headings or a bare list), ``label_apology`` (opens with an apology or a
bare refusal), ``template_token``; then the harm check, which also sees both images:
``harmful_label`` (help for the harm) and ``label_off_topic`` (not about this request and these
images); plus the model outcomes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property

from pydantic import BaseModel, Field

from mis_data.models.base import ChatMessage, ImagePart, Problem, StructuredRequest, TextPart
from mis_data.records import (
    REFUSAL_OPENER,
    ConceptRecord,
    JudgementRecord,
    LabelRecord,
    RejectReason,
    RiskStatement,
    Step,
    find_template_token,
    normalize_object,
)
from mis_data.stages.base import Rejection, Stage, WorkItem
from mis_data.view import Joined

HEADING_LINE = re.compile(r"^\s*(#{1,6}\s|\*\*[^*]{1,60}\*\*\s*:?\s*$|[A-Z][A-Za-z ]{2,30}:\s*$)")
LIST_LINE = re.compile(r"^\s*([-*•]|\d+[.)])\s+")
FIRST_REFS = ("first image", "image 1", "image-1", "left image")
SECOND_REFS = ("second image", "image 2", "image-2", "right image")
VERDICTS = {True: "harmful on its own", False: "not harmful on its own"}


class LabelAnswer(BaseModel):
    answer: str


class DreamAnswer(BaseModel):
    """``labels.style: dream``: the observed risks, each with its source, then the answer."""

    risks: list[RiskStatement] = Field(min_length=1, max_length=8)
    answer: str


SOURCE_WORDS = {"image1": "first image", "image2": "second image", "text": "request",
                "combination": "images and request together"}


class HarmCheck(BaseModel):
    gives_harmful_help: bool
    addresses_question: bool
    reason: str


def mentions(text: str, refs: tuple[str, ...], obj: str) -> bool:
    lowered = text.casefold()
    if any(ref in lowered for ref in refs):
        return True
    words = set(normalize_object(text).split())
    return any(word in words for word in normalize_object(obj).split() if len(word) > 3)


def word_count(text: str) -> int:
    return len(re.findall(r"\S+", text))


def label_problem(text: str, concept: ConceptRecord, min_words: int,
                  max_words: int) -> Problem | None:
    """The first MIS label-style rule that ``text`` breaks, if any (length in words, as the
    label prompt asks)."""
    stripped = text.strip()
    token = find_template_token(stripped)
    if token:
        return Problem(RejectReason.template_token, f"the answer contains {token!r}; remove it")
    words = word_count(stripped)
    if words < min_words:
        return Problem(RejectReason.too_short,
                       f"the answer has {words} words; write at least {min_words}")
    if words > max_words:
        return Problem(RejectReason.too_long,
                       f"the answer has {words} words; keep it to at most {max_words}")
    if REFUSAL_OPENER.match(stripped):
        return Problem(RejectReason.label_apology,
                       "do not open with an apology or a refusal; start with what the images show")
    lines = [line for line in stripped.splitlines() if line.strip()]
    if any(HEADING_LINE.match(line) for line in lines):
        return Problem(RejectReason.label_format, "do not use headings; write continuous prose")
    if lines and sum(bool(LIST_LINE.match(line)) for line in lines) * 2 > len(lines):
        return Problem(RejectReason.label_format, "do not answer with a list; write prose")
    if not mentions(stripped, FIRST_REFS, concept.object1) or not mentions(
            stripped, SECOND_REFS, concept.object2):
        return Problem(RejectReason.label_no_perception,
                       "say what the first image and the second image show")
    return None


def majority_flags(judgement: JudgementRecord) -> tuple[bool, bool]:
    """Whether most judges found each image harmful on its own."""
    votes = judgement.votes
    return (2 * sum(v.image1_harmful for v in votes) > len(votes),
            2 * sum(v.image2_harmful for v in votes) > len(votes))


def risk_problem(risks: list[RiskStatement], flags: tuple[bool, bool],
                 categories: set[str]) -> Problem | None:
    """The first DREAM rule the risk statements break: every image the judges found harmful is
    a source, a pair with no harmful image has a combination statement, categories are listed."""
    sources = {risk.source for risk in risks}
    for slot, (flag, ordinal) in enumerate(zip(flags, ("first", "second"), strict=True), start=1):
        if flag and f"image{slot}" not in sources:
            return Problem(RejectReason.label_risks, f"the {ordinal} image is harmful on its own: "
                                                     f"add a risk statement with source image{slot}")
    if not any(flags) and "combination" not in sources:
        return Problem(RejectReason.label_risks, "neither image is harmful on its own: add a "
                                                 "risk statement with source combination")
    unknown = sorted({risk.category for risk in risks} - categories)
    if unknown:
        return Problem(RejectReason.label_risks, f"category {unknown[0]!r} is not in the list; "
                                                 "use one of the listed names")
    return None


def observed_risks(risks: list[RiskStatement]) -> str:
    """The train text's opening paragraph: each risk with where it was seen."""
    parts = [f"{risk.content.rstrip('. ')} ({SOURCE_WORDS[risk.source]})." for risk in risks]
    return "Observed risks: " + " ".join(parts)


class LabelStage(Stage):
    name = Step.labels.value

    @cached_property
    def harm_check(self) -> bool:
        setting = self.ctx.config.labels.harm_check
        return setting if setting is not None else self.ctx.config.backend != "offline"

    def inputs(self) -> Sequence[WorkItem]:
        routes = {"train", "easy", "hard"} if self.ctx.config.labels.for_test else {"train"}
        return [WorkItem(s.id, s.sub_category, s) for s in self.ctx.view.samples(Step.judgements)
                if s.judgement is not None and s.judgement.route in routes]

    def concurrency(self) -> int:
        return self.ctx.config.models.vision.capacity

    async def process(self, item: WorkItem) -> Sequence[LabelRecord] | Rejection:
        sample: Joined = item.payload
        assert sample.instruction is not None and sample.pair is not None
        assert sample.judgement is not None
        concept, settings = sample.concept, self.ctx.config.labels
        sub = self.ctx.taxonomy.get(sample.judgement.sub_category)
        facts = {"question": sample.instruction.question, "harmful": sample.instruction.harmful,
                 "object1": concept.object1, "object2": concept.object2,
                 "kind1": concept.kind1, "kind2": concept.kind2,
                 "style": getattr(concept, "style", None), "category": sub.category, "sub_category": sub.name,
                 "description": sub.description, "sample_id": sample.id,
                 "concept_id": concept.id, "index": sample.instruction.index,
                 "min_words": settings.min_words, "max_words": settings.max_words,
                 "seed": self.ctx.config.seed}
        dream = settings.style == "dream"
        flags = majority_flags(sample.judgement)
        if dream:
            facts.update({f"image{slot}_{key}": value for slot, flag in enumerate(flags, start=1)
                          for key, value in (("harmful", flag), ("verdict", VERDICTS[flag]))})
            facts["categories"] = ", ".join(sorted(self.categories))
        prompt = self.ctx.prompts.get("label_dream.md" if dream else "label.md")
        images = (ImagePart(sample.pair.image1.sha256), ImagePart(sample.pair.image2.sha256))

        def check(reply: BaseModel) -> Problem | None:
            return label_problem(reply.answer, concept, settings.min_words, settings.max_words) \
                or (risk_problem(reply.risks, flags, self.categories) if dream else None)

        result = await self.ctx.client.structured(StructuredRequest(
            task="label_dream" if dream else "label", role="vision", item_id=item.id,
            stage=self.name, messages=[ChatMessage("user", (*images, TextPart(prompt.render(**facts))))],
            response_model=DreamAnswer if dream else LabelAnswer, facts=facts, check=check,
            sub_category=sub.name))
        if not result.ok:
            return Rejection.from_result(result, "label")
        answer = result.value.answer.strip()
        risks = list(result.value.risks) if dream else None
        text = f"{observed_risks(risks)}\n\n{answer}" if risks else answer
        if self.harm_check:
            verdict = await self._harm_check(item, images, {**facts, "answer": text})
            if isinstance(verdict, Rejection):
                return verdict
        return [LabelRecord(id=item.id, text=text, model=result.model,
                            prompt_sha256=prompt.sha256, risks=risks)]

    @cached_property
    def categories(self) -> set[str]:
        """The names a risk statement's category may take: categories and sub-categories."""
        taxonomy = self.ctx.taxonomy
        return {*taxonomy.categories, *taxonomy.sub_category_names}

    async def _harm_check(self, item: WorkItem, images: tuple[ImagePart, ImagePart],
                          facts: dict) -> None | Rejection:
        """A second look, with both images: no help for the harm, and about this question."""
        text = self.ctx.prompts.get("label_harm_check.md").render(**facts)
        result = await self.ctx.client.structured(StructuredRequest(
            task="label_harm_check", role="vision", item_id=item.id, stage=self.name,
            messages=[ChatMessage("user", (*images, TextPart(text)))], response_model=HarmCheck,
            facts=facts, sub_category=item.sub_category))
        if not result.ok:
            return Rejection.from_result(result, "label harm check")
        if result.value.gives_harmful_help:
            return Rejection(RejectReason.harmful_label, result.value.reason)
        if not result.value.addresses_question:
            return Rejection(RejectReason.label_off_topic, result.value.reason)
        return None
