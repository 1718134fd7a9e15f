"""Step 3: one normalized image per slot of every concept.

Input: ``concepts.jsonl``. Output: ``images.jsonl`` (ImageRecord, id ``<sample>.<slot>``).
Drops: ``image_unusable`` (the critic rejected the image after one refinement round),
``bad_image`` (the bytes are not a usable image), ``refused`` / ``api_error`` /
``invalid_output`` (the image or critique model failed).

Sources: ``typography`` renders the object's name (offline, no model); ``t2i`` asks the image
model, then a vision critic, and regenerates once with the critic's improved prompt (MIS step 3);
``folder`` takes ``<object>.png`` (any image suffix) from a local folder, refusing links that
lead outside it; ``hf_dataset`` takes the image whose label column names the object. Every image
is normalized by the store, so a broken file is a ``bad_image`` reject naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from pydantic import BaseModel

from mis_data.images.store import BadImage, StoredImage
from mis_data.images.typography import render_typography
from mis_data.models.base import ChatMessage, ImagePart, ImageRequest, StructuredRequest, TextPart
from mis_data.records import ConceptRecord, ImageRecord, RejectReason, Step
from mis_data.sources import ObjectImages
from mis_data.stages.base import Rejection, Stage, WorkItem


class Critique(BaseModel):
    shows_object: bool
    is_clear: bool
    improved_prompt: str


class ImageStage(Stage):
    name = Step.images.value

    def inputs(self) -> Sequence[WorkItem]:
        items = []
        for concept in self.ctx.run.records(Step.concepts.value, ConceptRecord).values():
            for slot in (1, 2):
                items.append(WorkItem(f"{concept.id}.{slot}", concept.sub_category, (concept, slot)))
        return items

    def concurrency(self) -> int:
        return self.ctx.config.models.image.concurrency

    def redo_ids(self) -> set[str]:
        """Images whose stored file is missing or truncated: made again (model calls are cached)."""
        return {image.id for image in self.ctx.run.records(self.name, ImageRecord).values()
                if not self.ctx.store.looks_complete(image.sha256)}

    async def process(self, item: WorkItem) -> Sequence[ImageRecord] | Rejection:
        concept, slot = item.payload
        obj = concept.object1 if slot == 1 else concept.object2
        kind = concept.kind1 if slot == 1 else concept.kind2
        source = self.ctx.config.images.source
        if source == "typography":
            size = self.ctx.config.images.typography_size
            png = render_typography(obj, f"{self.ctx.config.seed}:{item.id}", size)
            stored = self.ctx.store.put_png(png)
            return [self._record(item, concept, slot, obj, stored, "typography")]
        if source == "t2i":
            return await self._generate(item, concept, slot, obj, kind)
        data, origin = self._local_image(obj)
        if data is None:
            return Rejection(RejectReason.missing_image, origin)
        try:
            stored = self.ctx.store.put(data)
        except BadImage as error:
            return Rejection(RejectReason.bad_image, f"{origin}: {error}")
        return [self._record(item, concept, slot, obj, stored, f"{source}:{origin}")]

    @cached_property
    def local_images(self) -> ObjectImages:
        return ObjectImages(self.ctx.config.images.pool())

    def _local_image(self, obj: str) -> tuple[bytes | None, str]:
        return self.local_images.lookup(obj)

    def _record(self, item: WorkItem, concept: ConceptRecord, slot: int, obj: str,
                stored: StoredImage, source: str, model: str | None = None,
                prompt: str | None = None, prompt_sha256: str | None = None,
                rounds: int = 1) -> ImageRecord:
        return ImageRecord(id=item.id, sample_id=concept.id, slot=slot, object=obj,
                           sha256=stored.sha256, width=stored.width, height=stored.height,
                           source=source, model=model, prompt=prompt,
                           prompt_sha256=prompt_sha256, rounds=rounds)

    async def _generate(self, item: WorkItem, concept: ConceptRecord, slot: int, obj: str,
                        kind: str) -> Sequence[ImageRecord] | Rejection:
        template = self.ctx.prompts.get("t2i_prompt.md")
        prompt = template.render(object=obj, kind=kind).strip()
        facts = {"object": obj, "kind": kind, "sub_category": concept.sub_category,
                 "style_seed": f"{self.ctx.config.seed}:{item.id}"}
        for round_number in (1, 2):
            result = await self.ctx.client.generate_image(
                ImageRequest(item_id=item.id, prompt=prompt, facts=facts, stage=self.name))
            if result.data is None:
                return Rejection(result.reason or RejectReason.api_error, result.detail)
            try:
                stored = self.ctx.store.put(result.data)
            except BadImage as error:
                return Rejection(RejectReason.bad_image, f"generated image: {error}")
            if not self.ctx.config.images.critique:
                return [self._record(item, concept, slot, obj, stored, "t2i", result.model,
                                     prompt, template.sha256, round_number)]
            verdict = await self._critique(item, concept, obj, kind, prompt, stored.sha256)
            if isinstance(verdict, Rejection):
                return verdict
            if verdict.shows_object and verdict.is_clear:
                return [self._record(item, concept, slot, obj, stored, "t2i", result.model,
                                     prompt, template.sha256, round_number)]
            prompt = verdict.improved_prompt.strip() or prompt
        return Rejection(RejectReason.image_unusable,
                         f"critic rejected the image of {obj!r} twice")

    async def _critique(self, item: WorkItem, concept: ConceptRecord, obj: str, kind: str,
                        prompt: str, sha256: str) -> Critique | Rejection:
        text = self.ctx.prompts.get("image_critique.md").render(object=obj, kind=kind,
                                                                  prompt=prompt)
        request = StructuredRequest(
            task="image_critique", role="vision", item_id=item.id, stage=self.name,
            messages=[ChatMessage("user", (ImagePart(sha256), TextPart(text)))],
            response_model=Critique, sub_category=concept.sub_category,
            facts={"object": obj, "kind": kind},
        )
        result = await self.ctx.client.structured(request)
        if not result.ok:
            return Rejection.from_result(result, "image critique")
        assert isinstance(result.value, Critique)
        return result.value
