"""Near-duplicate samples, found after the instructions and before the judges.

Input: ``instructions.jsonl`` with their pairs. Output: ``dedup.json`` (every flagged pair of
samples and why). Drops: ``near_duplicate`` when a sample's two images are perceptually alike
(``imagehash`` pHash within ``image_hash_distance``, slot by slot) *and* its instruction is nearly
the same (token Jaccard >= ``text_jaccard``) as a sample with a smaller id. Either signal alone is
only flagged: templated questions and shared objects are normal in MIS. The questions of one
pair are never compared with each other: they share its images on purpose.

Samples are compared in id order, so the same inputs always drop the same ids. The stage is
recomputed from scratch each run (cheap: hashes are computed once per image and cached in the
report), which keeps it correct when earlier stages add records on resume.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from mis_data.core.pool import Mapper
from mis_data.core.records import RejectReason, RejectRecord, Step
from mis_data.core.rundir import dump_json, read_json_or_none
from mis_data.images import fingerprint
from mis_data.stages.base import Decision, WholeStage


def tokens(text: str) -> frozenset[str]:
    """The lower-cased words and numbers of a text, the unit of the instruction Jaccard."""
    return frozenset(re.findall(r"[a-z0-9]+", text.casefold()))


def jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    """Jaccard similarity of two token sets; two empty texts count as identical (1.0)."""
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


def image_hashes(paths: dict[str, Path], known: dict[str, str],
                 mapper: Mapper) -> dict[str, imagehash.ImageHash]:
    """The pHash of each image by sha256, reusing the hex values in ``known`` (remembered from
    earlier runs, or taken when the image was made); new ones are computed by ``mapper``
    (threads, as decoding and the DCT release the GIL, or Ray tasks)."""
    missing = [sha256 for sha256 in paths if sha256 not in known]
    for sha256, value in zip(missing, mapper.map(phash_hex, [paths[sha] for sha in missing]),
                             strict=True):
        known[sha256] = value
    return {sha256: imagehash.hex_to_hash(known[sha256]) for sha256 in paths}


def phash_hex(path: Path) -> str:
    """One stored image's perceptual hash as hex."""
    with Image.open(path) as image:
        return fingerprint.phash_hex(image)


def hamming_matrix(values: list[int]) -> np.ndarray:
    """Pairwise Hamming distances of 64-bit hashes (n x n, uint8), vectorized in row blocks.

    Blocks keep the bit-unpacking buffer near 16 MB, so 10,000 samples need ~100 MB, not GBs.
    """
    array = np.array(values, dtype=np.uint64)
    count = len(values)
    result = np.empty((count, count), dtype=np.uint8)
    block = max(1, (1 << 24) // max(1, count * 64))
    for start in range(0, count, block):
        xor = array[start:start + block, None] ^ array[None, :]
        bits = np.unpackbits(xor.view(np.uint8).reshape(xor.shape[0], count, 8), axis=2)
        result[start:start + block] = bits.sum(axis=2, dtype=np.uint8)
    return result


class DedupStage(WholeStage):
    """The near-duplicate filter as a whole-file stage that writes only rejects and ``dedup.json``; it is
    recomputed on every run (see the module docstring)."""
    name = Step.dedup.value
    recompute = True
    writes_records = False

    def idle_note(self) -> str | None:
        """Idle when ``dedup.enabled`` is off."""
        return None if self.ctx.config.dedup.enabled else "disabled (dedup.enabled)"

    async def decide(self) -> Decision:
        """Compare every pair of samples by slot-wise image distance and instruction Jaccard; drop the
        later id of a pair close on both, flag the rest in the report."""
        ctx, settings = self.ctx, self.ctx.config.dedup
        pairs = ctx.view.pairs
        instructions = sorted((i for i in ctx.view.instructions.values() if i.concept_id in pairs),
                              key=lambda r: r.id)
        report_path = ctx.run.path / "dedup.json"
        known: dict[str, str] = dict((read_json_or_none(report_path) or {}).get("phash", {}))
        shas = {ref.sha256 for i in instructions for ref in pairs[i.concept_id].images}
        known |= {sha: ctx.store.phashes[sha] for sha in shas
                  if sha not in known and sha in ctx.store.phashes}
        hashes = image_hashes({sha: ctx.store.path_for(sha) for sha in sorted(shas)}, known,
                              ctx.cpu)
        words = [tokens(i.question) for i in instructions]
        flags: list[dict] = []
        dropped: dict[str, str] = {}
        if instructions:
            slots = range(min(len(pairs[i.concept_id].images) for i in instructions))
            slot_distances = [hamming_matrix([int(str(hashes[pairs[i.concept_id].images[slot].sha256]), 16)
                                              for i in instructions]) for slot in slots]
            distance = np.maximum.reduce(slot_distances)
            for row, column in zip(*np.nonzero(np.triu(distance <= settings.image_hash_distance, k=1)),
                                   strict=True):
                first, second = instructions[row], instructions[column]
                if first.concept_id == second.concept_id:
                    continue  # questions of one pair share its images on purpose (MIS: 2-3 per pair)
                similarity = jaccard(words[row], words[column])
                duplicate = similarity >= settings.text_jaccard
                flags.append({"kept": first.id, "other": second.id,
                              "image_distance": int(distance[row, column]),
                              "text_jaccard": round(similarity, 3),
                              "signals": ["images", "text"] if duplicate else ["images"]})
                if duplicate and first.id not in dropped and second.id not in dropped:
                    dropped[second.id] = f"near-duplicate of {first.id}: image pHash distance " \
                                         f"{int(distance[row, column])}, instruction Jaccard {similarity:.2f}"
        same_text = Counter(words)
        text_duplicates = sum(count - 1 for count in same_text.values() if count > 1)
        report = dump_json({
            "settings": settings.model_dump(), "flagged_image_pairs": len(flags),
            "instructions_with_identical_words": text_duplicates, "rejected": sorted(dropped),
            "flags": flags, "phash": dict(sorted(known.items())),
        })
        rejects = [RejectRecord(stage=self.name, id=item_id, reason=RejectReason.near_duplicate,
                                detail=detail) for item_id, detail in sorted(dropped.items())]
        if ctx.shard is not None:
            # Which of two near-duplicates goes depends on every pair (a sample is dropped only
            # for one that is kept), and a shard sees its own: a sample this shard would drop
            # can be kept by the whole build. So a shard reports and judges them all, and
            # ``mis-data merge`` decides over every pair, as a single build does.
            return Decision(files={"dedup.json": report}, considered=len(instructions),
                            note=f"checked {len(instructions)}, {len(rejects)} flagged for the "
                                 "merge")
        return Decision(rejects=rejects, files={"dedup.json": report},
                        considered=len(instructions), note=f"checked {len(instructions)}")
