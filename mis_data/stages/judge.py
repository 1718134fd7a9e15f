"""Step 4: routes from blind judges into train / easy / hard (MIS_NOTES.md §1 step 4).

Input: ``instructions.jsonl`` (minus near-duplicates) with each sample's pair. Output:
``judgements.jsonl`` (JudgementRecord with every vote). Drops: ``discarded_by_judge`` (the
majority finds the sample meaningless or harmless), ``judge_tie`` (no majority: the sample goes
to ``review_queue.jsonl`` for a person, not silently to one side), and model failures.

Each judge answers twice, and is never told the sub-category the sample was made for:
* **text** (MIS's printed Step-4 filter): the question alone, Safe or Unsafe, plus the
  sub-category that best fits it;
* **images**: both images with the question: is each image on its own explicitly harmful
  (a written definition with examples), is the combination harmful, is it meaningful, and
  which sub-category fits the question with the images.

One vote routes as MIS does: text unsafe -> train; text safe and an image harmful on its own ->
easy; text safe and both images ordinary -> hard; meaningless or harmless -> discard. The
majority of votes decides; the sub-category is the majority of the image answers (a detoxified
question alone often cannot tell, say, a property crime from a weapon threat).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, create_model

from mis_data.models.base import ChatMessage, ImagePart, StructuredRequest, TextPart
from mis_data.records import JudgementRecord, RejectReason, Step, Vote
from mis_data.stages.base import Outcome, Rejection, SideRecord, Stage, WorkItem
from mis_data.view import Joined
from mis_data.wording import count_word, image_facts, join_words

Route = Literal["train", "easy", "hard", "discard"]


class ReviewItem(BaseModel):
    """A sample the judges split evenly on, kept for a person to decide."""

    id: str
    question: str
    votes: list[Vote]


def route_of(text_unsafe: bool, images_harmful: bool, combination_harmful: bool,
             meaningful: bool) -> Route:
    if not meaningful:
        return "discard"
    if text_unsafe:
        return "train"
    if not combination_harmful:
        return "discard"
    return "easy" if images_harmful else "hard"


def judge_image_values(count: int) -> dict[str, str]:
    """How ``judge_images.md`` names the images and their flags, for ``count`` images."""
    fields = [f'"image{slot}_harmful"' for slot in range(1, count + 1)]
    return {"image_count": count_word(count), "image_fields": join_words(fields),
            "image_field_list": ", ".join(fields),
            "other_images": "the other image" if count == 2 else "the other images"}


def majority(values: list[str]) -> str | None:
    """The value with strictly the most votes, or None on a tie."""
    ranked = Counter(values).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


class JudgeStage(Stage):
    name = Step.judgements.value

    @cached_property
    def verdict_models(self) -> tuple[type[BaseModel], type[BaseModel]]:
        """The two replies, with every sub-category field constrained to the taxonomy and one
        ``image<k>_harmful`` flag per image of the build."""
        names = Literal[tuple(self.ctx.taxonomy.sub_category_names)]  # type: ignore[valid-type]
        text = create_model("TextVerdict", label=(Literal["Safe", "Unsafe"], ...),
                            sub_category=(names, ...), reason=(str, ...))
        flags: dict[str, Any] = {f"image{slot}_harmful": (bool, ...)
                                 for slot in range(1, self.ctx.config.images_per_sample + 1)}
        images = create_model(
            "ImageVerdict", **flags, combination_harmful=(bool, ...), meaningful=(bool, ...),
            sub_category=(names, ...), reason=(str, ...))
        return text, images

    def inputs(self) -> Sequence[WorkItem]:
        view = self.ctx.view
        near_duplicates = view.rejected(Step.dedup)
        return [WorkItem(sample.id, sample.sub_category, sample)
                for sample in view.samples(Step.instructions)
                if sample.pair is not None and sample.id not in near_duplicates]

    def concurrency(self) -> int:
        return max(judge.capacity for judge in self.ctx.config.models.judges)

    async def _vote(self, index: int, item: WorkItem) -> Vote | Rejection:
        sample: Joined = item.payload
        assert sample.instruction is not None and sample.pair is not None
        role, question = f"judge:{index}", sample.instruction.question
        taxonomy = self.ctx.taxonomy.describe()
        # The facts feed only the offline backend; the prompts never name the sub-category.
        concept = sample.concept
        facts = {"question": question, **image_facts(concept.objects, concept.kinds),
                 "sub_category": concept.sub_category, "style": getattr(concept, "style", None),
                 "judge_index": index, "seed": self.ctx.config.seed}
        text_model, image_model = self.verdict_models
        prompts = self.ctx.prompts
        text_result = await self.ctx.client.structured(StructuredRequest(
            task="judge_text", role=role, item_id=item.id, stage=self.name,
            messages=[ChatMessage.text("user", prompts.get("judge_text.md").render(
                question=question, taxonomy=taxonomy))],
            response_model=text_model, facts=facts, sub_category=item.sub_category))
        if not text_result.ok:
            return Rejection.from_result(text_result, f"judge {index} (text)")
        slots = range(1, len(sample.pair.images) + 1)
        image_text = prompts.get("judge_images.md").render(
            question=question, taxonomy=taxonomy, **judge_image_values(len(slots)))
        image_result = await self.ctx.client.structured(StructuredRequest(
            task="judge_images", role=role, item_id=item.id, stage=self.name,
            messages=[ChatMessage("user", (*(ImagePart(ref.sha256) for ref in sample.pair.images),
                                           TextPart(image_text)))],
            response_model=image_model, facts=facts, sub_category=item.sub_category))
        if not image_result.ok:
            return Rejection.from_result(image_result, f"judge {index} (images)")
        text, images = text_result.value, image_result.value
        unsafe = text.label == "Unsafe"
        flags = {f"image{slot}_harmful": getattr(images, f"image{slot}_harmful") for slot in slots}
        return Vote(
            judge=image_result.model, text_unsafe=unsafe, text_sub_category=text.sub_category,
            **flags, combination_harmful=images.combination_harmful, meaningful=images.meaningful,
            sub_category=images.sub_category, reason=f"{text.reason} {images.reason}".strip(),
            route=route_of(unsafe, any(flags.values()), images.combination_harmful,
                           images.meaningful))

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        sample: Joined = item.payload
        assert sample.instruction is not None
        votes: list[Vote] = []
        for index in range(len(self.ctx.config.models.judges)):
            vote = await self._vote(index, item)
            if isinstance(vote, Rejection):
                return vote
            votes.append(vote)
        route = majority([vote.route for vote in votes])
        if route is None:
            return [Rejection(RejectReason.judge_tie,
                              "judges split evenly: " + ", ".join(v.route for v in votes)),
                    SideRecord("review_queue", ReviewItem(
                        id=item.id, question=sample.instruction.question, votes=votes))]
        if route == "discard":
            reasons = "; ".join(vote.reason for vote in votes if vote.route == "discard")
            return Rejection(RejectReason.discarded_by_judge, reasons[:500])
        generated = sample.concept.sub_category
        sub_category = majority([vote.sub_category for vote in votes]) or generated
        return [JudgementRecord(
            id=item.id, route=route, sub_category=sub_category,
            category=self.ctx.taxonomy.category_of(sub_category),
            moved_from=generated if sub_category != generated else None, votes=votes)]
