"""Step 4: routes from blind judges into train / easy / hard (docs/recipe.md §1 step 4).

Input: ``instructions.jsonl`` (minus near-duplicates) with each sample's pair. Output:
``judgements.jsonl`` (JudgementRecord with every vote). Drops: ``discarded_by_judge`` (the
majority finds the sample meaningless or harmless), ``judge_tie`` (no majority: the sample goes
to ``review_queue.jsonl`` for a person, not silently to one side) and ``judge_missing`` (a judge
gave no vote and the others do not form a majority of the panel: the sample waits in the review
queue with the missing judge named, and a rerun asks only that judge again, the others' answers
being cached).

Each judge votes as ``panel.JudgePanel`` asks (the text alone; the images alone; the images
with the request), never told the sub-category the sample was made for. One vote routes as MIS
does: text unsafe -> train; text safe and an image harmful on its own -> easy; text safe and
every image ordinary -> hard; meaningless or harmless -> discard. The majority of votes decides
(when a judge is missing, a majority of the whole panel: 2 of 3); the sub-category is the
majority of the image answers (a detoxified question alone often cannot tell, say, a property
crime from a weapon threat). A sample decided without a judge keeps ``missing`` on its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from mis_data.core.records import JudgementRecord, RejectReason, ReviewItem, Step
from mis_data.core.view import Joined
from mis_data.core.wording import image_facts
from mis_data.stages.base import Outcome, Rejection, SideRecord, Stage, WorkItem
from mis_data.stages.panel import JudgePanel, majority


class JudgeStage(Stage):
    """The judges step, one work item per sample with a pair that dedup kept (see the module docstring for
    its output and drops)."""
    name = Step.judgements.value

    @cached_property
    def panel(self) -> JudgePanel:
        """The build's judges, asked on behalf of this stage."""
        return JudgePanel(self.ctx, self.name)

    def inputs(self) -> Sequence[WorkItem]:
        """Every sample with its instruction and pair, minus the near-duplicates dedup rejected."""
        view = self.ctx.view
        near_duplicates = view.rejected(Step.dedup)
        return [WorkItem(sample.id, sample.sub_category, sample)
                for sample in view.samples(Step.instructions)
                if sample.pair is not None and sample.id not in near_duplicates]

    def concurrency(self) -> int:
        """As many samples at once as the largest judge ``capacity`` (each sample asks every judge)."""
        return max(judge.capacity for judge in self.ctx.config.models.judges)

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        """Ask the panel about one sample and route it; a tie or a missing judge sends it to the review
        queue instead."""
        sample: Joined = item.payload
        assert sample.instruction is not None and sample.pair is not None
        concept, question = sample.concept, sample.instruction.question
        # The facts feed only the offline backend; the prompts never name the sub-category.
        facts = {**image_facts(concept.objects, concept.kinds),
                 "sub_category": concept.sub_category, "style": getattr(concept, "style", None)}
        panel = await self.panel.judge(item.id, question, sample.pair.images, facts,
                                       item.sub_category)
        route = panel.route()
        missing = panel.missing or None
        if route is None:
            waiting = ReviewItem(id=item.id, question=question, votes=panel.votes, missing=missing)
            if panel.missing:
                names = ", ".join(f"{m.judge} ({m.reason})" for m in panel.missing)
                return [Rejection(RejectReason.judge_missing,
                                  f"no majority without {names}: " + ", ".join(
                                      vote.route for vote in panel.votes)),
                        SideRecord("review_queue", waiting)]
            return [Rejection(RejectReason.judge_tie,
                              "judges split evenly: " + ", ".join(v.route for v in panel.votes)),
                    SideRecord("review_queue", waiting)]
        votes = panel.votes
        if route == "discard":
            reasons = "; ".join(vote.reason for vote in votes if vote.route == "discard")
            return Rejection(RejectReason.discarded_by_judge, reasons[:500])
        generated = concept.sub_category
        sub_category = majority([vote.sub_category for vote in votes]) or generated
        return [JudgementRecord(
            id=item.id, route=route, sub_category=sub_category,
            category=self.ctx.taxonomy.category_of(sub_category),
            moved_from=generated if sub_category != generated else None, votes=votes,
            missing=missing)]
