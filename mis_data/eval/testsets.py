"""Test sets as the eval reads them: the MIS layout and the Hugging Face export.

Two layouts hold the same items (docs/formats.md §4-5): ``mis_test/mis_{easy,hard,real}.json``
(JSON arrays with ``id, category, sub_category, question, image_path1, image_path2``, paths
relative to ``mis_test/``; a build's ``export/mis`` and the released MIS files alike), and a
Hugging Face folder (configs easy/hard/real with split ``test`` as ``export/hf`` writes them,
or one config with splits easy/hard/real as the released ``Tuwhy/MIS_Test``; images embedded).
The low-level readers (``mis_files``, ``hf_tables``, ``image_bytes``) live in
``mis_data.benchmarks``, which ``mis-data decontaminate`` reads benchmarks with too, so the two
commands agree on what a test set is.

Images go into the eval's own content-addressed store before anything is asked, and requests
name them by sha256; ``raw_index.jsonl`` remembers which source bytes became which stored image,
so a rerun re-hashes the files but never re-encodes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from mis_data.benchmarks import hf_tables, image_bytes, mis_files, mis_root, read_array
from mis_data.core.config import ConfigError
from mis_data.core.records import MAX_IMAGES
from mis_data.core.rundir import complete_lines
from mis_data.eval.config import SPLITS, TestSetSpec
from mis_data.export.awareness import FILE as AWARENESS_FILE
from mis_data.images.store import BadImage, ImageStore, StoredImage


@dataclass(frozen=True)
class TestItem:
    """One question and its images (two in MIS, up to four), with what the tables group by."""

    __test__ = False  # not a pytest class, despite the name

    test_set: str
    split: str
    id: str
    category: str
    sub_category: str
    question: str
    image_path1: str
    image_path2: str
    cell: str | None = None  # "SiSt→S" marks a benign item scored for over-refusal
    image_path3: str | None = None  # a test set with more images per item
    image_path4: str | None = None
    expected: str | None = None  # an awareness item's right answer: "No" (unsafe) or "Yes"

    @property
    def key(self) -> str:
        """Unique across the eval (test set, split, id): the key of every line written about the item."""
        return f"{self.test_set}/{self.split}/{self.id}"

    @property
    def image_paths(self) -> list[str]:
        """The item's image paths in order (empty strings where a dataset embeds the images)."""
        more = [path for path in (self.image_path3, self.image_path4) if path is not None]
        return [self.image_path1, self.image_path2, *more]

    def fields(self) -> dict[str, Any]:
        """The item's columns for a ``ResponseLine``; optional ones only when set."""
        data = {"key": self.key, "test_set": self.test_set, "split": self.split, "id": self.id,
                "category": self.category, "sub_category": self.sub_category,
                "question": self.question, "image_path1": self.image_path1,
                "image_path2": self.image_path2}
        more = {key: value for key, value in (("image_path3", self.image_path3),
                                              ("image_path4", self.image_path4)) if value is not None}
        return (data | more | ({"cell": self.cell} if self.cell else {})
                | ({"expected": self.expected} if self.expected else {}))


@dataclass(frozen=True)
class EvalItem:
    """A test item whose images are in the store (``images``), or why they are not."""

    item: TestItem
    images: tuple[str, ...] | None
    problem: str | None = None

    @property
    def sha256(self) -> str:
        """What the answer depends on: a recorded answer to other content is asked again."""
        content = [self.item.question, list(self.images or ()), self.problem]
        return hashlib.sha256(json.dumps(content).encode("utf-8")).hexdigest()


# -- the eval's readers ----------------------------------------------------------------------

Source = tuple[TestItem, list[bytes | None] | str]  # images, or why they cannot be read


def awareness_file(path: Path) -> Path | None:
    """The ``awareness.jsonl`` of an awareness export folder, or of a run folder's export."""
    for file in (path / AWARENESS_FILE, path / "export" / "awareness" / AWARENESS_FILE):
        if file.is_file():
            return file
    return None


def detect_format(path: Path) -> str:
    """``mis``, ``hf`` or ``awareness`` for a test set folder (a run folder reads as its
    awareness export); anything else is a ``ConfigError``."""
    if awareness_file(path) is not None:
        return "awareness"
    if mis_files(path):
        return "mis"
    if (path / "README.md").is_file() or any(path.rglob("*.parquet")):
        return "hf"
    raise ConfigError(f"{path}: neither a MIS layout (mis_*.json) nor a Hugging Face dataset folder")


def make_item(spec: TestSetSpec, split: str, index: int, row: dict[str, Any], where: str) -> TestItem:
    """A ``TestItem`` from one row; ``where`` locates the row in the error for a missing field."""
    missing = [key for key in ("question", "category", "sub_category") if not row.get(key)]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    item_id = row.get("id")
    return TestItem(
        test_set=spec.label, split=split, id=str(item_id if item_id is not None else index + 1),
        category=str(row["category"]), sub_category=str(row["sub_category"]),
        question=str(row["question"]), image_path1=str(row.get("image_path1") or ""),
        image_path2=str(row.get("image_path2") or ""), cell=row.get("cell") or None,
        **{key: str(row[key]) for key in ("image_path3", "image_path4") if row.get(key)})


def read_mis(spec: TestSetSpec) -> Iterator[Source]:
    """The items of a MIS layout with their image bytes, or why an image is missing."""
    root = mis_root(spec.path)
    for split in spec.splits:
        file = root / f"mis_{split}.json"
        if not file.is_file():
            continue
        for index, row in enumerate(read_array(file)[:spec.limit]):
            item = make_item(spec, split, index, row, f"{file}[{index}]")
            paths = [root / path if path else None for path in item.image_paths]
            lost = [str(path) for path in paths if path is None or not path.is_file()]
            yield item, (f"image not found: {lost[0]}" if lost
                         else [path.read_bytes() for path in paths if path is not None])


