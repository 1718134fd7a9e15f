"""A local Hugging Face dataset repository: per-config Parquet with embedded images + a card.

docs/formats.md §4: one config per split group — ``train`` (splits ``train`` and, when carved,
``validation``) and ``easy`` / ``hard`` / ``real`` (split ``test`` each) — with files at
``<config>/<split>-00000-of-00001.parquet`` (more shards past 500 MB of images, named as
``push_to_hub`` names them) and the configs declared in ``README.md`` with the pattern
``<config>/<split>-*``, which is what both ``load_dataset(folder, config)`` and the Hub read.

The rows go through ``datasets`` (``Dataset.from_dict`` with explicit ``Features``, then
``embed_table_storage``, which puts the PNG bytes inside so the folder loads after the run's
images are gone), but the Parquet is written here with pyarrow, for one reason: the features
stored in the file's ``huggingface`` metadata. ``datasets`` >= 4 writes ``"_type": "List"``,
which every 3.x release rejects (``ValueError: Feature type 'List' not found``), although the
data is the same. So the metadata is written in the 3.x form — ``Sequence(Image())`` for the
images and the plain ``[{...}]`` list for the messages — which 3.x reads as a list of images and
a list of dicts, and 4.x/5.x read back as ``List(Image())`` and ``List({...})``. Loading is
checked with datasets 3.6.0 (the oldest supported), 4.0.0 and 5.2.0
(tests/export/test_export_hf_old_datasets.py, scripts/check_consumers.sh).

The embedded image name is the store's ``<sha256>.png`` basename, never a run path, and the
writer options are fixed here (no timestamp is written; pyarrow records only its version), so
the same run gives the same bytes wherever it lives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import (
    Dataset,
    Features,
    Image,
    List,
    Value,
)
from datasets.table import embed_table_storage

from mis_data.core.records import scrub_template_tokens
from mis_data.core.samples import Sample
from mis_data.export.card import SplitSize, render_card
from mis_data.export.common import SYSTEM_PROMPT, RunInfo, cell_columns
from mis_data.export.llamafactory import IMAGE_TOKEN
from mis_data.images.sources import quiet_datasets
from mis_data.images.store import ImageStore

TRAIN_FEATURES = Features({
    "id": Value("string"),
    "images": List(Image()),
    "messages": List({"role": Value("string"), "content": Value("string")}),
    "question": Value("string"),
    "label": Value("string"),
    "category": Value("string"),
    "sub_category": Value("string"),
})
# labels.style: dream keeps each train row's risk statements as structured data too.
RISKS_FEATURE = List({"content": Value("string"), "source": Value("string"),
                      "category": Value("string")})
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
# Rows per Parquet row group: reading one row reads its whole group, and image rows are big
# (datasets 3.x used 100 for image data; the Hub's viewer pages by row group).
ROW_GROUP_ROWS = 100
# Content-defined chunking (pyarrow >= 21), as datasets >= 4.1 writes it: a rebuilt dataset
# re-uploads only the pages that changed. Same options as datasets' default.
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}

# (config, split in the repo, split of the run); order = order in the card.
LAYOUT = (
    ("train", "train", "train"),
    ("train", "validation", "val"),
    ("easy", "test", "easy"),
    ("hard", "test", "hard"),
    ("real", "test", "real"),
    ("twins", "test", "twins"),
)
# A build with twins tags every row with its HoliSafe cell and a twin with its source's id.
CELL_FEATURES = {"cell": Value("string"), "twin_of": Value("string")}


def train_row(sample: Sample, store: ImageStore) -> dict[str, Any]:
    """One train row: the chat ``messages`` plus flat columns, with template tokens scrubbed."""
    question = scrub_template_tokens(sample.question)
    label = scrub_template_tokens(sample.label or "")
    return {
        "id": sample.id,
        "images": image_files(sample, store),
        "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                     {"role": "user", "content": IMAGE_TOKEN * len(sample.images) + question},
                     {"role": "assistant", "content": label}],
        "question": question,
        "label": label,
        "category": sample.category,
        "sub_category": sample.sub_category,
        **({"risks": [risk.model_dump() for risk in sample.risks]} if sample.risks is not None
           else {}),
        **cell_columns(sample),
    }


def image_files(sample: Sample, store: ImageStore) -> list[str]:
    """The sample's stored image files in order (embedded into the Parquet when written)."""
    return [str(store.path_for(image.sha256)) for image in sample.images]


def train_features(samples: list[Sample]) -> Features:
    """The train config's columns; ``risks`` only for a build with DREAM-style labels."""
    features = dict(TRAIN_FEATURES)
    if any(sample.risks is not None for sample in samples):
        features["risks"] = RISKS_FEATURE
    return Features({**features, **cells_of(samples)})


def cells_of(samples: list[Sample]) -> dict[str, Any]:
    """The cell columns, only for a build that has them (twins)."""
    return CELL_FEATURES if any(sample.cell is not None for sample in samples) else {}


