"""Pairs: a concept joined with its stored images (two, or ``images_per_sample``), the visual
half of a sample.

Input: ``concepts.jsonl`` and ``images.jsonl``. Output: ``pairs.jsonl`` (PairRecord, id = the
concept's). Drops: ``missing_image`` (an image of the pair was rejected, or its file is gone).
No model is called. A concept whose image is still pending (a retryable failure) is left for
the next run rather than dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mis_data.core.ids import image_id
from mis_data.core.records import ImageRef, PairRecord, RejectReason, Step
from mis_data.stages.base import Rejection, Stage, WorkItem


class PairStage(Stage):
    """The pairs step, one work item per concept whose images are all settled (see the module docstring)."""
    name = Step.pairs.value

    def inputs(self) -> Sequence[WorkItem]:
        """Concepts whose every image is written or finally rejected; one still pending waits for the next
        run."""
        view = self.ctx.view
        images = view.images
        image_rejects = view.rejected(Step.images, final_only=True)
        items = []
        for concept in view.concepts.values():
            if concept.id in image_rejects:  # the pair's images failed as a whole
                items.append(WorkItem(concept.id, concept.sub_category,
                                      ([], [image_rejects[concept.id]])))
                continue
            slots = [image_id(concept.id, slot) for slot in range(1, concept.image_count + 1)]
            if all(slot in images or slot in image_rejects for slot in slots):
                found = [images.get(slot) for slot in slots]
                problems = [image_rejects[slot] for slot in slots if slot in image_rejects]
                items.append(WorkItem(concept.id, concept.sub_category, (found, problems)))
        return items

    async def process(self, item: WorkItem) -> Sequence[PairRecord] | Rejection:
        """Join one concept's images into a pair, re-checking each stored file; any rejected or damaged
        image drops the pair."""
        found, problems = item.payload
        if problems:
            detail = "; ".join(f"image {p.id}: {p.reason.value}" for p in problems)
            return Rejection(RejectReason.missing_image, detail)
        refs = []
        for image in found:
            if not self.ctx.store.verify(image.sha256):
                return Rejection(RejectReason.missing_image,
                                 f"image {image.id} ({image.sha256[:12]}) is missing or damaged")
            refs.append(ImageRef(sha256=image.sha256, width=image.width, height=image.height,
                                 source=image.source))
        slots: dict[str, Any] = {f"image{slot}": ref for slot, ref in enumerate(refs, start=1)}
        return [PairRecord(id=item.id, **slots)]