def read_hf(spec: TestSetSpec) -> Iterator[Source]:
    """The items of a Hugging Face folder with their embedded image bytes, or why they are unusable."""
    for config, split, dataset, columns in hf_tables(str(spec.path)):
        group = config if config in SPLITS else split if split in SPLITS else None
        if group not in spec.splits or not columns:
            continue  # the train config, or a split this eval does not ask for
        for index, row in enumerate(dataset):
            if spec.limit is not None and index >= spec.limit:
                break
            item = make_item(spec, group, index, row, f"{spec.path} {config}/{split}[{index}]")
            images = [data for column in columns for data in image_bytes(row[column])]
            yield item, (images if 2 <= len(images) <= MAX_IMAGES and all(images)
                         else f"expected 2 to {MAX_IMAGES} embedded images, found "
                              f"{sum(map(bool, images))}")


def read_awareness(spec: TestSetSpec) -> Iterator[Source]:
    """The items of an awareness export (``mis_data.export.awareness``): its ``subset`` is the
    item's split, ``expected`` its right answer; at most ``limit`` items of each subset."""
    file = awareness_file(spec.path)
    if file is None:
        raise ConfigError(f"{spec.path}: no awareness.jsonl here or in export/awareness/ "
                          "(build with the awareness export, or `mis-data export RUN -f awareness`)")
    taken: dict[str, int] = {}
    for number, line in enumerate(complete_lines(file), start=1):
        where = f"{file}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where}: not valid JSON ({error.msg})") from None
        subset, paths = row.get("subset"), row.get("images")
        if row.get("expected") not in ("Yes", "No") or not subset or not isinstance(paths, list):
            raise ConfigError(f"{where}: an awareness row needs subset, expected (Yes or No) "
                              "and a list of images")
        if spec.limit is not None and taken.get(subset, 0) >= spec.limit:
            continue
        taken[subset] = taken.get(subset, 0) + 1
        named = {f"image_path{slot}": str(path) for slot, path in enumerate(paths, start=1)}
        item = make_item(spec, str(subset), number - 1, row | named, where)
        item = replace(item, expected=row["expected"])
        files = [file.parent / str(path) for path in paths]
        lost = [str(path) for path in files if not path.is_file()]
        yield item, (f"image not found: {lost[0]}" if lost
                     else f"expected 2 to {MAX_IMAGES} images, found {len(files)}"
                     if not 2 <= len(files) <= MAX_IMAGES
                     else [path.read_bytes() for path in files])


def read_test_set(spec: TestSetSpec) -> Iterator[Source]:
    """The items of one test set, read by its declared or detected format."""
    kind = detect_format(spec.path) if spec.format == "auto" else spec.format
    if kind == "awareness":
        return read_awareness(spec)
    return read_mis(spec) if kind == "mis" else read_hf(spec)


def ingest(specs: list[TestSetSpec], store: ImageStore, progress: bool = False) -> list[EvalItem]:
    """Every item of every test set, its images stored; duplicate keys are an error.

    Images not stored before are normalized by a thread pool (Pillow decodes and encodes
    outside the GIL), so a first run over thousands of photos uses every core.
    """
    from tqdm import tqdm

    index_path = store.root / "raw_index.jsonl"
    known: dict[str, str] = dict(json.loads(line) for line in complete_lines(index_path))
    store.root.mkdir(parents=True, exist_ok=True)
    items: list[EvalItem] = []
    seen: set[str] = set()
    batch: list[tuple[TestItem, list[str] | str]] = []  # raw shas, or why unusable
    jobs: dict[str, Future[StoredImage]] = {}
    workers = os.cpu_count() or 2

    def settle(index: IO[str]) -> None:
        failed: dict[str, str] = {}
        for raw, job in jobs.items():
            try:
                known[raw] = job.result().sha256
                index.write(json.dumps([raw, known[raw]]) + "\n")
            except BadImage as error:
                failed[raw] = f"bad image: {error}"
        index.flush()
        for item, raws in batch:
            problem = raws if isinstance(raws, str) else next(
                (failed[raw] for raw in raws if raw in failed), None)
            items.append(EvalItem(item, None, problem) if problem
                         else EvalItem(item, tuple(known[raw] for raw in raws)))
        batch.clear()
        jobs.clear()

    with open(index_path, "a", encoding="utf-8") as index, ThreadPoolExecutor(workers) as pool, \
            tqdm(desc="images", unit="item", disable=not progress) as bar:
        for spec in specs:
            for item, images in read_test_set(spec):
                if item.key in seen:
                    raise ConfigError(f"{spec.path}: item id {item.id} appears twice in {item.split}")
                seen.add(item.key)
                if isinstance(images, str):
                    batch.append((item, images))
                    continue
                raws = [hashlib.sha256(data or b"").hexdigest() for data in images]
                for raw, data in zip(raws, images, strict=True):
                    if raw not in jobs and (raw not in known or not store.looks_complete(known[raw])):
                        jobs[raw] = pool.submit(store.put, data or b"")
                batch.append((item, raws))
                bar.update(1)
                if len(jobs) >= 8 * workers:
                    settle(index)
        settle(index)
    if not items:
        raise ConfigError("the test sets hold no items for the splits asked for")
    return items
