"""Test-set readers shared by ``mis-data eval`` and the build's decontamination step.

Two layouts hold the same items: the MIS layout (``mis_test/mis_{easy,hard,real}.json``, JSON
arrays whose image paths are relative to ``mis_test/``) and a Hugging Face dataset folder or Hub
name with embedded images. Both commands read benchmarks through these functions, so they agree
on what a test set is and on which image bytes belong to an item.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mis_data.core.config import ConfigError


def mis_root(folder: Path) -> Path:
    """The folder holding ``mis_*.json``: ``folder/mis_test`` when it exists, else ``folder``."""
    return folder / "mis_test" if (folder / "mis_test").is_dir() else folder


def mis_files(folder: Path) -> list[Path]:
    """The ``mis_*.json`` files of a MIS layout, sorted."""
    return sorted(mis_root(folder).glob("mis_*.json"))


def read_array(file: Path) -> list[dict[str, Any]]:
    """A MIS test file's JSON array of items, or a one-line ConfigError naming the file."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{file}: not a readable JSON file ({error})") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ConfigError(f"{file}: expected a JSON array of items")
    return data


def undecoded(feature: Any) -> Any:
    """The same image feature (alone or in a list) with decoding off, or None if not images."""
    import datasets

    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    if isinstance(getattr(feature, "feature", None), datasets.Image):
        return datasets.Sequence(datasets.Image(decode=False))
    return None


def hf_tables(name: str) -> Iterator[tuple[str, str, Any, list[str]]]:
    """(config, split, dataset with undecoded images, image columns) for every table."""
    import datasets

    from mis_data.images.sources import load_hf, quiet_datasets

    try:
        with quiet_datasets():
            configs = datasets.get_dataset_config_names(name)
            loaded = {config: load_hf(name, config) for config in configs}
    except Exception as error:  # any load failure means the test set is unusable
        raise ConfigError(f"{name}: cannot load as a dataset: {str(error).splitlines()[0]}") from None
    for config, splits in loaded.items():
        for split, dataset in splits.items():
            columns = [column for column, feature in dataset.features.items()
                       if undecoded(feature) is not None]
            for column in columns:
                dataset = dataset.cast_column(column, undecoded(dataset.features[column]))
            yield config, split, dataset, columns


def image_bytes(cell: Any) -> list[bytes | None]:
    """The bytes of an undecoded image cell (one image or a list), None where absent."""
    found = []
    for image in cell if isinstance(cell, list) else [cell]:
        image = image or {}
        data = image.get("bytes")
        if not data and image.get("path") and Path(image["path"]).is_file():
            data = Path(image["path"]).read_bytes()
        found.append(data or None)
    return found
