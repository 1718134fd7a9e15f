"""Read ``mis_test/`` the way the MIS evaluation scripts do (DripNowhy/MIS ``evaluation/``).

The inference scripts need GPUs and model weights, and ``gpt_eval.py`` needs the OpenAI API, so
this re-states how they *read* the test set (docs/formats.md §5), stdlib + Pillow, importing nothing
from mis-data, from the folder that holds ``mis_test/`` (the scripts run from the MIS repo root
with ``./mis_test`` beside them):

- ``json.load`` of ``mis_test/mis_{easy,hard,real}.json`` (a JSON array; easy and hard must
  exist, real is optional);
- per item ``question``, ``category``, ``image_path1``, ``image_path2``, and each image at
  ``os.path.join('mis_test', path)`` opened with PIL (inference) and base64-encoded with its
  MIME type guessed from the first base64 character as ``gpt_eval.py`` does, which must be a
  type it knows (it falls back to JPEG for anything else);
- the item, plus a ``response``, must survive ``json.dumps`` (inference writes it per line) and
  carry the keys ``gpt_eval.main`` copies (``category``, ``question``, ``image_path1/2``).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from PIL import Image

# gpt_eval.py's table: first base64 character -> MIME type.
IMAGE_TYPES = {"/": "image/jpeg", "i": "image/png", "R": "image/gif", "U": "image/webp", "Q": "image/bmp"}
REQUIRED = ("id", "category", "sub_category", "question", "image_path1", "image_path2")


def check_item(item: dict) -> list[str]:
    missing = [key for key in REQUIRED if key not in item]
    if missing:
        return [f"missing {missing}"]
    errors = []
    if not isinstance(item["question"], str) or not item["question"].strip():
        errors.append("empty question")
    # gpt_eval reads image_path1 and image_path2; a build with more images per sample numbers
    # on (image_path3, ...), which MIS's scripts do not read: every path must still open.
    paths = [item[f"image_path{slot}"] for slot in range(1, 5) if f"image_path{slot}" in item]
    if len(set(paths)) < len(paths):
        errors.append("two image paths are the same")
    for path in paths:
        full = os.path.join("mis_test", path)
        try:
            with Image.open(full) as picture:
                picture.convert("RGB")
            with open(full, "rb") as handle:
                encoded = base64.b64encode(handle.read()).decode("utf-8")
        except Exception as error:
            errors.append(f"{full}: {type(error).__name__}")
            continue
        if encoded[:1] not in IMAGE_TYPES:
            errors.append(f"{full}: gpt_eval would send it as image/jpeg (first base64 char {encoded[:1]!r})")
    json.dumps({**item, "response": "..."}, ensure_ascii=False)
    return errors


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check_mis_eval.py FOLDER_WITH_mis_test", file=sys.stderr)
        return 2
    os.chdir(Path(sys.argv[1]).resolve())
    failed = False
    for split in ("easy", "hard", "real"):
        path = os.path.join("mis_test", f"mis_{split}.json")
        if not os.path.exists(path):
            if split != "real":
                print(f"  {path}: missing (the scripts default to it)")
                failed = True
            continue
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, list):
            print(f"  {path}: not a JSON array")
            failed = True
            continue
        errors = [f"item {index}: {e}" for index, item in enumerate(data) for e in check_item(item)]
        images = sum(key.startswith("image_path") for item in data for key in item)
        print(f"  {path}: {len(data)} items, {images} images, {len(errors)} error(s)")
        for error in errors[:3]:
            print(f"    error: {error}")
        failed = failed or bool(errors) or not data
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
