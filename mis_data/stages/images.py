"""Step 3: the images of every concept pair that kept a question (docs/recipe.md §1 step 3).

Input: ``concepts.jsonl`` and ``instructions.jsonl`` (a pair whose questions were all dropped
gets no images). Output: ``images.jsonl`` (ImageRecord ``<pair>.1``, ``<pair>.2``, and up to
``<pair>.4`` with ``images_per_sample``, made together because MIS's critic judges them
together). Drops: ``bad_image`` (the bytes are not a
usable image), ``missing_image`` (a local source has no image of the object), ``refused`` /
``api_error`` / ``invalid_output`` (the image or critique model failed).

Sources: ``typography`` renders the object's name (offline, no model); ``t2i`` generates one
image per object, then a vision critic sees the pair's first question and **both** images and
answers True, or False with two refined prompts that keep the question's setting; the pair is
regenerated once from them and kept (MIS: one refinement round; whether the result fits is the
judges' and the reviewers' call). Objects of kind ``text`` are drawn with their words legible.
``folder`` and ``hf_dataset`` take ``<object>.png`` / the row labelled with the object.

A prompt the provider's moderation blocks (the image model and its fallbacks) is reworded once
by the text model (``t2i_reword.md``: the same object, shown plainly) and drawn again; blocked
twice, the pair is rejected as ``blocked`` (kept in the cache, so a rerun asks nothing). When
the critic's refined prompts are blocked, the first round's images stay (``refine_blocked``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import cache, cached_property
from typing import Any, Literal, cast

from pydantic import BaseModel, create_model

from mis_data.core.ids import image_id, parent_id
from mis_data.core.records import (
    ConceptRecord,
    ImageRecord,
    InstructionRecord,
    RejectReason,
    Step,
)
from mis_data.core.wording import image_facts, join_words, ordinal_image, quoted
from mis_data.images.sources import ObjectImages
from mis_data.images.store import BadImage, StoredImage
from mis_data.images.workers import draw_typography
from mis_data.stages.base import ModelTask, Outcome, PlanProbe, Rejection, Stage, WorkItem, model_request
from mis_data.stages.drawing import Drawn, draw_object, image_prompt


class Critique(BaseModel):
    """The critic's reply for two images; ``critique_model`` adds prompt3/prompt4 for more."""

    verdict: bool
    reason: str
    prompt1: str
    prompt2: str


@cache
def critique_model(count: int) -> type[Critique]:
    """The critic's reply for ``count`` images: one refined prompt per image."""
    if count == 2:
        return Critique
    extra: dict[str, Any] = {f"prompt{slot}": (str, ...) for slot in range(3, count + 1)}
    return create_model(f"Critique{count}", __base__=Critique, **extra)


def slots_of(concept: ConceptRecord) -> range:
    """The 1-based image slots of a concept, one per object."""
    return range(1, concept.image_count + 1)


def critique_facts(concept: ConceptRecord, question: str, prompts: list[str]) -> dict[str, Any]:
    """What ``image_critique.md`` is filled from: the objects, the question and each image's
    text-to-image prompt (also rendered by ``mis-data plan`` to size the request)."""
    slots = slots_of(concept)
    return {"category": concept.category, "sub_category": concept.sub_category,
            "question": question, **image_facts(concept.objects, concept.kinds),
            **{f"prompt{slot}": prompts[slot - 1] for slot in slots},
            "objects_with_prompts": "\n".join(
                f"Object {slot}: {concept.objects[slot - 1]} (kind: {concept.kinds[slot - 1]}), "
                f"generated from the prompt: {prompts[slot - 1]}" for slot in slots),
            "each_image_fits": join_words([f"{ordinal_image(slot)} shows Object {slot}"
                                           for slot in slots]),
            "prompt_fields": quoted([f"prompt{slot}" for slot in slots]),
            "prompt_json": ", ".join(f'"prompt{slot}": "..."' for slot in slots)}


