"""MIS-real: test items whose two objects have real photos, copied with the photos swapped in.

Input: ``judgements.jsonl`` (easy and hard items) with their concepts, and the real-photo pool
of the config (``real:``, a folder of ``<object>.png`` or a labelled dataset). Output:
``real.jsonl`` (PairRecord, variant ``real``, id ``<sample>.real``). Drops: ``bad_image`` for a
pool photo that cannot be used. Items whose objects have no photo are simply not eligible.

The paper selected 100 of its 2,185 test items and retrieved LAION photos for their objects
(docs/recipe.md §1 step 4); here the choice is a seeded ranking of the eligible items, taken in
order until ``count`` are found, so the same seed picks the same items. A whole-file stage,
like the concepts.
"""

from __future__ import annotations

from mis_data.core.ids import real_id
from mis_data.core.records import (
    ImageRef,
    PairRecord,
    RejectReason,
    RejectRecord,
    Step,
    seeded_rank,
)
from mis_data.images.sources import ObjectImages
from mis_data.images.store import BadImage
from mis_data.stages.base import Decision, WholeStage


class RealStage(WholeStage):
    """The MIS-real step as a whole-file stage (see the module docstring)."""
    name = Step.real.value

    def idle_note(self) -> str | None:
        """Idle when the config has no ``real:`` section."""
        return None if self.ctx.config.real is not None else "not configured (real:)"

    async def decide(self) -> Decision:
        """Walk the easy and hard items in seeded order and copy each whose objects all have a pool photo,
        until ``count`` are chosen; a bad photo rejects that item only."""
        ctx, settings = self.ctx, self.ctx.config.real
        assert settings is not None
        pool = ObjectImages(settings)
        tests = [sample for sample in ctx.view.samples(Step.judgements)
                 if sample.judgement and sample.judgement.route in ("easy", "hard")]
        chosen: list[PairRecord] = []
        rejects: list[RejectRecord] = []
        for sample in sorted(tests, key=lambda s: seeded_rank(ctx.config.seed, "real", s.id)):
            if len(chosen) >= settings.count:
                break
            judgement, concept = sample.judgement, sample.concept
            assert judgement is not None, "tests holds judged samples only"
            found = [pool.lookup(obj) for obj in concept.objects]
            if any(data is None for data, _ in found):
                continue
            refs = []
            for data, origin in found:
                try:
                    stored = ctx.store.put(data or b"")
                except BadImage as error:
                    rejects.append(RejectRecord(stage=self.name, id=real_id(judgement.id),
                                                reason=RejectReason.bad_image,
                                                detail=f"{origin}: {error}",
                                                sub_category=judgement.sub_category))
                    break
                refs.append(ImageRef(sha256=stored.sha256, width=stored.width,
                                     height=stored.height, source=f"real:{origin}"))
            else:
                chosen.append(PairRecord(id=real_id(judgement.id), variant="real", **{
                    f"image{slot}": ref for slot, ref in enumerate(refs, start=1)}))
        chosen.sort(key=lambda pair: pair.id)
        return Decision(records=list(chosen), rejects=rejects, considered=len(tests))
