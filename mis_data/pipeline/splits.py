"""Splits: which sample goes to train, val, easy, hard and real, written as sorted JSONL.

Membership comes from the judgements: the judges' route decides train versus test and easy
versus hard. A train sample needs its safety label; a sample whose label was rejected is left
out (its reject is in ``rejects.jsonl``), and so is a sample rejected after judging (a
benchmark overlap found by ``decontaminate``, a reviewer's drop).

On top of the routes, three seeded, order-independent decisions are made here:

* **Leakage.** Samples are grouped (union-find) when they share a concept pair
  (``records.concept_key``, order-insensitive) or an image sha256. A group that mixes
  train-routed and test-routed samples goes to the side of its majority (ties: test), and the
  samples that cannot move are excluded with reason ``split_leakage``: a test item has no
  label so cannot train, a train item has unsafe text so cannot be a test item. So no concept
  pair and no image is ever on both sides.
* **Quotas** (``splits.quotas``): at most N easy+hard items per sub-category; a seeded choice
  keeps N, the rest are excluded as ``over_quota``. The real split is not counted (in MIS it
  reuses easy/hard questions with real photos; the paper's Table 3 counts easy+hard only).
  ``targets:`` (with ``trim``) caps train (train + val) and test (easy + hard) per sub-category
  the same way, as ``over_target``; a trimmed train sample's twin leaves with it.
* **Validation** (``splits.val_size``): whole train groups move to val, sub-category by
  sub-category, so val never shares a pair or an image with train either.

Every excluded sample is listed in ``splits/manifest.json`` with its reason: nothing is dropped
silently. Files are sorted by id and written atomically, so the same run and seed give the
same bytes.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mis_data.core.ids import real_id
from mis_data.core.records import (
    AFTER_JUDGING_REASONS,
    BENIGN_CELL,
    ImageRef,
    RewriteRecord,
    Step,
    concept_key,
    seeded_rank,
)
from mis_data.core.rundir import RunDir, dump_json, write_text_atomic
from mis_data.core.samples import GENERAL, OPTIONAL_SPLITS, SPLITS, Sample, split_file
from mis_data.core.view import RunView

QUOTA_SPLITS = ("easy", "hard")
SPLIT_LEAKAGE = "split_leakage"
OVER_QUOTA = "over_quota"
OVER_TARGET = "over_target"


@dataclass
class Exclusion:
    """A judged sample kept out of every split, and why."""

    id: str
    route: str
    sub_category: str
    reason: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        """The exclusion as one row of the splits report."""
        return {"id": self.id, "route": self.route, "sub_category": self.sub_category,
                "reason": self.reason, "detail": self.detail}


@dataclass
class SplitPlan:
    """The outcome of :func:`assign_splits`: members per split and every exclusion."""

    splits: dict[str, list[Sample]]
    excluded: list[Exclusion] = field(default_factory=list)


def slot_fields(objects: Sequence[str], images: Sequence[ImageRef]) -> dict[str, Any]:
    """``object1``/``image1`` ... of a sample, one pair of fields per image."""
    return {f"{name}{slot}": value for slot, (obj, image)
            in enumerate(zip(objects, images, strict=True), start=1)
            for name, value in (("object", obj), ("image", image))}


def join_samples(run: RunDir) -> list[Sample]:
    """Every judged sample with its concept, images, instruction and (if any) label."""
    view = RunView(run)
    real_pairs = view.real
    dropped = {r.id for r in run.rejects() if r.reason in AFTER_JUDGING_REASONS}
    samples = []
    for joined in view.samples(Step.judgements):
        if joined.id in dropped:
            continue
        judgement, concept, pair = joined.judgement, joined.concept, joined.pair
        assert judgement is not None and pair is not None and joined.instruction is not None
        label = joined.label
        if judgement.route == "train" and label is None:
            continue
        split = "real" if pair.variant == "real" and judgement.route != "train" else judgement.route
        samples.append(Sample(
            id=joined.id, split=split, category=judgement.category,
            sub_category=judgement.sub_category, question=joined.instruction.question,
            **slot_fields(concept.objects, pair.images), label=label.text if label else None,
            source=pair.variant, concept_source=concept.source, moved_from=judgement.moved_from,
            votes=judgement.votes, risks=label.risks if label else None,
        ))
        real = real_pairs.get(real_id(joined.id))
        if real is not None and judgement.route != "train":
            samples.append(samples[-1].model_copy(update={
                "id": real.id, "split": "real", **slot_fields(concept.objects, real.images),
                "source": "real"}))
    if run.config().config.twins is not None:
        samples = [sample.model_copy(update={"cell": cell_of(sample)}) for sample in samples]
        samples += twin_samples(view, {sample.id: sample for sample in samples})
    for record in view.general.values():
        samples.append(Sample(
            id=record.id, split="train", category=GENERAL, sub_category=GENERAL,
            question=record.question, **slot_fields([""] * len(record.images), record.images),
            label=record.answer, source="general",
            concept_source=record.source))
    if run.config().config.rewrite is not None:  # each row joins its own sample, never a copy's
        rewrites = run.records("rewrites", RewriteRecord)
        samples = [sample.model_copy(update={"rewrite": rewrites.get(sample.id)})
                   for sample in samples]
    # A dropped source was skipped above, so its twin never joined; a twin or a general-mix
    # row dropped on its own (a decontamination match) leaves here.
    return sorted((sample for sample in samples if sample.id not in dropped),
                  key=lambda sample: sample.id)


def cell_of(sample: Sample) -> str:
    """HoliSafe's cell of a MIS sample: train text is unsafe, easy has a harmful image, hard is
    harmless images and text whose combination is unsafe; real follows its judged route."""
    harmful_image = any(2 * sum(flags) > len(sample.votes)
                        for flags in zip(*(vote.image_flags for vote in sample.votes), strict=True))
    if sample.split in ("train", "val"):
        return "UiUt" if harmful_image else "SiUt"
    return "UiSt" if harmful_image else "SiSt→U"


def twin_samples(view: RunView, sources: dict[str, Sample]) -> list[Sample]:
    """The benign twins whose source is a sample: a train source's twin trains (it teaches
    helping), a test source's twin goes to the ``twins`` test split (it measures over-refusal).
    A twin the judges have not seen (written before twins were judged) waits for the build to
    judge it: nothing unjudged counts as benign."""
    twins = []
    for twin in view.twins.values():
        source = sources.get(twin.twin_of)
        if source is None or twin.votes is None:
            continue
        twins.append(source.model_copy(update={
            "id": twin.id, "split": "train" if source.side == "train" else "twins",
            "question": twin.question, **slot_fields(twin.objects, twin.images),
            "label": twin.answer,
            "source": "twin", "risks": None, "cell": BENIGN_CELL, "twin_of": twin.twin_of,
            "twin_kind": twin.kind}))
    return twins


# -- assignment ------------------------------------------------------------------------------

def leakage_groups(samples: list[Sample]) -> list[list[Sample]]:
    """Samples connected by a shared concept pair or a shared image, each group sorted by id."""
    parent = list(range(len(samples)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_owner: dict[str, int] = {}
    for index, sample in enumerate(samples):
        keys = tuple("image:" + image.sha256 for image in sample.images)
        if sample.source != "general":  # general samples have no concept pair
            keys = ("pair:" + concept_key(*sample.objects), *keys)
        for key in keys:
            owner = first_owner.setdefault(key, index)
            parent[find(index)] = find(owner)
    groups: dict[int, list[Sample]] = defaultdict(list)
    for index, sample in enumerate(samples):
        groups[find(index)].append(sample)
    return sorted((sorted(group, key=lambda s: s.id) for group in groups.values()),
                  key=lambda group: group[0].id)


def resolve_leakage(groups: list[list[Sample]]) -> tuple[list[list[Sample]], list[Exclusion]]:
    """Keep each mixed group on its majority side (ties: test); exclude the others."""
    kept_groups, excluded = [], []
    for group in groups:
        sides = Counter(sample.side for sample in group)
        if len(sides) == 1:
            kept_groups.append(group)
            continue
        side = "train" if sides["train"] > sides["test"] else "test"
        kept = [sample for sample in group if sample.side == side]
        shared_with = ", ".join(sample.id for sample in kept[:5])
        for sample in group:
            if sample.side != side:
                excluded.append(Exclusion(
                    sample.id, sample.split, sample.sub_category, SPLIT_LEAKAGE,
                    f"shares a concept pair or image with {side} sample(s) {shared_with}"))
        kept_groups.append(kept)
    return kept_groups, excluded


def apply_quotas(members: list[Sample], quotas: dict[str, int], seed: int,
                 splits: Sequence[str] = QUOTA_SPLITS, reason: str = OVER_QUOTA
                 ) -> tuple[list[Sample], list[Exclusion]]:
    """At most ``quotas[sub_category]`` items of ``splits`` per sub-category (twins and the
    general mix aside), chosen by seed; a removed sample's twin goes with it."""
    by_sub: dict[str, list[Sample]] = defaultdict(list)
    kept: list[Sample] = []
    for sample in members:
        if (sample.split in splits and sample.sub_category in quotas
                and sample.twin_of is None and sample.source != "general"):
            by_sub[sample.sub_category].append(sample)
        else:
            kept.append(sample)
    excluded: list[Exclusion] = []
    word = "quota" if reason == OVER_QUOTA else "target"
    for sub_category, group in sorted(by_sub.items()):
        group.sort(key=lambda s: seeded_rank(seed, word, s.id))
        limit = quotas[sub_category]
        kept.extend(group[:limit])
        excluded.extend(Exclusion(s.id, s.split, s.sub_category, reason,
                                  f"{word} {limit} for {sub_category}") for s in group[limit:])
    gone = {exclusion.id for exclusion in excluded}
    orphans = [sample for sample in kept if sample.twin_of in gone]
    excluded.extend(Exclusion(s.id, s.split, s.sub_category, reason,
                              f"its source {s.twin_of} is over the {word}") for s in orphans)
    return [sample for sample in kept if sample.twin_of not in gone], excluded