def critique_plan_text(probe: PlanProbe) -> str:
    """The critique prompt as the plan sizes it: the first prompts of the concept's objects."""
    concept = probe.subject
    first = [image_prompt(probe.ctx, obj, kind)
             for obj, kind in zip(concept.objects, concept.kinds, strict=True)]
    return probe.ctx.prompts.get("image_critique.md").render(
        **critique_facts(concept, probe.question, first))


CRITIQUE = ModelTask(
    "image_critique", "vision", "image_critique.md",
    reply_of=lambda ctx: critique_model(ctx.config.images_per_sample),
    plan_text=critique_plan_text,
    # a verdict and a reason; refined prompts for the pairs the critic sends back
    reply_chars=lambda probe: probe.assumptions.reason_chars + 60
    + int(probe.assumptions.refine_rate * 2 * 80))


class ImageStage(Stage):
    """The images step, one work item per concept pair with a question (see the module docstring for what
    it reads, writes and drops)."""
    name = Step.images.value
    tasks = (CRITIQUE,)

    def inputs(self) -> Sequence[WorkItem]:
        """Each concept that kept a question, with its first question (what the critic is shown)."""
        first_question: dict[str, InstructionRecord] = {}
        for question in self.ctx.view.instructions.values():
            first_question.setdefault(question.concept_id, question)
        return [WorkItem(concept.id, concept.sub_category, (concept, first_question[concept.id]))
                for concept in self.ctx.view.concepts.values() if concept.id in first_question]

    def item_of(self, record_id: str) -> str:
        """An image record ``<pair>.<slot>`` belongs to its pair's item."""
        return parent_id(record_id)

    def concurrency(self) -> int:
        """As many pairs at once as the image model's ``capacity`` allows."""
        return self.ctx.config.models.image.capacity

    def redo_ids(self) -> set[str]:
        """Pairs with a stored file missing or truncated: made again (model calls are cached)."""
        return {image.sample_id for image in self.ctx.view.images.values()
                if not self.ctx.store.looks_complete(image.sha256)}

    @cached_property
    def local_images(self) -> ObjectImages:
        """The local image pool of a ``folder`` or ``hf_dataset`` source, opened once per stage."""
        return ObjectImages(self.ctx.config.images.pool())

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        """Every image of one pair: generated and critiqued for ``t2i``, else rendered or looked up slot by
        slot (a missing or bad image rejects only its slot)."""
        concept, question = item.payload
        source = self.ctx.config.images.source
        if source == "t2i":
            return await self.generate(item, concept, question)
        if source == "typography":
            return [await self.typography_slot(concept, slot) for slot in slots_of(concept)]
        _ = self.local_images  # opened here, once, before the worker threads read it
        # Decoding and PNG encoding run in worker threads, so a pair's images are made while
        # other pairs' model calls are in flight.
        return [await asyncio.to_thread(self.local_slot, concept, slot, source)
                for slot in slots_of(concept)]

    async def typography_slot(self, concept: ConceptRecord, slot: int) -> Outcome:
        """One slot's typography picture, drawn (with its pHash, for dedup) in a worker process
        and stored from a thread."""
        slot_id = image_id(concept.id, slot)
        png, phash = await draw_typography(concept.objects[slot - 1],
                                           f"{self.ctx.config.seed}:{slot_id}",
                                           self.ctx.config.images.typography_size)
        stored = await asyncio.to_thread(self.ctx.store.put_png, png, phash)
        return self.record(concept, slot, stored, "typography")

    def local_slot(self, concept: ConceptRecord, slot: int, source: str) -> Outcome:
        """One slot's image from the local pool (``folder``, ``hf_dataset``); a missing or bad
        image rejects only this slot."""
        obj = concept.objects[slot - 1]
        slot_id = image_id(concept.id, slot)
        data, origin = self.local_images.lookup(obj)
        if data is None:
            return Rejection(RejectReason.missing_image, origin, id=slot_id)
        try:
            stored = self.ctx.store.put(data)
        except BadImage as error:
            return Rejection(RejectReason.bad_image, f"{origin}: {error}", id=slot_id)
        return self.record(concept, slot, stored, f"{source}:{origin}")

    def record(self, concept: ConceptRecord, slot: int, stored: StoredImage, source: str,
               **provenance: Any) -> ImageRecord:
        # ``slot`` comes from ``slots_of``: 1 to the concept's image count, at most four.
        """The ImageRecord of one slot; ``provenance`` carries the t2i fields (model, prompts, critique)."""
        return ImageRecord(id=image_id(concept.id, slot), sample_id=concept.id,
                           slot=cast(Literal[1, 2, 3, 4], slot),
                           object=concept.objects[slot - 1],
                           sha256=stored.sha256, width=stored.width, height=stored.height,
                           source=source, **provenance)

    def first_prompt(self, concept: ConceptRecord, slot: int) -> str:
        """The first text-to-image prompt of one slot's object."""
        return image_prompt(self.ctx, concept.objects[slot - 1], concept.kinds[slot - 1])

    async def draw_pair(self, concept: ConceptRecord, prompts: list[str]
                        ) -> list[Drawn] | Rejection:
        """Draw every object of a pair concurrently; the first rejection rejects the whole pair, since the
        critic judges the images together."""
        drawn = await asyncio.gather(*(
            draw_object(self.ctx, concept.objects[slot - 1], concept.kinds[slot - 1],
                        prompts[slot - 1], image_id(concept.id, slot), self.name,
                        concept.sub_category)
            for slot in slots_of(concept)))
        failed = [image for image in drawn if isinstance(image, Rejection)]
        return failed[0] if failed else drawn  # type: ignore[return-value]

    async def generate(self, item: WorkItem, concept: ConceptRecord,
                       question: InstructionRecord) -> Sequence[Outcome] | Rejection:
        """The t2i path: draw the pair, let the critic judge it, and redraw once from its refined prompts
        when it says no (the first images stay if the refinement is blocked)."""
        first = [self.first_prompt(concept, slot) for slot in slots_of(concept)]
        images = await self.draw_pair(concept, first)
        if isinstance(images, Rejection):
            return images
        template_sha = self.ctx.prompts.get("t2i_prompt.md").sha256
        model = self.ctx.client.model_name("image")
        if not self.ctx.config.images.critique:
            return [self.record(concept, slot, image.stored, "t2i", model=model,
                                prompt=image.prompt, prompt_sha256=template_sha,
                                blocked=image.blocked)
                    for slot, image in enumerate(images, start=1)]
        verdict = await self.critique(item, concept, question, [i.prompt for i in images],
                                      [i.stored for i in images])
        if isinstance(verdict, Rejection):
            return verdict
        final, rounds, critique = images, 1, "accepted"
        if not verdict.verdict:
            refined = [getattr(verdict, f"prompt{slot}").strip() or images[slot - 1].prompt
                       for slot in slots_of(concept)]
            redrawn = await self.draw_pair(concept, refined)
            if isinstance(redrawn, Rejection) and redrawn.reason != RejectReason.blocked:
                return redrawn
            if isinstance(redrawn, Rejection):  # the refinement is blocked: round 1 stays
                critique = "refine_blocked"
            else:
                final, rounds, critique = redrawn, 2, "refined"
        return [self.record(concept, slot, image.stored, "t2i", model=model,
                            prompt=image.prompt, first_prompt=first[slot - 1],
                            prompt_sha256=template_sha, rounds=rounds, critique=critique,
                            critique_reason=verdict.reason, blocked=image.blocked)
                for slot, image in enumerate(final, start=1)]

    async def critique(self, item: WorkItem, concept: ConceptRecord,
                       question: InstructionRecord, prompts: list[str],
                       images: list[StoredImage]) -> Critique | Rejection:
        """Ask the vision critic about the pair's images together with the first question."""
        facts = critique_facts(concept, question.harmful, prompts)
        result = await self.ctx.client.structured(model_request(
            self.ctx, CRITIQUE, stage=self.name, item_id=item.id, values=facts,
            response_model=critique_model(concept.image_count),
            images=[image.sha256 for image in images], sub_category=concept.sub_category))
        if not result.ok:
            return Rejection.from_result(result, "image critique")
        assert isinstance(result.value, Critique)
        return result.value
