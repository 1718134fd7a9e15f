"""What the gallery shows, read from a run folder: one light row per sample, details apart.

The page must open fast at MIS scale (10,000 samples), so the data is split in two:

* ``rows``: what filtering, searching questions and drawing a card need (status, sub-category,
  question, flags, the MIS export number, two image indices), a few hundred bytes a sample;
* ``details``: what a reader opens (the harmful -> replaced -> detoxified history with reasons,
  the label, every vote, provenance), loaded in chunks only for the cards on screen, or all at
  once when a search must look into labels.

A sample is every question the run wrote (``instructions.jsonl``), whatever became of it: a
split member, an open tie in the review queue, a judged sample the splits left out, a reviewer's
drop, or a reject of a later stage. Nothing here is HTML: the page writes every value with
``textContent``, so model text can never become markup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.core.decision_log import DECISIONS, REVIEW_QUEUE, REVIEW_STAGE, read_decisions
from mis_data.core.ids import parent_id, without_real
from mis_data.core.records import (
    MAX_IMAGES,
    ConceptRecord,
    ImageRecord,
    ImageRef,
    InstructionRecord,
    JudgementRecord,
    LabelRecord,
    LateStep,
    PairRecord,
    RejectReason,
    RejectRecord,
    ReviewItem,
    Step,
    TwinRecord,
    Vote,
)
from mis_data.core.rundir import RunDir, read_json_or_none
from mis_data.core.samples import GENERAL, SPLITS, Sample, read_splits
from mis_data.core.taxonomy import load_taxonomy

SPLIT_STAGE = LateStep.splits.value  # rejects rows for samples the split step excluded
CHUNK = 250  # samples per details file

# Flags a card can carry (a bit each, so a row stays small).
DISAGREE, MOVED, DEDUP, REFUSED = 1, 2, 4, 8
FLAG_NAMES = {"disagree": DISAGREE, "moved": MOVED, "dedup": DEDUP, "refused": REFUSED}


@dataclass
class ImageTable:
    """Images by index, so 10,000 rows name a thumbnail with a number, not a 64-char hash."""

    rows: list[list[Any]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def add(self, ref: ImageRef | None, thumbs: dict[str, str], full: dict[str, str]) -> int:
        """The image's row index, adding the row on first sight; -1 for a missing image."""
        if ref is None:
            return -1
        if ref.sha256 not in self.index:
            self.index[ref.sha256] = len(self.rows)
            self.rows.append([thumbs.get(ref.sha256, ""), full.get(ref.sha256, ""),
                              ref.width, ref.height, ref.source, ref.sha256[:12]])
        return self.index[ref.sha256]


@dataclass
class RunRecords:
    """Every file the gallery reads, read once."""

    run: RunDir
    concepts: dict[str, ConceptRecord]
    instructions: dict[str, InstructionRecord]
    pairs: dict[str, PairRecord]
    images: dict[str, ImageRecord]  # by sha256: the record that made it
    judgements: dict[str, JudgementRecord]
    labels: dict[str, LabelRecord]
    queue: dict[str, ReviewItem]
    twins: dict[str, TwinRecord]
    rejects: list[RejectRecord]
    splits: dict[str, list[Sample]]
    excluded: dict[str, dict[str, str]]  # sample id -> the split manifest's exclusion
    export_numbers: dict[str, str]  # sample id -> "easy #18"
    dedup: dict[str, list[str]]  # sample id -> why the near-duplicate check flagged it

    @classmethod
    def read(cls, run: RunDir) -> RunRecords:
        """Read every file the gallery needs from the run; files a run has not written yet read as empty."""
        split_manifest = read_json_or_none(run.splits_dir / "manifest.json") or {}
        id_map = read_json_or_none(run.export_dir / "mis" / "id_map.json") or {}
        images: dict[str, ImageRecord] = {}
        for record in run.read("images", ImageRecord):
            images.setdefault(record.sha256, record)
        return cls(
            run=run,
            concepts=run.read_by_id("concepts", ConceptRecord),
            instructions=run.read_by_id("instructions", InstructionRecord),
            pairs=run.read_by_id("pairs", PairRecord),
            images=images,
            judgements=run.read_by_id("judgements", JudgementRecord),
            labels=run.read_by_id("labels", LabelRecord),
            queue={item.id: item for item in run.read(REVIEW_QUEUE, ReviewItem)},
            twins=run.read_by_id(Step.twins.value, TwinRecord),
            rejects=run.rejects(),
            splits=read_splits(run),
            excluded={x["id"]: x for x in split_manifest.get("excluded", [])},
            export_numbers={sample: f"{split} #{number}" for split, numbers in id_map.items()
                            for number, sample in numbers.items()},
            dedup=dedup_notes(read_json_or_none(run.path / "dedup.json") or {}),
        )


