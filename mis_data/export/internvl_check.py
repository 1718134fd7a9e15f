"""The InternVL export as InternVL's chat fine-tuning loader reads it (docs/formats.md §1, §8)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mis_data.export.checks import (
    IMAGE_TOKEN,
    INTERNVL_SPECIAL,
    ImageChecker,
    Report,
    jsonl_records,
    load_json,
)

# InternVL's multi-image prompt names each image before its tag: "Image-1: <image>\n".
IMAGE_LABEL = re.compile(r"Image-(\d+): <image>")


def check_internvl_turns(where: str, record: dict[str, Any], report: Report) -> None:
    """Turns alternate human/gpt, ``<image>`` only in human turns and once per image, labels in
    order, no InternVL special tokens."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        report.add(where, "'conversations' must be a non-empty list")
        return
    if isinstance(turns[0], dict) and turns[0].get("from") == "system":
        turns = turns[1:]
    human_images = 0
    for index, turn in enumerate(turns):
        expected = "human" if index % 2 == 0 else "gpt"
        if not isinstance(turn, dict):
            report.add(where, f"turn {index} is not an object")
            continue
        if turn.get("from") != expected:
            report.add(where, f"turn {index}: 'from' is {turn.get('from')!r}, expected {expected!r} "
                              "(turns alternate human/gpt)")
        value = turn.get("value")
        if not isinstance(value, str):
            hint = " ('text' is a docs typo; the loader reads 'value')" if "text" in turn else ""
            report.add(where, f"turn {index}: missing string 'value'{hint}")
            continue
        if turn.get("from") == "human":
            human_images += value.count(IMAGE_TOKEN)
        elif IMAGE_TOKEN in value:
            report.add(where, f"turn {index}: <image> in a gpt turn (never replaced by the loader)")
        for token in INTERNVL_SPECIAL:
            if token in value:
                report.add(where, f"turn {index}: contains {token} (breaks the image token count)")
    if len(turns) % 2:
        report.add(where, "the last turn must be from gpt")
    images = record.get("image")
    if isinstance(images, list) and human_images != len(images):
        report.add(where, f"{human_images} <image> in human turns for {len(images)} images")
    first = turns[0].get("value") if isinstance(turns[0], dict) else None
    numbers = [int(n) for n in IMAGE_LABEL.findall(first)] if isinstance(first, str) else []
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        report.add(where, f"image labels {numbers} are not Image-1, Image-2, ... in order")


def check_internvl_record(where: str, record: dict[str, Any], root: Path, images: ImageChecker,
                          report: Report) -> None:
    """Images open and match ``width_list``/``height_list``, plus the turn checks."""
    paths = record.get("image")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        report.add(where, "'image' must be a non-empty list of paths")
        paths = []
    if paths:
        report.image_count(where, len(paths))
    sizes = []
    for path in paths:
        size = images.check(root / path)
        if isinstance(size, str):
            report.add(where, size)
        sizes.append(size)
    check_internvl_turns(where, record, report)
    for key, axis in (("width_list", 0), ("height_list", 1)):
        if key not in record:
            continue
        values = record[key]
        if not isinstance(values, list) or len(values) != len(paths):
            report.add(where, f"'{key}' must list one size per image ({len(paths)})")
            continue
        real = [size[axis] if isinstance(size, tuple) else None for size in sizes]
        if any(r is not None and v != r for v, r in zip(values, real, strict=True)):
            report.add(where, f"'{key}' is {values} but the images measure {real}")


def validate_internvl(folder: Path, report: Report | None = None, **_: Any) -> Report:
    """``meta.json`` entries and every line of their annotation files (docs/formats.md §1)."""
    report, images = report or Report(), ImageChecker()
    meta_path = folder if folder.is_file() else folder / "meta.json"
    base = meta_path.parent
    if not meta_path.is_file():
        report.add(meta_path.name, "meta file not found")
        return report
    meta = load_json(meta_path, base, report)
    if meta is None:
        return report
    if not isinstance(meta, dict) or not meta:
        report.add(meta_path.name, "must be a JSON object of named datasets")
        return report
    for name, entry in meta.items():
        where = f"{meta_path.name}: {name}"
        if not isinstance(entry, dict):
            report.add(where, "entry must be an object")
            continue
        missing = [key for key in ("root", "annotation", "data_augment", "repeat_time") if key not in entry]
        if missing:
            report.add(where, f"missing key(s) {', '.join(missing)}")
        annotation = str(entry.get("annotation", ""))
        if not annotation.endswith(".jsonl"):
            report.add(where, f"annotation {annotation!r} must end with .jsonl (the loader asserts it)")
            continue
        if "max_dynamic_patch" in entry and not isinstance(entry["max_dynamic_patch"], int):
            report.add(where, "max_dynamic_patch must be an integer")
        annotation_path = base / annotation
        if not annotation_path.is_file() and Path(annotation).is_file():
            annotation_path = Path(annotation)
        if not annotation_path.is_file():
            report.add(where, f"annotation file not found: {annotation}")
            continue
        root = base / str(entry.get("root", ""))
        if not root.is_dir() and Path(str(entry.get("root", ""))).is_dir():
            root = Path(str(entry["root"]))  # InternVL itself resolves against the working dir
        relative = [key for key in ("root", "annotation") if not Path(str(entry.get(key, ""))).is_absolute()]
        if relative:
            report.warn(where, f"{' and '.join(relative)} relative: InternVL opens them from the folder "
                               f"training starts in, so they resolve only from {base.resolve()} "
                               "(start there, or export with --absolute-paths)")
        for line_where, record in jsonl_records(annotation_path, base, report):
            report.records += 1
            check_internvl_record(line_where, record, root, images, report)
    return report
