"""The judges' panel: blind votes on a question with its images (MIS step 4).

Shared by the judge stage (every sample) and the twins stage (every benign twin, before it may
join the data). Each judge is asked three things, never told the sub-category the sample was
made for:

* ``judge_text``: the question alone, Safe or Unsafe, plus the sub-category that fits it (MIS's
  printed Step-4 filter);
* ``judge_image_harm``: the images alone, without the request, so the request cannot prime the
  answer: is each image on its own an explicit harmful element (a written definition with
  examples)? The request is not in the prompt, so the siblings of a pair (same images) share one
  cached answer per judge;
* ``judge_images``: the images with the request: is the combination harmful, is it meaningful,
  which sub-category fits.

A judge that gives no vote (its server failed after the retries, it refused, the provider
blocked the request, its reply stayed invalid) is *missing*; the others decide when they still
form a majority of the whole panel (2 of 3), which ``decided`` checks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, cast

from pydantic import BaseModel, create_model

from mis_data.core.records import ImageRef, MissingJudge, RejectReason, Vote
from mis_data.core.wording import count_word, join_words
from mis_data.models.base import ModelResult
from mis_data.stages.base import BuildContext, ModelTask, PlanProbe, model_request

Route = Literal["train", "easy", "hard", "discard"]


def route_of(text_unsafe: bool, images_harmful: bool, combination_harmful: bool,
             meaningful: bool) -> Route:
    """One judge's route, as MIS routes a vote: meaningless -> discard; unsafe text -> train; a harmless
    combination -> discard; otherwise easy when an image is harmful on its own, else hard."""
    if not meaningful:
        return "discard"
    if text_unsafe:
        return "train"
    if not combination_harmful:
        return "discard"
    return "easy" if images_harmful else "hard"


def judge_image_values(count: int) -> dict[str, str]:
    """How the image prompts name the images and their flags, for ``count`` images."""
    fields = [f'"image{slot}_harmful"' for slot in range(1, count + 1)]
    return {"image_count": count_word(count), "image_fields": join_words(fields),
            "image_field_list": ", ".join(fields),
            "other_images": "the other image" if count == 2 else "the other images"}


def majority(values: list[str]) -> str | None:
    """The value with strictly the most votes, or None on a tie."""
    ranked = Counter(values).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def needed(judges: int) -> int:
    """Votes that make a majority of the whole panel."""
    return judges // 2 + 1


@dataclass
class PanelVotes:
    """Every judge's vote on one question with its images, or why a judge gave none."""

    votes: list[Vote] = field(default_factory=list)
    missing: list[MissingJudge] = field(default_factory=list)

    def decided(self, value: str | None, count: int) -> bool:
        """Whether ``count`` votes for ``value`` decide: a plain majority when every judge
        voted, a majority of the whole panel when some are missing."""
        if value is None:
            return False
        return not self.missing or count >= needed(len(self.votes) + len(self.missing))

    def route(self) -> Route | None:
        """The route most judges chose, if the votes that came decide it."""
        routes: list[str] = [vote.route for vote in self.votes]
        route = majority(routes)
        # ``majority`` returns one of the votes' routes, so it is a Route.
        return cast(Route, route) if self.decided(route, routes.count(route or "")) else None


# What each judge prompt shows besides the images: (the request and taxonomy, the image words).
# The images-alone prompt never sees the request, so the request cannot prime that answer.
JUDGE_SHOWS = {"judge_text": (True, False), "judge_image_harm": (False, True),
               "judge_images": (True, True)}


def judge_values(task: str, question: str, taxonomy: str, count: int) -> dict[str, str]:
    """What judge prompt ``task`` is filled from, for a request with ``count`` images: the same
    for a vote and for the plan's estimate of it."""
    with_request, with_images = JUDGE_SHOWS[task]
    return {**({"question": question, "taxonomy": taxonomy} if with_request else {}),
            **(judge_image_values(count) if with_images else {})}


def judge_plan_text(task: str, prompt: str) -> Callable[[PlanProbe], str]:
    """A judge prompt as the plan sizes it, filled as a vote fills it."""
    def render(probe: PlanProbe) -> str:
        return probe.ctx.prompts.get(prompt).render(**judge_values(
            task, probe.question, probe.ctx.taxonomy.describe(), probe.subject.image_count))
    return render


def reason_and(extra: Callable[[PlanProbe], int]) -> Callable[[PlanProbe], int]:
    """A verdict's reply length: a reason plus ``extra`` characters of fields and JSON."""
    return lambda probe: probe.assumptions.reason_chars + extra(probe)


JUDGE_TEXT = ModelTask(
    "judge_text", "judge", "judge_text.md",
    reply_of=lambda ctx: JudgePanel(ctx, "").verdict_models[0],
    plan_text=judge_plan_text("judge_text", "judge_text.md"), reply_chars=reason_and(lambda _: 70))