def dedup_notes(report: dict[str, Any]) -> dict[str, list[str]]:
    """Per sample, one line per near-duplicate flag it is part of."""
    notes: dict[str, list[str]] = {}
    for flag in report.get("flags", []):
        signals = " + ".join(flag.get("signals", []))
        line = (f"pHash distance {flag.get('image_distance')}, question Jaccard "
                f"{flag.get('text_jaccard')} ({signals})")
        notes.setdefault(flag["kept"], []).append(f"looks like {flag['other']}: {line}")
        notes.setdefault(flag["other"], []).append(f"looks like {flag['kept']}: {line}")
    return notes


def reject_rows(records: RunRecords) -> list[list[str]]:
    """Every current reject and split exclusion as [reason, stage, id, sub-category, detail]."""
    rows = [[r.reason.value, r.stage, r.id, r.sub_category or "", r.detail]
            for r in records.rejects]
    rows += [[x["reason"], SPLIT_STAGE, x["id"], x.get("sub_category", ""), x.get("detail", "")]
             for x in records.excluded.values()]
    return sorted(rows, key=lambda row: (row[0], row[1], row[2]))


def taxonomy_order(run: RunDir, seen: dict[str, str]) -> list[list[Any]]:
    """[[category, [sub-categories]]] in taxonomy order, then anything else the run holds."""
    groups: dict[str, list[str]] = {}
    try:
        for entry in load_taxonomy(run.config().config.taxonomy).sub_categories:
            groups.setdefault(entry.category, []).append(entry.name)
    except (ConfigError, OSError):
        pass  # a run copied without its taxonomy still opens, in the order of its own data
    listed = {sub for subs in groups.values() for sub in subs}
    for sub, category in sorted(seen.items(), key=lambda item: (item[1] == GENERAL, item)):
        if sub not in listed:
            groups.setdefault(category, []).append(sub)
    return [[category, subs] for category, subs in groups.items()]


def vote_row(vote: Vote) -> list[Any]:
    """A vote as the gallery reads it; the flags of a third and fourth image come last."""
    row = [vote.judge, vote.route, vote.text_unsafe, vote.image1_harmful, vote.image2_harmful,
           vote.combination_harmful, vote.meaningful, vote.sub_category, vote.text_sub_category,
           vote.reason]
    return row + [list(vote.image_flags[2:])] if len(vote.image_flags) > 2 else row


def disagree(votes: list[Vote]) -> bool:
    """Judges differ on the route or the sub-category (a tie always does)."""
    return len({v.route for v in votes}) > 1 or len({v.sub_category for v in votes}) > 1


def image_note(record: ImageRecord | None) -> str:
    """How an image was made (model, rounds, critique, prompts) in one line; empty when unknown."""
    if record is None:
        return ""
    parts = [f"model {record.model}, {record.rounds} round(s)" if record.model else ""]
    if record.critique:
        parts.append(f"critique {record.critique}" + (f": {record.critique_reason}"
                                                      if record.critique_reason else ""))
    if record.first_prompt and record.first_prompt != record.prompt:
        parts.append(f"first prompt: {record.first_prompt}")
    if record.prompt:
        parts.append(f"prompt: {record.prompt}")
    return "; ".join(part for part in parts if part)


