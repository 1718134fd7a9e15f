"""Beyond MIS: benign twins against over-refusal (issue #16 part 1, ``twins:``).

MIS trains refusals on harmful combinations only, and its own ablation shows what that costs
(MIS_NOTES.md §4.3). For ``twins.ratio`` of the judged samples (a seeded choice), this stage
makes a matched harmless counterpart, HoliSafe's SᵢSₜ→S cell:

- ``swap_image`` (a test-side source, whose question is neutral): the text model names a
  same-kind look-alike for the harmful object (or the second one) that makes the pair harmless
  (``twin_swap.md``); its image comes from the build's image source; the question is kept.
- ``benign_text`` (a source whose images are both harmless): the text model writes an ordinary
  question about the same two images (``twin_text.md``).

Then the vision model answers the twin helpfully (``twin_label.md``). An answer that refuses or
lectures is sent back once, then rejected as ``over_refusal``. Input: judgements (and labels);
output: ``twins.jsonl`` (TwinRecord ``<sample>~t``). The splits keep a twin on its source's side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from mis_data.models.base import ChatMessage, ImagePart, Problem, StructuredRequest, TextPart
from mis_data.records import (
    ORDINALS,
    REFUSAL_OPENER,
    ImageRef,
    RejectReason,
    Step,
    TwinRecord,
    seeded_rank,
)
from mis_data.stages.base import Rejection, Stage, WorkItem
from mis_data.stages.images import make_object_image
from mis_data.stages.labels import majority_flags, word_count
from mis_data.view import Joined
from mis_data.wording import image_facts, ordinal_image, quoted

TWIN_SUFFIX = "~t"
REFUSING = re.compile(r"\b(I can(?:no|')t (?:help|assist)|I(?: a|')m (?:not able|unable) to help|"
                      r"I won't|I will not help)\b", re.IGNORECASE)
WARNING_WORDS = re.compile(r"\b(harmful|illegal|unsafe|dangerous|inappropriate|unethical|"
                           r"against the law|seek professional help)\b", re.IGNORECASE)


class SwapReply(BaseModel):
    object: str = Field(min_length=2, max_length=80)
    reason: str


class BenignQuestion(BaseModel):
    question: str = Field(min_length=10, max_length=400)
    reason: str


class TwinAnswer(BaseModel):
    answer: str


def over_refusal(answer: str, min_words: int, max_words: int) -> Problem | None:
    """A twin's answer must help: no refusal, no apology opener, at most one warning word."""
    text = answer.strip()
    if REFUSAL_OPENER.match(text) or REFUSING.search(text):
        return Problem(RejectReason.over_refusal,
                       "the request is harmless: answer it without refusing or apologizing")
    if len(WARNING_WORDS.findall(text)) > 1:
        return Problem(RejectReason.over_refusal,
                       "the request is harmless: answer it without safety warnings or lectures")
    words = word_count(text)
    if not min_words <= words <= max_words:
        reason = RejectReason.too_short if words < min_words else RejectReason.too_long
        return Problem(reason, f"the answer has {words} words; write {min_words} to {max_words}")
    return None


def twin_kind(sample: Joined, kinds: list[str], seed: int) -> str | None:
    """Which twin this sample can have, if any: a swap for a test-side source with at most one
    harmful image, benign text for a source whose images are all harmless."""
    assert sample.judgement is not None
    flags = majority_flags(sample.judgement)
    allowed = [kind for kind in kinds
               if (kind == "swap_image" and sample.judgement.route in ("easy", "hard")
                   and sum(flags) <= 1)
               or (kind == "benign_text" and not any(flags))]
    if not allowed:
        return None
    return allowed[int(seeded_rank(seed, "twin-kind", sample.id), 16) % len(allowed)]


