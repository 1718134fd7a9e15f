"""The Hugging Face dataset folder as ``datasets`` loads it: every config of the card, every
split (docs/formats.md §4), and stored features that ``datasets`` 3.x can read."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from mis_data.export.checks import Report, rel


def card_configs(folder: Path, report: Report) -> list[dict[str, Any]]:
    """The configs the card's front matter declares; an unreadable card is reported and gives none."""
    readme = folder / "README.md"
    if not readme.is_file():
        report.add("README.md", "not found")
        return []
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        report.add("README.md", "no YAML front matter")
        return []
    try:
        meta = yaml.safe_load(text[4:text.index("\n---\n", 4)]) or {}
    except yaml.YAMLError as error:
        report.add("README.md", f"invalid YAML front matter: {str(error).splitlines()[0]}")
        return []
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        report.add("README.md", "front matter declares no configs")
        return []
    return [c for c in configs if isinstance(c, dict) and c.get("config_name")]


# The feature types datasets 3.x can read from a file's metadata (its ``_FEATURE_TYPES``, 3.6.0);
# 4.0 added ``List``, which 3.x rejects with "Feature type 'List' not found".
DATASETS3_TYPES = frozenset({"Value", "ClassLabel", "Translation", "TranslationVariableLanguages",
                             "LargeList", "Sequence", "Array2D", "Array3D", "Array4D", "Array5D",
                             "Audio", "Image", "Video", "Pdf"})


def stored_types(feature: Any) -> set[str]:
    """Every ``_type`` in a serialized features dict."""
    if isinstance(feature, list):
        return set().union(*(stored_types(item) for item in feature))
    if not isinstance(feature, dict):
        return set()
    own = {feature["_type"]} if isinstance(feature.get("_type"), str) else set()
    return own.union(*(stored_types(value) for key, value in feature.items() if key != "_type"))


def check_stored_features(file: Path, folder: Path, report: Report) -> None:
    """The features a Parquet file declares must be readable by datasets 3.x (the oldest the
    export supports), or every config fails there before a row is read."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(file).metadata or {}
        features = json.loads(metadata.get(b"huggingface", b"{}")).get("info", {}).get("features", {})
    except Exception as error:  # a file that is not Parquet is load_dataset's problem to report
        report.add(rel(file, folder), f"unreadable Parquet schema ({type(error).__name__})")
        return
    unknown = sorted(stored_types(features) - DATASETS3_TYPES)
    if unknown:
        report.add(rel(file, folder), f"stores feature type(s) {', '.join(unknown)}: datasets < 4.0 "
                                      "cannot load it (ValueError: Feature type ... not found)")


def validate_hf(folder: Path, report: Report | None = None, **_: Any) -> Report:
    """``load_dataset(folder, config)`` for every config; every row's images decode, as many
    per row as the build has (``Report.image_count``), a test row with one path per image."""
    from datasets import Image as ImageFeature
    from datasets import List, load_dataset

    from mis_data.images.sources import quiet_datasets

    report = report or Report()
    with tempfile.TemporaryDirectory(prefix="mis-validate-") as cache, quiet_datasets():
        for config in card_configs(folder, report):
            name = config["config_name"]
            for data_file in config.get("data_files") or []:
                pattern = data_file.get("path", "") if isinstance(data_file, dict) else str(data_file)
                matches = sorted(folder.glob(pattern))
                if not matches:
                    report.add("README.md", f"config {name}: no file matches {pattern!r}")
                for file in matches:
                    if file.suffix == ".parquet":
                        check_stored_features(file, folder, report)
            try:
                loaded = load_dataset(str(folder), name, cache_dir=cache)
            except Exception as error:
                first = (str(error).splitlines() or [""])[0][:300]
                report.add("README.md", f"config {name}: load_dataset failed: "
                                        f"{type(error).__name__}: {first}")
                continue
            for split, dataset in loaded.items():
                where = f"{name}/{split}"
                if dataset.features.get("images") != List(ImageFeature()):
                    report.add(where, f"feature 'images' is {dataset.features.get('images')}, "
                                      "expected List(Image())")
                    continue
                for index, row in enumerate(dataset):
                    report.records += 1
                    pictures = row["images"]
                    report.image_count(f"{where}[{index}]", len(pictures))
                    paths = [key for key in row if key.startswith("image_path") and row[key]]
                    if name != "train" and len(paths) != len(pictures):
                        report.add(f"{where}[{index}]", f"{len(paths)} image_path columns set for "
                                                        f"{len(pictures)} images")
                    if not all(isinstance(p, Image.Image) and p.size[0] > 0 for p in pictures):
                        report.add(f"{where}[{index}]", "an image did not decode")
    return report