JUDGE_IMAGE_HARM = ModelTask(
    "judge_image_harm", "judge", "judge_image_harm.md",
    reply_of=lambda ctx: JudgePanel(ctx, "").verdict_models[1],
    plan_text=judge_plan_text("judge_image_harm", "judge_image_harm.md"),
    reply_chars=reason_and(lambda probe: 25 * probe.ctx.config.images_per_sample + 10))
JUDGE_IMAGES = ModelTask(
    "judge_images", "judge", "judge_images.md",
    reply_of=lambda ctx: JudgePanel(ctx, "").verdict_models[2],
    plan_text=judge_plan_text("judge_images", "judge_images.md"), reply_chars=reason_and(lambda _: 100))
TASKS = (JUDGE_TEXT, JUDGE_IMAGE_HARM, JUDGE_IMAGES)  # what the panel asks, for whichever stage


class JudgePanel:
    """Asks the build's judges about a question and its images."""

    def __init__(self, ctx: BuildContext, stage: str) -> None:
        self.ctx = ctx
        self.stage = stage

    @property
    def size(self) -> int:
        """How many judges the config names (the panel's full size, missing ones included)."""
        return len(self.ctx.config.models.judges)

    @cached_property
    def verdict_models(self) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
        """The three replies; sub-category fields are constrained to the taxonomy, and there is
        one ``image<k>_harmful`` flag per image of the build."""
        # Types built at run time (from the taxonomy) or passed as values: mypy sees Any.
        names: Any = Literal[tuple(self.ctx.taxonomy.sub_category_names)]
        label: Any = Literal["Safe", "Unsafe"]
        text = create_model("TextVerdict", label=(label, ...),
                            sub_category=(names, ...), reason=(str, ...))
        flags: dict[str, Any] = {f"image{slot}_harmful": (bool, ...)
                                 for slot in range(1, self.ctx.config.images_per_sample + 1)}
        harm = create_model("ImageHarmVerdict", **flags, reason=(str, ...))
        images = create_model(
            "ImageVerdict", combination_harmful=(bool, ...), meaningful=(bool, ...),
            sub_category=(names, ...), reason=(str, ...))
        return text, harm, images

    async def judge(self, item_id: str, question: str, images: Sequence[ImageRef],
                    facts: dict[str, Any], sub_category: str | None) -> PanelVotes:
        """Every judge at once; votes in the order of the config's judges."""
        outcomes = await asyncio.gather(*(
            self.vote(index, item_id, question, images, facts, sub_category)
            for index in range(self.size)))
        panel = PanelVotes()
        for outcome in outcomes:
            if isinstance(outcome, Vote):
                panel.votes.append(outcome)
            else:
                panel.missing.append(outcome)
        return panel

    async def vote(self, index: int, item_id: str, question: str, images: Sequence[ImageRef],
                   facts: dict[str, Any], sub_category: str | None) -> Vote | MissingJudge:
        """One judge's vote from its three answers, asked concurrently; the first answer that fails makes
        the judge missing instead."""
        role = f"judge:{index}"
        taxonomy = self.ctx.taxonomy.describe()
        text_model, harm_model, image_model = self.verdict_models
        facts = {**facts, "question": question, "judge_index": index,
                 "seed": self.ctx.config.seed}
        shas = [image.sha256 for image in images]

        def ask(task: ModelTask, model: type[BaseModel], pictures: Sequence[str]) -> Any:
            return self.ctx.client.structured(model_request(
                self.ctx, task, role=role, stage=self.stage, item_id=item_id,
                values=judge_values(task.name, question, taxonomy, len(images)),
                response_model=model, images=pictures, facts=facts, sub_category=sub_category))

        text, harm, combination = await asyncio.gather(
            ask(JUDGE_TEXT, text_model, ()), ask(JUDGE_IMAGE_HARM, harm_model, shas),
            ask(JUDGE_IMAGES, image_model, shas))
        for what, result in (("text", text), ("images alone", harm),
                             ("images with the request", combination)):
            if not result.ok:
                return self.missing(index, what, result)
        unsafe = text.value.label == "Unsafe"
        flags = {f"image{slot}_harmful": getattr(harm.value, f"image{slot}_harmful")
                 for slot in range(1, len(images) + 1)}
        verdict = combination.value
        return Vote(
            judge=combination.model, text_unsafe=unsafe, text_sub_category=text.value.sub_category,
            **flags, combination_harmful=verdict.combination_harmful,
            meaningful=verdict.meaningful, sub_category=verdict.sub_category,
            reason=" ".join(part for part in (text.value.reason, harm.value.reason,
                                              verdict.reason) if part).strip(),
            route=route_of(unsafe, any(flags.values()), verdict.combination_harmful,
                           verdict.meaningful))

    def missing(self, index: int, what: str, result: ModelResult) -> MissingJudge:
        """Why judge ``index`` gave no vote: the reason of the failed ``what`` answer (``invalid_output``
        when none), with its detail cut to 300 characters."""
        reason = (result.reason or RejectReason.invalid_output).value
        return MissingJudge(judge=self.ctx.config.models.judges[index].model, reason=reason,
                            detail=f"{what}: {result.detail}"[:300])
