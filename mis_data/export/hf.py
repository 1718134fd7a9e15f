"""A local Hugging Face dataset repository: per-config Parquet with embedded images + a card.

FORMATS.md §4: one config per split group — ``train`` (splits ``train`` and, when carved,
``validation``) and ``easy`` / ``hard`` / ``real`` (split ``test`` each) — with files at
``<config>/<split>-00000-of-00001.parquet`` (more shards past 500 MB of images, named as
``push_to_hub`` names them) and the configs declared in ``README.md`` with the pattern
``<config>/<split>-*``, which is what both ``load_dataset(folder, config)`` and the Hub read.

The tables are built with ``datasets`` itself (``Dataset.from_dict`` with explicit ``Features``,
``images: List(Image())``). ``to_parquet`` writes image *paths* only, so ``embed_table_storage``
runs first and puts the PNG bytes inside: the folder loads after the run's images are gone.
The embedded image name is the store's ``<sha256>.png`` basename, never a run path, and
``to_parquet`` writes no timestamp (pyarrow records only its version), so the same run gives
the same bytes wherever it lives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datasets import (
    Dataset,
    Features,
    Image,
    List,
    Value,
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)
from datasets.table import embed_table_storage

from mis_data.export.card import render_card
from mis_data.export.common import SYSTEM_PROMPT, RunInfo
from mis_data.export.llamafactory import USER_PREFIX
from mis_data.images.store import ImageStore
from mis_data.records import scrub_template_tokens
from mis_data.splits import Sample

TRAIN_FEATURES = Features({
    "id": Value("string"),
    "images": List(Image()),
    "messages": List({"role": Value("string"), "content": Value("string")}),
    "question": Value("string"),
    "label": Value("string"),
    "category": Value("string"),
    "sub_category": Value("string"),
})
TEST_FEATURES = Features({
    "id": Value("int64"),
    "category": Value("string"),
    "sub_category": Value("string"),
    "question": Value("string"),
    "images": List(Image()),
    "image_path1": Value("string"),
    "image_path2": Value("string"),
})

MAX_SHARD_BYTES = 500 * 2**20

# (config, split in the repo, split of the run); order = order in the card.
LAYOUT = (
    ("train", "train", "train"),
    ("train", "validation", "val"),
    ("easy", "test", "easy"),
    ("hard", "test", "hard"),
    ("real", "test", "real"),
)


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence datasets' progress bars for one export, restoring the caller's setting."""
    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def train_row(sample: Sample, store: ImageStore) -> dict[str, Any]:
    question = scrub_template_tokens(sample.question)
    label = scrub_template_tokens(sample.label or "")
    return {
        "id": sample.id,
        "images": [str(store.path_for(sample.image1.sha256)), str(store.path_for(sample.image2.sha256))],
        "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                     {"role": "user", "content": USER_PREFIX + question},
                     {"role": "assistant", "content": label}],
        "question": question,
        "label": label,
        "category": sample.category,
        "sub_category": sample.sub_category,
    }


def benchmark_row(number: int, split: str, sample: Sample, store: ImageStore) -> dict[str, Any]:
    """Numbered from 1 with the MIS layout's paths, so it matches ``mis_test/mis_<split>.json``."""
    return {
        "id": number,
        "category": sample.category,
        "sub_category": sample.sub_category,
        "question": scrub_template_tokens(sample.question),
        "images": [str(store.path_for(sample.image1.sha256)), str(store.path_for(sample.image2.sha256))],
        "image_path1": f"{split}_image/{number}/object1.png",
        "image_path2": f"{split}_image/{number}/object2.png",
    }


def shards(rows: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Consecutive groups of rows whose images stay under ``max_bytes`` (at least one row each).

    Like ``push_to_hub``'s 500 MB shards: memory stays bounded for a full-size build (about
    8k PNGs), and the cut points depend on the data only, so they are reproducible.
    """
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for row in rows:
        row_bytes = sum(Path(path).stat().st_size for path in row["images"])
        if groups[-1] and size + row_bytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row_bytes
    return groups


def write_parquet(rows: list[dict[str, Any]], features: Features, path: Path) -> None:
    """Rows -> Dataset -> embedded image bytes -> Parquet."""
    columns = {name: [row[name] for row in rows] for name in features}
    dataset = Dataset.from_dict(columns, features=features)
    dataset = dataset.with_format("arrow").map(embed_table_storage, batched=True).with_format(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(path))


def export_hf(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
              info: RunInfo | None = None, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
    """Write every non-empty split's Parquet shards, then the README card declaring them."""
    data_files: dict[str, list[dict[str, str]]] = {}
    with quiet_progress():
        for config, repo_split, split in LAYOUT:
            samples = sorted(splits.get(split, []), key=lambda s: s.id)
            if not samples:
                continue
            if config == "train":
                rows, features = [train_row(s, store) for s in samples], TRAIN_FEATURES
            else:
                rows = [benchmark_row(n, split, s, store) for n, s in enumerate(samples, start=1)]
                features = TEST_FEATURES
            groups = shards(rows, max_shard_bytes)
            for index, group in enumerate(groups):
                name = f"{config}/{repo_split}-{index:05d}-of-{len(groups):05d}.parquet"
                write_parquet(group, features, out / name)
            data_files.setdefault(config, []).append({"split": repo_split,
                                                      "path": f"{config}/{repo_split}-*"})
    card = render_card(data_files, splits, info or RunInfo())
    (out / "README.md").write_text(card, encoding="utf-8")