def carve_val(groups: list[list[Sample]], val_size: float, seed: int) -> set[str]:
    """Ids of the train groups moved to val, stratified by sub-category.

    Each sub-category gets a target of ``round(val_size * n)`` items (at most ``n - 1``).
    Groups are visited in seeded order and a group moves only if no sub-category in it
    overshoots its target, so a singleton-rich pool lands exactly on target and shared-pair
    groups never straddle.
    """
    if val_size <= 0:
        return set()
    totals = Counter(sample.sub_category for group in groups for sample in group)
    # Round half up, but never move a sub-category's last train item.
    targets = {sub: min(int(val_size * count + 0.5), count - 1) for sub, count in totals.items()}
    taken: Counter[str] = Counter()
    chosen: set[str] = set()
    for group in sorted(groups, key=lambda g: seeded_rank(seed, "val", g[0].id)):
        need = Counter(sample.sub_category for sample in group)
        if all(taken[sub] + count <= targets[sub] for sub, count in need.items()):
            taken.update(need)
            chosen.update(sample.id for sample in group)
    return chosen


def assign_splits(samples: list[Sample], seed: int, val_size: float = 0.0,
                  quotas: dict[str, int] | None = None,
                  targets: dict[str, dict[str, int]] | None = None) -> SplitPlan:
    """Final split membership from the judged samples; pure, so tests can call it directly.

    ``targets`` (side -> sub-category -> cap, for ``train`` and ``test``) trims each side."""
    kept_groups, excluded = resolve_leakage(leakage_groups(samples))
    train_groups = [group for group in kept_groups if group[0].side == "train"]
    test = [sample for group in kept_groups if group[0].side == "test" for sample in group]
    if quotas:
        test, over = apply_quotas(test, quotas, seed)
        excluded += over
    targets = targets or {}
    if "test" in targets:
        test, over = apply_quotas(test, targets["test"], seed, reason=OVER_TARGET)
        excluded += over
    if "train" in targets:
        train = [sample for group in train_groups for sample in group]
        train, over = apply_quotas(train, targets["train"], seed, ("train",), OVER_TARGET)
        excluded += over
        left = {sample.id for sample in train}
        train_groups = [kept for group in train_groups
                        if (kept := [sample for sample in group if sample.id in left])]
    val_ids = carve_val(train_groups, val_size, seed)
    splits: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    for group in train_groups:
        for sample in group:
            if sample.id in val_ids:
                sample = sample.model_copy(update={"split": "val"})
            splits[sample.split].append(sample)
    for sample in test:
        splits[sample.split].append(sample)
    for members in splits.values():
        members.sort(key=lambda sample: sample.id)
    return SplitPlan(splits, sorted(excluded, key=lambda e: e.id))


