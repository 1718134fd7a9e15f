"""Load train JSONL files with ms-swift's own dataset loader and image reader (CPU only).

Run by ``scripts/check_consumers.sh`` in a venv with ``ms-swift==4.6.0``; imports nothing from
mis-data. docs/formats.md §3/§8: ``swift.dataset.load_dataset([path], strict=True)`` (the
auto-preprocessor maps ``conversations``/``from``/``value``/``image`` to ``messages``/``images``),
then every row's roles and ``<image>`` count, and every image opened by
``swift.template.vision_utils.load_image`` — which resolves a relative path against the working
folder or ``ROOT_IMAGE_DIR``, only at encode time, so ``load_dataset`` alone proves nothing about
paths. Runs from an empty working folder: a file argument ``FILE=DIR`` sets ``ROOT_IMAGE_DIR=DIR``
for that file (what the README tells users to do for relative paths); a bare ``FILE`` must have
paths that resolve on their own (absolute, after ``mis-data export --absolute-paths``), and so
must a file whose paths are absolute: ``ROOT_IMAGE_DIR`` is then left unset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def check_file(path: Path, root_image_dir: Path | None, per_row: int = 2) -> list[str]:
    from swift.dataset import load_dataset
    from swift.template.vision_utils import load_image

    train, _ = load_dataset([str(path.resolve())], strict=True)
    first = train[0]["images"][0] if train.num_rows and train[0]["images"] else ""
    if isinstance(first, dict):
        first = first["path"]
    if root_image_dir is not None and os.path.isabs(first):
        root_image_dir = None  # absolute paths must work without it
    if root_image_dir is None:
        os.environ.pop("ROOT_IMAGE_DIR", None)
    else:
        os.environ["ROOT_IMAGE_DIR"] = str(root_image_dir.resolve())
    errors, opened = [], 0
    missing = {"messages", "images"} - set(train.column_names)
    if missing:
        return [f"columns {sorted(missing)} missing (got {train.column_names})"]
    for index, row in enumerate(train):
        where = f"row {index + 1}"
        roles = [m["role"] for m in row["messages"]]
        if roles[:1] == ["system"]:
            roles = roles[1:]
        if roles != ["user", "assistant"]:
            errors.append(f"{where}: roles {roles}")
        tags = sum(m["content"].count("<image>") for m in row["messages"])
        if tags != len(row["images"]) or len(row["images"]) != per_row:
            errors.append(f"{where}: {tags} <image> tags for {len(row['images'])} images")
        for image in row["images"]:
            reference = image["path"] if isinstance(image, dict) else image
            try:
                picture = load_image(reference)
                opened += picture.size[0] > 0
            except Exception as error:
                errors.append(f"{where}: load_image({reference!r}) raised {type(error).__name__}: "
                              f"{str(error)[:200]}")
    env = f"ROOT_IMAGE_DIR={root_image_dir}" if root_image_dir else "no ROOT_IMAGE_DIR"
    print(f"  {path.parent.name}/{path.name} ({env}): {train.num_rows} rows, {opened} images opened, "
          f"{len(errors)} error(s)")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="FILE or FILE=ROOT_IMAGE_DIR")
    parser.add_argument("--images", type=int, default=2, help="images every row has (default 2)")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="check-swift-") as temp:
        os.chdir(temp)
        for spec in args.files:
            file, _, root = spec.partition("=")
            try:
                errors = check_file(Path(file), Path(root) if root else None, args.images)
            except Exception as error:
                errors = [f"load_dataset raised {type(error).__name__}: {str(error)[:300]}"]
                print(f"  {file}: not loaded")
            for error in errors[:3]:
                print(f"    error: {error}")
            if len(errors) > 3:
                print(f"    ... and {len(errors) - 3} more")
            failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