def benchmark_row(number: int, split: str, sample: Sample, store: ImageStore) -> dict[str, Any]:
    """Numbered from 1 with the MIS layout's paths, so it matches ``mis_test/mis_<split>.json``."""
    return {
        "id": number,
        "category": sample.category,
        "sub_category": sample.sub_category,
        "question": scrub_template_tokens(sample.question),
        "images": image_files(sample, store),
        **{f"image_path{slot}": f"{split}_image/{number}/object{slot}.png"
           for slot in range(1, len(sample.images) + 1)},
        **cell_columns(sample),
    }


def test_features(samples: list[Sample]) -> Features:
    """A benchmark config's columns: one ``image_path<k>`` per image (MIS's two, or up to four),
    and the cell columns of a build with twins."""
    count = max((len(sample.images) for sample in samples), default=2)
    paths = {f"image_path{slot}": Value("string") for slot in range(3, count + 1)}
    return Features({**TEST_FEATURES, **paths, **cells_of(samples)})


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


def datasets3_form(feature: Any) -> Any:
    """A feature's serialized form as datasets 3.x writes and reads it.

    ``datasets`` >= 4 serializes lists as ``{"feature": ..., "_type": "List"}``; 3.x knows
    ``Sequence`` (``{"feature": ..., "_type": "Sequence"}``) and, for a list of dicts, the plain
    ``[{...}]``, which keeps the rows a list of dicts (``Sequence`` of a dict would turn them
    into a dict of lists in 3.x). Both forms read back as ``List`` in 4.x and later.
    """
    if isinstance(feature, list):
        return [datasets3_form(item) for item in feature]
    if not isinstance(feature, dict):
        return feature
    if feature.get("_type") == "List":
        if set(feature) - {"feature", "_type"}:
            raise ValueError(f"no datasets 3.x form for {feature}")  # e.g. a fixed length
        inner = datasets3_form(feature["feature"])
        if isinstance(inner, dict) and "_type" not in inner:
            return [inner]
        return {"feature": inner, "_type": "Sequence"}
    return {key: datasets3_form(value) for key, value in feature.items()}


def stored_metadata(features: Features) -> dict[str, str]:
    """The ``huggingface`` schema metadata ``load_dataset`` reads the features from."""
    return {"huggingface": json.dumps({"info": {"features": datasets3_form(features.to_dict())}})}


def leaf_paths(name: str, arrow_type: pa.DataType) -> list[str]:
    """Parquet's column paths under one field (``messages.list.element.role``)."""
    if pa.types.is_struct(arrow_type):
        return [leaf for child in arrow_type for leaf in leaf_paths(f"{name}.{child.name}", child.type)]
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return leaf_paths(f"{name}.list.element", arrow_type.value_type)
    return [name]


def parquet_options(table: pa.Table, features: Features) -> dict[str, Any]:
    """The per-column options datasets uses: image columns (already-compressed PNG bytes)
    plain and uncompressed, every other column snappy with dictionary encoding."""
    compression: dict[str, str] = {}
    encoding: dict[str, str] = {}
    dictionary: list[str] = []
    for field in table.schema:
        image_column = features[field.name] == List(Image())
        for leaf in leaf_paths(field.name, field.type):
            compression[leaf] = "none" if image_column else "snappy"
            if image_column:
                encoding[leaf] = "PLAIN"
            else:
                dictionary.append(leaf)
    options: dict[str, Any] = {"compression": compression, "column_encoding": encoding,
                               "use_dictionary": dictionary, "write_page_index": True}
    if int(pa.__version__.split(".")[0]) >= 21:
        options["use_content_defined_chunking"] = CDC_OPTIONS
    return options


def write_parquet(rows: list[dict[str, Any]], features: Features, path: Path) -> None:
    """Rows -> Arrow table with embedded image bytes -> Parquet with 3.x-readable metadata."""
    columns = {name: [row[name] for row in rows] for name in features}
    table = embed_table_storage(Dataset.from_dict(columns, features=features).data.table)
    table = table.replace_schema_metadata(stored_metadata(features))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path), row_group_size=ROW_GROUP_ROWS, **parquet_options(table, features))


def export_hf(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
              info: RunInfo | None = None, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
    """Write every non-empty split's Parquet shards, then the README card declaring them."""
    data_files: dict[str, list[dict[str, str]]] = {}
    sizes: dict[str, list[SplitSize]] = {}
    with quiet_datasets():
        for config, repo_split, split in LAYOUT:
            samples = sorted(splits.get(split, []), key=lambda s: s.id)
            if not samples:
                continue
            if config == "train":
                rows, features = [train_row(s, store) for s in samples], train_features(samples)
            else:
                rows = [benchmark_row(n, split, s, store) for n, s in enumerate(samples, start=1)]
                features = test_features(samples)
            rows = [{name: row.get(name) for name in features} for row in rows]  # a twin has no risks
            groups = shards(rows, max_shard_bytes)
            written = 0
            for index, group in enumerate(groups):
                name = f"{config}/{repo_split}-{index:05d}-of-{len(groups):05d}.parquet"
                write_parquet(group, features, out / name)
                written += (out / name).stat().st_size
            data_files.setdefault(config, []).append({"split": repo_split,
                                                      "path": f"{config}/{repo_split}-*"})
            sizes.setdefault(config, []).append(SplitSize(repo_split, written, len(rows)))
    card = render_card(data_files, sizes, splits, info or RunInfo())
    (out / "README.md").write_text(card, encoding="utf-8")
