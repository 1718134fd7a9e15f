"""The finished sample and the split files: what splits write and exports, stats and review read."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict

from mis_data.core.records import (
    ImageRef,
    OptionalFields,
    RewriteRecord,
    RiskStatement,
    SlotValues,
    Vote,
)
from mis_data.core.rundir import RunDir

SPLITS = ("train", "val", "easy", "hard", "real", "twins")
TEST_SPLITS = ("easy", "hard", "real", "twins")
OPTIONAL_SPLITS = ("twins",)  # no file while empty: a build without twins writes what it did before
GENERAL = "General"  # category and sub-category of general (non-safety) samples mixed into train


class Sample(SlotValues, OptionalFields):
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
    risks: list[RiskStatement] | None = None  # labels.style: dream
    cell: str | None = None  # HoliSafe's cell, on every sample of a build with twins
    twin_of: str | None = None  # a benign twin's source sample
    twin_kind: str | None = None  # a benign twin's kind (swap_image, benign_text, alarming_text)
    object3: str | None = None  # images_per_sample 3 or 4
    image3: ImageRef | None = None
    object4: str | None = None
    image4: ImageRef | None = None
    rewrite: RewriteRecord | None = None  # rewrite: (VLMGuard-R1), a train-side sample's row

    optional_fields = ("risks", "cell", "twin_of", "twin_kind", "object3", "image3", "object4",
                       "image4", "rewrite")

    @property
    def side(self) -> str:
        """``train`` for train/val, ``test`` for easy/hard/real."""
        return "test" if self.split in TEST_SPLITS else "train"


def split_file(run: RunDir, split: str) -> Path:
    """The JSONL file of one split in ``splits/``."""
    return run.splits_dir / f"{split}.jsonl"


def read_splits(run: RunDir) -> dict[str, list[Sample]]:
    """The current split files; an absent split is empty."""
    result = {}
    for split in SPLITS:
        result[split] = run.read(f"splits/{split}", Sample)
    return result
