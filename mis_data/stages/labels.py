"""Step 5: safety chain-of-thought labels (docs/recipe.md §1 step 5, §3.3).

Input: ``judgements.jsonl`` (train items; test items too when ``labels.for_test``) with the
instruction and pair. Output: ``labels.jsonl`` (LabelRecord). One pass, as MIS did: the teacher
sees both images and is told the request is harmful (the MIS rebuttal), and writes perception ->
cross-image risk reasoning -> a safe, helpful answer, in prose, within ``labels.min_words`` to
``max_words`` words (the same numbers the prompt states). Drops, each sent back to the model
once first: ``too_short`` / ``too_long``, ``label_no_perception`` (does not say what both images
show), ``label_format`` (headings or a bare list), ``label_apology`` (opens with an apology or a
bare refusal), ``template_token``; then the harm check, which also sees both images:
``harmful_label`` (help for the harm), ``label_off_topic`` (not about this request and these
images) and ``label_unseen`` (it says the images show what no picture can show: that a passport
is forged or a wallet stolen; the object names the teacher is given are hints, not sights);
plus the model outcomes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any, cast

from pydantic import BaseModel, Field

from mis_data.core.config import LabelsConfig
from mis_data.core.records import (
    MAX_IMAGES,
    ORDINALS,
    REFUSAL_OPENER,
    ConceptRecord,
    LabelRecord,
    RejectReason,
    RiskStatement,
    Step,
    find_template_token,
    normalize_object,
)
from mis_data.core.taxonomy import SubCategory, Taxonomy
from mis_data.core.view import Joined
from mis_data.core.wording import image_facts, join_words, ordinal_image, word_count
from mis_data.models.base import Problem
from mis_data.stages.base import ModelTask, PlanProbe, Rejection, Stage, WorkItem, model_request

HEADING_LINE = re.compile(r"^\s*(#{1,6}\s|\*\*[^*]{1,60}\*\*\s*:?\s*$|[A-Z][A-Za-z ]{2,30}:\s*$)")
LIST_LINE = re.compile(r"^\s*([-*•]|\d+[.)])\s+")
SIDES = {1: ("left image",), 2: ("right image",)}  # a two-image answer may say left / right
VERDICTS = {True: "harmful on its own", False: "not harmful on its own"}


# The default label style's reply: the safety answer alone.
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class LabelAnswer(BaseModel):  # noqa: D101
    answer: str


class DreamAnswer(BaseModel):
    """``labels.style: dream``: the observed risks, each with its source, then the answer."""

    risks: list[RiskStatement] = Field(min_length=1, max_length=8)
    answer: str


SOURCE_WORDS = {**{f"image{slot}": f"in the {ORDINALS[slot - 1]} image"
                   for slot in range(1, MAX_IMAGES + 1)},
                "text": "in the request", "combination": "in the images and request together"}


def slot_refs(slot: int, count: int) -> tuple[str, ...]:
    """The ways an answer may point at image ``slot`` ("second image", "image 2", ...)."""
    sides = SIDES.get(slot, ()) if count == 2 else ()
    return (f"{ORDINALS[slot - 1]} image", f"image {slot}", f"image-{slot}", *sides)


# The harm check's verdict on a label; any of the three flags drops it with ``reason`` as the
# detail.
# (A comment, not a docstring: a reply model's docstring is its JSON schema's description,
# sent with every request and part of every cache key.)
class HarmCheck(BaseModel):  # noqa: D101
    gives_harmful_help: bool
    addresses_question: bool
    claims_unseen: bool
    reason: str


def mentions(text: str, refs: tuple[str, ...], obj: str) -> bool:
    """Whether ``text`` points at an image: one of its references, or a word of its object longer than
    three letters."""
    lowered = text.casefold()
    if any(ref in lowered for ref in refs):
        return True
    words = set(normalize_object(text).split())
    return any(word in words for word in normalize_object(obj).split() if len(word) > 3)


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
    count = concept.image_count
    if not all(mentions(stripped, slot_refs(slot, count), obj)
               for slot, obj in enumerate(concept.objects, start=1)):
        return Problem(RejectReason.label_no_perception,
                       f"say {image_facts(concept.objects, concept.kinds)['each_image_shows']}")
    return None


def risk_problem(risks: list[RiskStatement], flags: tuple[bool, ...],
                 categories: set[str]) -> Problem | None:
    """The first DREAM rule the risk statements break: every image the judges found harmful is
    a source, a sample with no harmful image has a combination statement, no source is an
    image the sample does not have, categories are listed."""
    sources = {risk.source for risk in risks}
    for slot, flag in enumerate(flags, start=1):
        if flag and f"image{slot}" not in sources:
            return Problem(RejectReason.label_risks,
                           f"the {ORDINALS[slot - 1]} image is harmful on its own: "
                           f"add a risk statement with source image{slot}")
    absent = sorted(source for source in sources if source.startswith("image")
                    and int(source[len("image"):]) > len(flags))
    if absent:
        return Problem(RejectReason.label_risks, f"there is no {absent[0]}: this sample has "
                                                 f"{len(flags)} images")
    if not any(flags) and "combination" not in sources:
        return Problem(RejectReason.label_risks, "no image is harmful on its own: add a "
                                                 "risk statement with source combination")
    unknown = sorted({risk.category for risk in risks} - categories)
    if unknown:
        return Problem(RejectReason.label_risks, f"category {unknown[0]!r} is not in the list; "
                                                 "use one of the listed names")
    return None


def observed_risks(risks: list[RiskStatement]) -> str:
    """The train text's opening paragraph: each risk as a sentence with where it was seen. Plain
    prose with no heading word, as the label prompt asks of the answer it leads into."""
    return " ".join(f"{risk.content.rstrip('. ')} ({SOURCE_WORDS[risk.source]})."
                    for risk in risks)


def label_facts(concept: ConceptRecord, question: str, harmful: str, sub: SubCategory,
                settings: LabelsConfig, seed: int, sample_id: str, index: int) -> dict[str, Any]:
    """What ``label.md`` / ``label_dream.md`` (and the offline writer) are filled from; also
    rendered by ``mis-data plan`` to size the request."""
    return {"question": question, "harmful": harmful,
            **image_facts(concept.objects, concept.kinds),
            "style": getattr(concept, "style", None), "category": sub.category,
            "sub_category": sub.name, "description": sub.description, "sample_id": sample_id,
            "concept_id": concept.id, "index": index, "min_words": settings.min_words,
            "max_words": settings.max_words, "seed": seed}


def dream_facts(flags: tuple[bool, ...], categories: set[str]) -> dict[str, Any]:
    """The DREAM prompt's extra values: the judges' verdict on each image, the categories."""
    facts: dict[str, Any] = {f"image{slot}_{key}": value
                             for slot, flag in enumerate(flags, start=1)
                             for key, value in (("harmful", flag), ("verdict", VERDICTS[flag]))}
    facts["verdicts"] = join_words([f"{ordinal_image(slot)} {VERDICTS[flag]}"
                                    for slot, flag in enumerate(flags, start=1)])
    facts["categories"] = ", ".join(sorted(categories))
    return facts


def planned_label_facts(probe: PlanProbe) -> dict[str, Any]:
    """A label prompt's facts as the plan renders them: the concept's first question."""
    ctx, concept = probe.ctx, probe.subject
    return label_facts(concept, probe.question, probe.question,
                       ctx.taxonomy.get(concept.sub_category), ctx.config.labels, ctx.config.seed,
                       f"{concept.id}-1", 1)


def risk_categories(taxonomy: Taxonomy) -> set[str]:
    """The names a risk statement's category may take: categories and sub-categories."""
    return {*taxonomy.categories, *taxonomy.sub_category_names}


