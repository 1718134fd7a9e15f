"""Check an InternVL meta file and its JSONL the way InternVL's fine-tuning loader reads them.

InternVL's real loader (``internvl_chat/internvl/train/internvl_chat_finetune.py``) needs GPUs,
``torch.distributed``, the tokenizer and weights, and swaps a broken sample for a random other
one, so it cannot be run here and would not tell. This is a small, independent re-statement of
its rules (docs/formats.md §1.1-§1.2 and §8), stdlib + Pillow, importing nothing from mis-data
(so it does not share mis-data's own validator's mistakes):

- meta: a JSON object of datasets, each with ``root``, ``annotation`` (``.jsonl``, asserted),
  ``data_augment`` and ``repeat_time`` (KeyError otherwise), optional integer ``max_dynamic_patch``;
- annotation: read with ``readlines`` and ``json.loads`` per line;
- ``image``: a non-empty list (the multi-image path), each ``os.path.join(root, p)`` opened with
  PIL and ``convert("RGB")``;
- ``conversations``: optional leading ``system``, then ``human``/``gpt`` alternating, every turn
  with ``value`` (the docs' ``text`` is a typo), no other roles;
- ``<image>`` in human turns == number of images (fewer fails the loader's assert, more is left
  as literal text), none in gpt turns, no ``<img>``, ``</img>``, ``<IMG_CONTEXT>`` anywhere;
- ``width_list``/``height_list``, when present, one per image and equal to the real sizes.

InternVL opens ``root`` and ``annotation`` from the folder training starts in, so this runs from
an empty folder when the meta's paths are absolute, and from the meta's folder otherwise (the
only place relative paths work, as the README says); it prints which.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

SPECIAL = ("<img>", "</img>", "<IMG_CONTEXT>")


def check_record(record: dict, root: str) -> list[str]:
    errors = []
    images = record.get("image")
    if not isinstance(images, list) or not images:
        return ["'image' is not a non-empty list (not the multi-image path)"]
    sizes = []
    for path in images:
        try:
            with Image.open(os.path.join(root, path)) as picture:
                sizes.append(picture.convert("RGB").size)
        except Exception as error:
            errors.append(f"image {os.path.join(root, path)}: {type(error).__name__}")
            sizes.append(None)
    turns = record.get("conversations") or []
    if turns and turns[0].get("from") == "system":
        turns = turns[1:]
    human_tags = 0
    for index, turn in enumerate(turns):
        expected = "human" if index % 2 == 0 else "gpt"
        if turn.get("from") != expected:
            errors.append(f"turn {index}: from {turn.get('from')!r}, expected {expected!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            errors.append(f"turn {index}: no 'value'")
            continue
        if turn.get("from") == "human":
            human_tags += value.count("<image>")
        elif "<image>" in value:
            errors.append(f"turn {index}: <image> in a gpt turn")
        errors += [f"turn {index}: contains {token}" for token in SPECIAL if token in value]
    if not turns or len(turns) % 2:
        errors.append(f"{len(turns)} turns: must be human/gpt pairs")
    if human_tags != len(images):
        errors.append(f"{human_tags} <image> in human turns for {len(images)} images")
    for key, axis in (("width_list", 0), ("height_list", 1)):
        if key in record:
            real = [size[axis] if size else None for size in sizes]
            if record[key] != real:
                errors.append(f"{key} {record[key]} but the images measure {real}")
    return errors


def check_entry(name: str, entry: dict) -> tuple[int, list[str]]:
    missing = [key for key in ("root", "annotation", "data_augment", "repeat_time") if key not in entry]
    if missing:
        return 0, [f"{name}: missing {missing}"]
    if not str(entry["annotation"]).endswith("jsonl"):
        return 0, [f"{name}: annotation must end with jsonl"]
    if "max_dynamic_patch" in entry and not isinstance(entry["max_dynamic_patch"], int):
        return 0, [f"{name}: max_dynamic_patch must be an int"]
    repeat = entry["repeat_time"]
    if repeat > 1 and int(repeat) != repeat:
        return 0, [f"{name}: repeat_time above 1 must be an integer"]
    try:
        with open(entry["annotation"]) as handle:
            lines = handle.readlines()
    except OSError as error:
        return 0, [f"{name}: annotation: {error}"]
    errors = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(f"{name} line {number}: {error.msg}")
            continue
        errors += [f"{name} line {number}: {e}" for e in check_record(record, entry["root"])]
    return len(lines), errors


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check_internvl.py META_JSON", file=sys.stderr)
        return 2
    meta_path = Path(sys.argv[1]).resolve()
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    relative = any(not os.path.isabs(str(entry.get(key, ""))) for entry in meta.values()
                   for key in ("root", "annotation"))
    failed = False
    with tempfile.TemporaryDirectory(prefix="check-internvl-") as empty:
        cwd = meta_path.parent if relative else Path(empty)
        os.chdir(cwd)
        print(f"  working folder: {cwd}" + (" (the meta's paths are relative)" if relative else ""))
        for name, entry in meta.items():
            rows, errors = check_entry(name, entry)
            print(f"  {name}: {rows} records, {len(errors)} error(s)")
            for error in errors[:3]:
                print(f"    error: {error}")
            if len(errors) > 3:
                print(f"    ... and {len(errors) - 3} more")
            failed = failed or bool(errors) or not rows
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
