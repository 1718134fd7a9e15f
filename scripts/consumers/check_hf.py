"""Load a Hugging Face export folder with whatever ``datasets`` this Python has.

Run by ``scripts/check_consumers.sh`` in a venv per ``datasets`` version (3.6.0, the oldest the
export supports, and the newest), and by ``tests/export/test_export_hf_old_datasets.py``. Imports
nothing from mis-data: it must run where mis-data is not installed.

For every config the card declares: ``load_dataset(copy, config)`` from a copy of the folder
(so nothing outside it, such as the run's images, can be read), every row's images decoded,
``--images`` per row (two by default), and with ``--run-dir`` the row counts compared with the
run's split files.
The last line printed is ``RESULT <json>`` for callers that assert on it; exit 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# (config, split) of the export -> split file of the run (mis_data/export/hf.py LAYOUT).
RUN_SPLIT = {("train", "train"): "train", ("train", "validation"): "val", ("easy", "test"): "easy",
             ("hard", "test"): "hard", ("real", "test"): "real", ("twins", "test"): "twins"}


def expected_rows(run_dir: Path) -> dict[str, int]:
    counts = {}
    for (config, split), name in RUN_SPLIT.items():
        path = run_dir / "splits" / f"{name}.jsonl"
        if path.is_file():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if lines:
                counts[f"{config}/{split}"] = len(lines)
    return counts


def check(folder: Path, cache: Path, per_row: int = 2) -> tuple[dict[str, Any], list[str]]:
    import datasets
    from datasets import get_dataset_config_names, load_dataset
    from PIL import Image

    datasets.disable_progress_bars()
    found: dict[str, Any] = {}
    errors: list[str] = []
    configs = get_dataset_config_names(str(folder))
    for config in configs:
        try:
            loaded = load_dataset(str(folder), config, cache_dir=str(cache))
        except Exception as error:  # the point of this script: report what the loader raised
            errors.append(f"{config}: load_dataset raised {type(error).__name__}: "
                          f"{str(error).splitlines()[0][:300]}")
            continue
        for split, dataset in loaded.items():
            counts = sorted({len(row["images"]) for row in dataset})
            decoded = sum(isinstance(image, Image.Image) and image.size[0] > 0
                          for row in dataset for image in row["images"])
            found[f"{config}/{split}"] = {"rows": dataset.num_rows, "images_per_row": counts,
                                          "decoded": decoded, "features": str(dataset.features["images"])}
            if counts != [per_row]:
                errors.append(f"{config}/{split}: images per row {counts}, expected [{per_row}]")
            if decoded != per_row * dataset.num_rows:
                errors.append(f"{config}/{split}: {decoded} images decoded for {dataset.num_rows} rows")
            if "messages" in dataset.features:
                roles = [[m["role"] for m in row["messages"]] for row in dataset]
                if any(r != ["system", "user", "assistant"] for r in roles):
                    errors.append(f"{config}/{split}: messages are not a list of system/user/assistant dicts")
    return {"datasets": datasets.__version__, "configs": configs, "splits": found}, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the export/hf folder")
    parser.add_argument("--run-dir", type=Path, help="compare row counts with RUN_DIR/splits")
    parser.add_argument("--images", type=int, default=2, help="images every row has (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-hf-") as temp:
        copy = Path(temp) / "hf"
        shutil.copytree(args.folder, copy)
        result, errors = check(copy, Path(temp) / "cache", args.images)
    if args.run_dir:
        expected = expected_rows(args.run_dir)
        got = {name: split["rows"] for name, split in result["splits"].items()}
        if got != expected:
            errors.append(f"row counts {got} differ from the run's splits {expected}")
    for name, split in result["splits"].items():
        print(f"  {name}: {split['rows']} rows, {split['decoded']} images decoded ({split['features']})")
    for error in errors:
        print(f"  error: {error}")
    result["errors"] = errors
    print("RESULT " + json.dumps(result))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