# -- files -----------------------------------------------------------------------------------

def write_splits(run: RunDir, samples: list[Sample], seed: int, val_size: float = 0.0,
                 quotas: dict[str, int] | None = None,
                 targets: dict[str, dict[str, int]] | None = None) -> SplitPlan:
    """Assign, then write one JSONL per split and ``splits/manifest.json``.

    The manifest lists every id with its split, every excluded id with its reason, and the
    sha256 of each split file.
    """
    plan = assign_splits(samples, seed, val_size, quotas, targets)
    hashes = {}
    for split, members in plan.splits.items():
        if split in OPTIONAL_SPLITS and not members:
            split_file(run, split).unlink(missing_ok=True)
            continue
        text = "".join(sample.model_dump_json() + "\n" for sample in members)
        write_text_atomic(split_file(run, split), text)
        hashes[f"{split}.jsonl"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    manifest: dict[str, Any] = {
        "seed": seed,
        "val_size": val_size,
        "quotas": dict(sorted((quotas or {}).items())),
        **({"targets": {side: dict(sorted(caps.items())) for side, caps in targets.items()}}
           if targets else {}),
        "counts": {split: len(members) for split, members in plan.splits.items()
                   if members or split not in OPTIONAL_SPLITS},
        "files": hashes,
        "ids": {sample.id: sample.split for sample in
                sorted((s for members in plan.splits.values() for s in members), key=lambda s: s.id)},
        "excluded": [exclusion.as_dict() for exclusion in plan.excluded],
        "excluded_by_reason": dict(sorted(Counter(e.reason for e in plan.excluded).items())),
    }
    write_text_atomic(run.splits_dir / "manifest.json", dump_json(manifest))
    return plan