class TwinStage(Stage):
    name = Step.twins.value

    def inputs(self) -> Sequence[WorkItem]:
        settings = self.ctx.config.twins
        if settings is None:
            return []
        seed, items = self.ctx.config.seed, []
        for sample in self.ctx.view.samples(Step.judgements):
            judgement = sample.judgement
            if judgement is None or judgement.route not in ("train", "easy", "hard"):
                continue
            if judgement.route == "train" and sample.label is None:
                continue
            if int(seeded_rank(seed, "twin", sample.id), 16) / 16 ** 64 >= settings.ratio:
                continue
            kind = twin_kind(sample, settings.kinds, seed)
            if kind is not None:
                items.append(WorkItem(sample.id + TWIN_SUFFIX, judgement.sub_category,
                                      (sample, kind)))
        return items

    def concurrency(self) -> int:
        return self.ctx.config.models.vision.capacity

    def facts(self, sample: Joined) -> dict[str, Any]:
        concept, settings = sample.concept, self.ctx.config.labels
        assert sample.instruction is not None and sample.judgement is not None
        return {"question": sample.instruction.question,
                **image_facts(concept.objects, concept.kinds),
                "refs": quoted([ordinal_image(slot) for slot in range(1, concept.image_count + 1)]),
                "other_images": "the other image" if concept.image_count == 2 else "the other images",
                "sub_category": sample.judgement.sub_category, "sample_id": sample.id,
                "seed": self.ctx.config.seed, "min_words": min(60, settings.min_words),
                "max_words": settings.max_words}

    async def process(self, item: WorkItem) -> Sequence[TwinRecord] | Rejection:
        sample, kind = item.payload
        assert sample.pair is not None and sample.judgement is not None
        facts, hashes = self.facts(sample), {}
        images = list(sample.pair.images)
        objects = list(sample.concept.objects)
        swapped, reason = None, ""
        if kind == "swap_image":
            flags = majority_flags(sample.judgement)
            # the one harmful image, or with none the last one (the target or the setting)
            swapped = next((slot for slot, flag in enumerate(flags, start=1) if flag),
                           len(flags))
            made = await self.swap(item, facts, swapped, hashes)
            if isinstance(made, Rejection):
                return made
            objects[swapped - 1], images[swapped - 1], reason = made
            question = facts["question"]
        else:
            asked = await self.benign_question(item, facts, hashes)
            if isinstance(asked, Rejection):
                return asked
            question, reason = asked
        kinds = sample.concept.kinds
        answer = await self.answer(item, {**facts, **image_facts(objects, kinds),
                                          "question": question}, images, hashes)
        if isinstance(answer, Rejection):
            return answer
        text, model = answer
        slots = {f"{name}{slot}": value for slot, (obj, image)
                 in enumerate(zip(objects, images, strict=True), start=1)
                 for name, value in (("object", obj), ("image", image))}
        return [TwinRecord(id=item.id, twin_of=sample.id, kind=kind, question=question,
                           swapped=swapped, reason=reason, answer=text, model=model,
                           prompt_sha256=hashes, **slots)]

    async def swap(self, item: WorkItem, facts: dict[str, Any], slot: int,
                   hashes: dict[str, str]) -> tuple[str, ImageRef, str] | Rejection:
        old = facts[f"object{slot}"]
        kind = facts[f"kind{slot}"]
        prompt = self.ctx.prompts.get("twin_swap.md")
        hashes["twin_swap"] = prompt.sha256
        text = prompt.render(**facts, ordinal=ORDINALS[slot - 1], replaced=old,
                             replaced_kind=kind)

        def check(reply: BaseModel) -> Problem | None:
            words = len(reply.object.split())
            if reply.object.strip().casefold() == old.casefold() or not 1 <= words <= 6:
                return Problem(RejectReason.invalid_output,
                               "name a different, harmless object of 1 to 6 words")
            return None

        result = await self.ctx.client.structured(StructuredRequest(
            task="twin_swap", role="text", item_id=item.id, stage=self.name,
            messages=[ChatMessage.text("user", text)], response_model=SwapReply,
            facts={**facts, "slot": slot}, check=check, sub_category=item.sub_category))
        if not result.ok:
            return Rejection.from_result(result, "twin object")
        new = result.value.object.strip()
        stored = await make_object_image(self.ctx, new, kind, f"{item.id}.{slot}", self.name)
        if isinstance(stored, Rejection):
            return stored
        return new, stored, result.value.reason

    async def benign_question(self, item: WorkItem, facts: dict[str, Any],
                              hashes: dict[str, str]) -> tuple[str, str] | Rejection:
        prompt = self.ctx.prompts.get("twin_text.md")
        hashes["twin_text"] = prompt.sha256

        refs = [f"{ORDINALS[slot]} image" for slot in range(len(facts["objects"].splitlines()))]

        def check(reply: BaseModel) -> Problem | None:
            lowered = reply.question.casefold()
            if any(ref not in lowered for ref in refs):
                return Problem(RejectReason.missing_image_ref,
                               f"refer to {quoted(['the ' + ref for ref in refs])}")
            return None

        result = await self.ctx.client.structured(StructuredRequest(
            task="twin_text", role="text", item_id=item.id, stage=self.name,
            messages=[ChatMessage.text("user", prompt.render(**facts))],
            response_model=BenignQuestion, facts=facts, check=check,
            sub_category=item.sub_category))
        if not result.ok:
            return Rejection.from_result(result, "twin question")
        return result.value.question.strip(), result.value.reason

    async def answer(self, item: WorkItem, facts: dict[str, Any], images: list[ImageRef],
                     hashes: dict[str, str]) -> tuple[str, str] | Rejection:
        prompt = self.ctx.prompts.get("twin_label.md")
        hashes["twin_label"] = prompt.sha256
        parts = (*(ImagePart(image.sha256) for image in images), TextPart(prompt.render(**facts)))

        def check(reply: BaseModel) -> Problem | None:
            return over_refusal(reply.answer, facts["min_words"], facts["max_words"])

        result = await self.ctx.client.structured(StructuredRequest(
            task="twin_label", role="vision", item_id=item.id, stage=self.name,
            messages=[ChatMessage("user", parts)], response_model=TwinAnswer, facts=facts,
            check=check, sub_category=item.sub_category))
        if not result.ok:
            return Rejection.from_result(result, "twin answer")
        return result.value.answer.strip(), result.model
