"""MIS-real: test items whose two objects have real photos, copied with the photos swapped in.

Input: ``judgements.jsonl`` (easy and hard items) with their concepts, and the real-photo pool
of the config (``real:``, a folder of ``<object>.png`` or a labelled dataset). Output:
``real.jsonl`` (PairRecord, variant ``real``, id ``<sample>.real``). Drops: ``bad_image`` for a
pool photo that cannot be used. Items whose objects have no photo are simply not eligible.

The paper selected 100 of its 2,185 test items and retrieved LAION photos for their objects
(MIS_NOTES.md §1 step 4); here the choice is a seeded ranking of the eligible items, taken in
order until ``count`` are found, so the same seed picks the same items. Decided as a whole and
written once, like the concepts.
"""

from __future__ import annotations

from collections import Counter

from mis_data.images.store import BadImage
from mis_data.records import (
    ConceptRecord,
    ImageRef,
    JudgementRecord,
    PairRecord,
    RejectReason,
    RejectRecord,
    seeded_rank,
)
from mis_data.rundir import write_text_atomic
from mis_data.sources import ObjectImages
from mis_data.stages.base import BuildContext, StageStats, nothing_to_do

STAGE = "real"


def build_real_pairs(ctx: BuildContext) -> StageStats:
    settings, path = ctx.config.real, ctx.run.stage_file(STAGE)
    idle = nothing_to_do(STAGE, settings, path, "real")
    if idle is not None or settings is None:
        return idle or StageStats(stage=STAGE)
    stats = StageStats(stage=STAGE)
    pool = ObjectImages(folder=settings.folder, hf_dataset=settings.hf_dataset,
                        hf_split=settings.hf_split, image_column=settings.image_column,
                        label_column=settings.label_column)
    concepts = ctx.run.read_by_id("concepts", ConceptRecord)
    tests = [j for j in ctx.run.read("judgements", JudgementRecord) if j.route in ("easy", "hard")]
    chosen: list[PairRecord] = []
    for judgement in sorted(tests, key=lambda j: seeded_rank(ctx.config.seed, "real", j.id)):
        if len(chosen) >= settings.count:
            break
        concept = concepts[judgement.id]
        found = [pool.lookup(concept.object1), pool.lookup(concept.object2)]
        if any(data is None for data, _ in found):
            continue
        refs = []
        for data, origin in found:
            try:
                stored = ctx.store.put(data or b"")
            except BadImage as error:
                ctx.run.reject(RejectRecord(stage=STAGE, id=f"{judgement.id}.real",
                                            reason=RejectReason.bad_image, detail=f"{origin}: {error}",
                                            sub_category=judgement.sub_category))
                stats.dropped[RejectReason.bad_image.value] += 1
                break
            refs.append(ImageRef(sha256=stored.sha256, width=stored.width, height=stored.height,
                                 source=f"real:{origin}"))
        else:
            chosen.append(PairRecord(id=f"{judgement.id}.real", image1=refs[0], image2=refs[1],
                                     variant="real"))
    chosen.sort(key=lambda pair: pair.id)
    write_text_atomic(path, "".join(pair.model_dump_json() + "\n" for pair in chosen))
    stats.pending, stats.kept = len(tests), len(chosen)
    stats.dropped = Counter(stats.dropped)
    return stats
