"""Load every entry of a LLaMA-Factory ``dataset_info.json`` with LLaMA-Factory itself (CPU only).

Run by ``scripts/check_consumers.sh`` in a venv with ``llamafactory==0.9.5``; imports nothing
from mis-data. docs/formats.md §8: the dataset list is read by ``get_dataset_list``, each file loaded
and converted by ``_load_single_dataset`` (``datasets.load_dataset`` + the sharegpt converter,
which joins image paths to ``media_dir``), then for every row the placeholder count is checked
by ``mm_plugin._validate_messages`` and the images are opened by ``_regularize_images`` — the
call that raised ``FileNotFoundError`` during tokenization in issue #18. Tokenizer and model
are not needed for any of that. Runs from an empty working folder, so a path can resolve only
through ``media_dir`` or by being absolute, as in a training job started elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "ERROR")  # one log line per image otherwise
IMAGE_PIXELS = {"image_max_pixels": 768 * 768, "image_min_pixels": 32 * 32}  # LLaMA-Factory's defaults


def check_entry(name: str, dataset_dir: Path, media_dir: Path | None, work: Path) -> list[str]:
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.mm_plugin import get_mm_plugin
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments
    from transformers import Seq2SeqTrainingArguments

    data_args = DataArguments(dataset=[name], dataset_dir=str(dataset_dir),
                              **({"media_dir": str(media_dir)} if media_dir else {}))
    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(work / "cache"))
    training_args = Seq2SeqTrainingArguments(output_dir=str(work / "out"), report_to="none")
    (attr,) = get_dataset_list([name], str(dataset_dir))
    dataset = _load_single_dataset(attr, model_args, data_args, training_args)
    plugin = get_mm_plugin("base", image_token="<image>")
    lines = (dataset_dir / attr.dataset_name).read_text(encoding="utf-8").splitlines()
    records = sum(1 for line in lines if line.strip())
    errors, images = [], 0
    if dataset.num_rows != records:
        errors.append(f"{dataset.num_rows} rows loaded from {records} records")
    for index, row in enumerate(dataset):
        where = f"{attr.dataset_name} row {index + 1}"
        if len(row["_prompt"]) % 2 != 1 or len(row["_response"]) != 1:
            errors.append(f"{where}: skipped by the converter (invalid roles or message count)")
            continue
        try:
            plugin._validate_messages(row["_prompt"] + row["_response"], row["_images"] or [], [], [])
            images += len(plugin._regularize_images(row["_images"] or [], **IMAGE_PIXELS)["images"])
        except Exception as error:
            errors.append(f"{where}: {type(error).__name__}: {str(error)[:200]}")
    print(f"  {name}: {dataset.num_rows} rows, {images} images opened, {len(errors)} error(s)")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path, help="the export/llamafactory folder")
    parser.add_argument("--media-dir", type=Path, help="LLaMA-Factory's media_dir (default: dataset_dir)")
    args = parser.parse_args()
    dataset_dir = args.dataset_dir.resolve()
    names = list(json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8")))
    failed = False
    with tempfile.TemporaryDirectory(prefix="check-llamafactory-") as temp:
        work = Path(temp)
        (work / "cwd").mkdir()
        os.chdir(work / "cwd")
        for name in names:
            try:
                errors = check_entry(name, dataset_dir, args.media_dir, work)
            except Exception as error:
                errors = [f"loading raised {type(error).__name__}: {str(error)[:300]}"]
                print(f"  {name}: not loaded")
            for error in errors[:3]:
                print(f"    error: {error}")
            if len(errors) > 3:
                print(f"    ... and {len(errors) - 3} more")
            failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
