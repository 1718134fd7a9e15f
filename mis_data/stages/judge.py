"""Step 4: multi-expert judging into train / easy / hard (MIS_NOTES.md §1 step 4).

Input: ``instructions.jsonl`` with its pair and concept. Output: ``judgements.jsonl``
(JudgementRecord with every vote). Drops: ``discarded_by_judge`` (the majority finds the sample
meaningless or harmless), ``judge_tie`` (no majority: the sample goes to ``review_queue.jsonl``
for a person, not silently to one side), and model failures.

Each judge reads the instruction alone (is the text itself unsafe?) and then with both images
(are the images harmful alone, is the combination harmful, is it meaningful, which
sub-category). One vote routes: text unsafe -> train; text safe and an image harmful -> easy;
text safe, images harmless alone, combination harmful -> hard; otherwise discard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, create_model

from mis_data.models.base import ChatMessage, ImagePart, StructuredRequest, TextPart
from mis_data.records import JudgementRecord, RejectReason, Step, Vote
from mis_data.stages.base import Outcome, Rejection, SideRecord, Stage, WorkItem


class TextVerdict(BaseModel):
    text_unsafe: bool
    reason: str


class ReviewItem(BaseModel):
    """A sample the judges split evenly on, kept for a person to decide."""

    id: str
    question: str
    votes: list[Vote]


def route_of(text_unsafe: bool, images_harmful: bool, combination_harmful: bool,
             meaningful: bool) -> Literal["train", "easy", "hard", "discard"]:
    if not meaningful:
        return "discard"
    if text_unsafe:
        return "train"
    if not combination_harmful:
        return "discard"
    return "easy" if images_harmful else "hard"


def majority(values: list[str]) -> str | None:
    """The value with strictly the most votes, or None on a tie."""
    ranked = Counter(values).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


class JudgeStage(Stage):
    name = Step.judgements.value

    @cached_property
    def image_verdict_model(self) -> type[BaseModel]:
        """The judge's image verdict, with sub_category constrained to the taxonomy."""
        names = tuple(self.ctx.taxonomy.sub_category_names)
        return create_model(
            "ImageVerdict",
            images_harmful=(bool, ...), combination_harmful=(bool, ...), meaningful=(bool, ...),
            sub_category=(Literal[names], ...), reason=(str, ...),
        )

    def inputs(self) -> Sequence[WorkItem]:
        view = self.ctx.view
        near_duplicates = view.rejected(Step.dedup)
        return [WorkItem(sample.id, sample.sub_category,
                         (sample.concept, sample.pair, sample.instruction))
                for sample in view.samples(Step.instructions) if sample.id not in near_duplicates]

    def concurrency(self) -> int:
        return max(judge.concurrency for judge in self.ctx.config.models.judges)

    async def _vote(self, index: int, item: WorkItem) -> Vote | Rejection:
        concept, pair, instruction = item.payload
        role = f"judge:{index}"
        facts = {"question": instruction.question, "object1": concept.object1,
                 "object2": concept.object2, "sub_category": concept.sub_category,
                 "judge_index": index, "seed": self.ctx.config.seed}
        prompts = self.ctx.prompts
        text_result = await self.ctx.client.structured(StructuredRequest(
            task="judge_text", role=role, item_id=item.id, stage=self.name,
            messages=[ChatMessage.text("user", prompts.get("judge_text.md").render(**facts))],
            response_model=TextVerdict, facts=facts, sub_category=item.sub_category))
        if not text_result.ok:
            return Rejection.from_result(text_result, f"judge {index} (text)")
        image_text = prompts.get("judge_images.md").render(
            question=instruction.question, taxonomy=self.ctx.taxonomy.describe(),
            sub_category=concept.sub_category)
        image_result = await self.ctx.client.structured(StructuredRequest(
            task="judge_images", role=role, item_id=item.id, stage=self.name,
            messages=[ChatMessage("user", (ImagePart(pair.image1.sha256),
                                           ImagePart(pair.image2.sha256), TextPart(image_text)))],
            response_model=self.image_verdict_model, facts=facts,
            sub_category=item.sub_category))
        if not image_result.ok:
            return Rejection.from_result(image_result, f"judge {index} (images)")
        text_verdict, image_verdict = text_result.value, image_result.value
        return Vote(
            judge=image_result.model, text_unsafe=text_verdict.text_unsafe,
            images_harmful=image_verdict.images_harmful,
            combination_harmful=image_verdict.combination_harmful,
            meaningful=image_verdict.meaningful, sub_category=image_verdict.sub_category,
            reason=f"{text_verdict.reason} {image_verdict.reason}".strip(),
            route=route_of(text_verdict.text_unsafe, image_verdict.images_harmful,
                           image_verdict.combination_harmful, image_verdict.meaningful),
        )

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        concept, _pair, instruction = item.payload
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
                    SideRecord("review_queue", ReviewItem(id=item.id, question=instruction.question,
                                                          votes=votes))]
        if route == "discard":
            reasons = "; ".join(vote.reason for vote in votes if vote.route == "discard")
            return Rejection(RejectReason.discarded_by_judge, reasons[:500])
        sub_category = majority([vote.sub_category for vote in votes]) or concept.sub_category
        return [JudgementRecord(
            id=item.id, route=route, sub_category=sub_category,
            category=self.ctx.taxonomy.category_of(sub_category),
            moved_from=concept.sub_category if sub_category != concept.sub_category else None,
            votes=votes,
        )]
