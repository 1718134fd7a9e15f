"""Splits: which sample goes to train, easy, hard (and real, val), written as sorted JSONL.

Membership comes from the judgements: the judges' route decides train versus test and easy
versus hard. A train sample needs its safety label; a sample whose label was rejected is left
out (its reject is in ``rejects.jsonl``). Files are sorted by id and written atomically, so the
same run and seed give the same bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mis_data.records import (
    ConceptRecord,
    ImageRef,
    InstructionRecord,
    JudgementRecord,
    LabelRecord,
    PairRecord,
    Vote,
)
from mis_data.rundir import RunDir, dump_json, write_text_atomic

SPLITS = ("train", "val", "easy", "hard", "real")
TEST_SPLITS = ("easy", "hard", "real")


class Sample(BaseModel):
    """One finished sample, joined from every stage's record: what exporters read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    split: str
    category: str
    sub_category: str
    question: str
    object1: str
    object2: str
    image1: ImageRef
    image2: ImageRef
    label: str | None = None
    source: str = "generated"
    concept_source: str = ""
    moved_from: str | None = None
    votes: list[Vote] = []


def join_samples(run: RunDir) -> list[Sample]:
    """Every judged sample with its concept, images, instruction and (if any) label."""
    concepts = run.read_by_id("concepts", ConceptRecord)
    pairs = run.read_by_id("pairs", PairRecord)
    instructions = run.read_by_id("instructions", InstructionRecord)
    labels = run.read_by_id("labels", LabelRecord)
    samples = []
    for judgement in run.read("judgements", JudgementRecord):
        concept, pair = concepts[judgement.id], pairs[judgement.id]
        label = labels.get(judgement.id)
        if judgement.route == "train" and label is None:
            continue
        samples.append(Sample(
            id=judgement.id, split=judgement.route, category=judgement.category,
            sub_category=judgement.sub_category, question=instructions[judgement.id].question,
            object1=concept.object1, object2=concept.object2,
            image1=pair.image1, image2=pair.image2, label=label.text if label else None,
            concept_source=concept.source, moved_from=judgement.moved_from,
            votes=judgement.votes,
        ))
    return sorted(samples, key=lambda sample: sample.id)


def split_file(run: RunDir, split: str) -> Path:
    return run.splits_dir / f"{split}.jsonl"


def write_splits(run: RunDir, samples: list[Sample], seed: int) -> dict[str, list[Sample]]:
    """Write one JSONL per split and ``splits/manifest.json`` (ids, split, file hashes)."""
    by_split: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for sample in samples:
        by_split[sample.split].append(sample)
    hashes = {}
    for split, members in by_split.items():
        members.sort(key=lambda sample: sample.id)
        text = "".join(sample.model_dump_json() + "\n" for sample in members)
        write_text_atomic(split_file(run, split), text)
        hashes[f"{split}.jsonl"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    manifest = {
        "seed": seed,
        "counts": {split: len(members) for split, members in by_split.items()},
        "files": hashes,
        "ids": {sample.id: sample.split for sample in sorted(samples, key=lambda s: s.id)},
    }
    write_text_atomic(run.splits_dir / "manifest.json", dump_json(manifest))
    return by_split


def read_splits(run: RunDir) -> dict[str, list[Sample]]:
    """The current split files; an absent split is empty."""
    result = {}
    for split in SPLITS:
        result[split] = run.read(f"splits/{split}", Sample)
    return result