class GalleryData:
    """Rows, details and lookup tables for the page, built from one read of the run."""

    def __init__(self, records: RunRecords, thumbs: dict[str, str], full: dict[str, str]) -> None:
        self.records = records
        self.thumbs = thumbs
        self.full = full
        self.images = ImageTable()
        self.subs: dict[str, int] = {}
        self.sub_category: dict[str, str] = {}  # sub-category -> category, as seen
        self.rows: list[dict[str, Any]] = []
        self.details: list[dict[str, Any]] = []
        self.rejects_by_sample: dict[str, list[RejectRecord]] = {}
        for reject in records.rejects:
            self.rejects_by_sample.setdefault(reject.id, []).append(reject)

    def sub_index(self, sub: str, category: str) -> int:
        """The sub-category's index in the page's list, remembering the category it was first seen under."""
        self.sub_category.setdefault(sub, category)
        return self.subs.setdefault(sub, len(self.subs))

    def status(self, sample_id: str) -> tuple[str, str]:
        """(status, reason) of a question that is in no split."""
        records = self.records
        own = self.rejects_by_sample.get(sample_id, [])
        reviewer = [r for r in own if r.stage == REVIEW_STAGE]
        if reviewer:
            return "dropped", RejectReason.dropped_by_reviewer.value
        if sample_id in records.judgements:
            if sample_id in records.excluded:
                return "excluded", records.excluded[sample_id]["reason"]
            label = [r for r in own if r.stage == "labels"]
            return "excluded", label[0].reason.value if label else "no_label_yet"
        if sample_id in records.queue and any(r.reason == RejectReason.judge_tie for r in own):
            return "queue", RejectReason.judge_tie.value
        pair = parent_id(sample_id)
        image_rejects = [reject for slot in range(1, MAX_IMAGES + 1)
                         for reject in self.rejects_by_sample.get(f"{pair}.{slot}", [])]
        for reject in own + self.rejects_by_sample.get(pair, []) + image_rejects:
            return "rejected", reject.reason.value
        return "pending", ""

    def add(self, sample_id: str, status: str, reason: str, category: str, sub: str,
            question: str, images: Sequence[ImageRef | None], votes: list[Vote],
            moved_from: str | None, label: str | None, twin_of: str | None = None) -> None:
        """Append one sample's row and its details; ``sample_id`` may be a MIS-real copy of another sample."""
        records = self.records
        base = without_real(sample_id)
        instruction = records.instructions.get(base)
        concept = records.concepts.get(parent_id(base))
        own = self.rejects_by_sample.get(base, [])
        flags = (DISAGREE if disagree(votes) else 0) | (MOVED if moved_from else 0) \
            | (DEDUP if base in records.dedup else 0) \
            | (REFUSED if any(r.reason == RejectReason.refused for r in own) else 0)
        thumbnails = [self.images.add(image, self.thumbs, self.full) for image in images]
        row: dict[str, Any] = {"i": sample_id, "s": status, "c": self.sub_index(sub, category),
                               "q": question, "a": thumbnails[0], "b": thumbnails[1]}
        if base != sample_id:
            row["d"] = base  # a MIS-real copy: decisions are about the sample it copies
        if twin_of:
            row["t"] = twin_of  # a benign twin: kept or dropped, never moved (it follows its source)
        optional = {"r": reason, "f": flags, "m": moved_from or "",
                    "n": records.export_numbers.get(sample_id, ""),
                    "o": list(concept.objects) if concept else None,
                    "k": thumbnails[2:],  # a third and fourth image, when the sample has them
                    "v": [v.route for v in votes] or None}
        row.update({key: value for key, value in optional.items() if value})
        self.rows.append(row)
        image_records = [records.images.get(ref.sha256) if ref else None for ref in images]
        self.details.append({
            "h": [instruction.harmful, instruction.harmful_reason, instruction.replaced,
                  instruction.replace_reason, instruction.question, instruction.detox_reason]
            if instruction else None,
            "l": label, "v": [vote_row(v) for v in votes],
            "src": [concept.source if concept else "",
                    *(image.source if image else "" for image in images)],
            "img": [image_note(record) for record in image_records],
            "x": [f"{r.stage}: {r.reason.value}: {r.detail}" for r in own],
            "dd": records.dedup.get(base, []),
            "ex": records.excluded.get(sample_id, {}).get("detail", ""),
        })

    def build(self) -> None:
        """Rows for every split member, then every other question of the run, then twins in no split."""
        records = self.records
        in_split = set()
        for split in SPLITS:
            for sample in records.splits.get(split, []):
                in_split.add(sample.id)
                self.add(sample.id, split, "", sample.category, sample.sub_category,
                         sample.question, sample.images, sample.votes, sample.moved_from,
                         sample.label, sample.twin_of)
        for sample_id in sorted(records.instructions):
            if sample_id in in_split:
                continue
            status, reason = self.status(sample_id)
            instruction = records.instructions[sample_id]
            concept = records.concepts.get(instruction.concept_id)
            pair = records.pairs.get(instruction.concept_id)
            judged = records.judgements.get(sample_id)
            votes = judged.votes if judged else (records.queue[sample_id].votes
                                                 if sample_id in records.queue else [])
            sub = judged.sub_category if judged else (concept.sub_category if concept else "?")
            category = judged.category if judged else (concept.category if concept else "?")
            label = records.labels.get(sample_id)
            count = concept.image_count if concept else 2
            self.add(sample_id, status, reason, category, sub, instruction.question,
                     pair.images if pair else [None] * count, votes,
                     judged.moved_from if judged else None, label.text if label else None)

        self.add_twins(in_split)

    def add_twins(self, in_split: set[str]) -> None:
        """Twins in no split (a reviewer dropped them, or their source left), so a drop can be
        seen and undone; a twin whose own stage rejected it is listed with the rejects."""
        records = self.records
        for twin_id, twin in sorted(records.twins.items()):
            if twin_id in in_split:
                continue
            own = self.rejects_by_sample.get(twin_id, [])
            if any(r.stage == REVIEW_STAGE for r in own):
                status, reason = "dropped", RejectReason.dropped_by_reviewer.value
            elif twin_id in records.excluded:
                status, reason = "excluded", records.excluded[twin_id]["reason"]
            else:
                status, reason = "excluded", "source_not_in_split"
            source = records.judgements.get(twin.twin_of)
            concept = records.concepts.get(parent_id(twin.twin_of))
            sub = source.sub_category if source else (concept.sub_category if concept else "?")
            category = source.category if source else (concept.category if concept else "?")
            self.add(twin_id, status, reason, category, sub, twin.question, twin.images, [],
                     None, twin.answer, twin.twin_of)

    def index(self, title: str, backend: str) -> dict[str, Any]:
        """Everything but the details: what ``data/index.js`` holds."""
        records = self.records
        order = taxonomy_order(records.run, self.sub_category)
        names = list(self.subs)
        decisions, _ = read_decisions(records.run.path / DECISIONS)
        counts = Counter(row["s"] for row in self.rows)
        return {
            "title": title, "backend": backend, "chunk": CHUNK,
            "chunks": (len(self.rows) + CHUNK - 1) // CHUNK,
            "subs": names, "categories": order, "flags": FLAG_NAMES,
            "images": self.images.rows, "rows": self.rows, "counts": dict(sorted(counts.items())),
            "rejects": reject_rows(records),
            "decisions": [d.model_dump(mode="json", exclude_none=True) for d in decisions],
        }