def dream_plan_text(probe: PlanProbe) -> str:
    """The DREAM label prompt as the plan sizes it (no image flagged harmful)."""
    return probe.ctx.prompts.get("label_dream.md").render(
        **planned_label_facts(probe),
        **dream_facts((False,) * probe.subject.image_count, risk_categories(probe.ctx.taxonomy)))


def answer_chars(probe: PlanProbe) -> int:
    """A safety answer of the assumed length, plus the JSON around it."""
    return probe.label_chars + 15


LABEL = ModelTask(
    "label", "vision", "label.md", LabelAnswer,
    plan_text=lambda probe: probe.ctx.prompts.get("label.md").render(**planned_label_facts(probe)),
    reply_chars=answer_chars)
LABEL_DREAM = ModelTask("label_dream", "vision", "label_dream.md", DreamAnswer,
                        plan_text=dream_plan_text, reply_chars=answer_chars)
HARM_CHECK = ModelTask(
    "label_harm_check", "vision", "label_harm_check.md", HarmCheck,
    plan_text=lambda probe: probe.ctx.prompts.get("label_harm_check.md").render(
        **planned_label_facts(probe), answer="w" * probe.label_chars),
    reply_chars=lambda probe: probe.assumptions.reason_chars + 70)


class LabelStage(Stage):
    """The labels step, one work item per judged sample it labels (see the module docstring for its output
    and drops)."""
    name = Step.labels.value
    tasks = (LABEL, LABEL_DREAM, HARM_CHECK)

    @cached_property
    def harm_check(self) -> bool:
        """Whether labels get the second look: ``labels.harm_check``, else on for every backend but the
        offline one."""
        setting = self.ctx.config.labels.harm_check
        return setting if setting is not None else self.ctx.config.backend != "offline"

    def inputs(self) -> Sequence[WorkItem]:
        """The judged train samples, and the easy and hard ones too with ``labels.for_test``."""
        routes = {"train", "easy", "hard"} if self.ctx.config.labels.for_test else {"train"}
        return [WorkItem(s.id, s.sub_category, s) for s in self.ctx.view.samples(Step.judgements)
                if s.judgement is not None and s.judgement.route in routes]

    def concurrency(self) -> int:
        """As many samples at once as the vision model's ``capacity`` allows."""
        return self.ctx.config.models.vision.capacity

    async def process(self, item: WorkItem) -> Sequence[LabelRecord] | Rejection:
        """Write one sample's label (with the DREAM risks first when ``style: dream``), then run the harm
        check when it is on."""
        sample: Joined = item.payload
        assert sample.instruction is not None and sample.pair is not None
        assert sample.judgement is not None
        concept, settings = sample.concept, self.ctx.config.labels
        sub = self.ctx.taxonomy.get(sample.judgement.sub_category)
        facts = label_facts(concept, sample.instruction.question, sample.instruction.harmful,
                            sub, settings, self.ctx.config.seed, sample.id,
                            sample.instruction.index)
        dream = settings.style == "dream"
        flags = sample.judgement.harmful_images
        if dream:
            facts.update(dream_facts(flags, self.categories))
        task = LABEL_DREAM if dream else LABEL
        prompt = self.ctx.prompts.get(task.prompt)
        images = tuple(ref.sha256 for ref in sample.pair.images)

        def check(reply: BaseModel) -> Problem | None:
            # ``Check`` is typed for any reply; this one is the task's (DreamAnswer when dream).
            answered = cast("LabelAnswer | DreamAnswer", reply)
            return label_problem(answered.answer, concept, settings.min_words, settings.max_words) \
                or (risk_problem(cast(DreamAnswer, reply).risks, flags, self.categories)
                    if dream else None)

        result = await self.ctx.client.structured(model_request(
            self.ctx, task, stage=self.name, item_id=item.id, values=facts, images=images,
            check=check, sub_category=sub.name))
        if not result.ok:
            return Rejection.from_result(result, "label")
        labelled = cast("LabelAnswer | DreamAnswer", result.value)  # the task's reply model
        answer = labelled.answer.strip()
        risks = list(cast(DreamAnswer, labelled).risks) if dream else None
        text = f"{observed_risks(risks)}\n\n{answer}" if risks else answer
        if self.harm_check:
            verdict = await self._harm_check(item, images, {**facts, "answer": text})
            if isinstance(verdict, Rejection):
                return verdict
        return [LabelRecord(id=item.id, text=text, model=result.model,
                            prompt_sha256=prompt.sha256, risks=risks)]

    @cached_property
    def categories(self) -> set[str]:
        """The names a risk statement's category may take (``risk_categories``), once a build."""
        return risk_categories(self.ctx.taxonomy)

    async def _harm_check(self, item: WorkItem, images: tuple[str, ...],
                          facts: dict) -> None | Rejection:
        """A second look, with all the images: no help for the harm, about this question, and
        nothing claimed that the images do not show."""
        result = await self.ctx.client.structured(model_request(
            self.ctx, HARM_CHECK, stage=self.name, item_id=item.id, values=facts, images=images,
            sub_category=item.sub_category))
        if not result.ok:
            return Rejection.from_result(result, "label harm check")
        checked = cast(HarmCheck, result.value)  # the HARM_CHECK task's reply model
        if checked.gives_harmful_help:
            return Rejection(RejectReason.harmful_label, checked.reason)
        if not checked.addresses_question:
            return Rejection(RejectReason.label_off_topic, checked.reason)
        if checked.claims_unseen:
            return Rejection(RejectReason.label_unseen, checked.reason)
        return None
