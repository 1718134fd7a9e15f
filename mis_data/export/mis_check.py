"""The MIS evaluation layout as MIS's scripts read it (docs/formats.md §5): also the released test set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mis_data.core.records import CELLS, MAX_IMAGES
from mis_data.core.taxonomy import Taxonomy
from mis_data.export.checks import ImageChecker, Report, array_records, rel

MIS_FIELDS = ("id", "category", "sub_category", "question", "image_path1", "image_path2")
# A build with images_per_sample 3 or 4 numbers on: image_path3, image_path4.
MORE_PATHS = tuple(f"image_path{slot}" for slot in range(3, MAX_IMAGES + 1))
MIS_SPLITS = ("easy", "hard", "real", "twins")
# A build with twins adds two keys the released files do not have, after theirs, on every row:
# the HoliSafe cell (``mis-data eval`` scores SiSt→S rows as over-refusal) and, on a twin, the id
# of its source. MIS's scripts read items by key, so the extra keys change nothing for them.
CELL_FIELDS = ("cell", "twin_of")

def check_mis_item(where: str, item: dict[str, Any], test_dir: Path, taxonomy: Taxonomy | None,
                   seen_ids: set[Any], images: ImageChecker, report: Report) -> None:
    """One item against MIS's fields, the taxonomy (when given), unique ids and openable images."""
    missing = [key for key in MIS_FIELDS if key not in item]
    extra = [key for key in item if key not in (*MIS_FIELDS, *MORE_PATHS, *CELL_FIELDS)]
    if "cell" in item and item["cell"] not in CELLS:
        report.add(where, f"cell {item['cell']!r} is not one of {', '.join(CELLS)}")
    if missing:
        report.add(where, f"missing key(s) {', '.join(missing)}")
    if extra:
        report.add(where, f"unexpected key(s) {', '.join(extra)}")
    item_id = item.get("id")
    if "id" in item:
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            report.add(where, f"id must be an integer, got {item_id!r}")
        elif item_id in seen_ids:
            report.add(where, f"id {item_id} appears twice")
        seen_ids.add(item_id)
    for key in ("category", "sub_category", "question"):
        if key in item and (not isinstance(item[key], str) or not item[key].strip()):
            report.add(where, f"{key} must be a non-empty string")
    if taxonomy is not None and isinstance(item.get("sub_category"), str):
        canonical = taxonomy.canonical(item["sub_category"])
        if canonical is None:
            report.add(where, f"unknown sub_category {item['sub_category']!r}")
        elif (isinstance(item.get("category"), str)
              and item["category"].strip().casefold() != taxonomy.category_of(canonical).casefold()):
            report.add(where, f"category {item['category']!r} does not match sub_category "
                              f"{item['sub_category']!r} ({taxonomy.category_of(canonical)})")
    path_keys = [f"image_path{slot}" for slot in range(1, MAX_IMAGES + 1)
                 if f"image_path{slot}" in item]
    if path_keys != [f"image_path{slot}" for slot in range(1, len(path_keys) + 1)]:
        report.add(where, f"image paths {', '.join(path_keys)} skip a number")
    report.image_count(where, len(path_keys))
    for key in path_keys:
        path = item.get(key)
        if not isinstance(path, str) or not path or Path(path).is_absolute():
            report.add(where, f"{key} must be a path relative to mis_test/")
            continue
        size = images.check(test_dir / path)
        if isinstance(size, str):
            report.add(where, f"{key}: {size}")
    paths = [item[key] for key in path_keys if isinstance(item[key], str)]
    if len(set(paths)) < len(paths):
        report.add(where, "two image paths name the same file")


def validate_mis(folder: Path, taxonomy: Taxonomy | None = None, report: Report | None = None,
                 **_: Any) -> Report:
    """``mis_test/mis_{easy,hard,real}.json`` as the MIS eval scripts read them (docs/formats.md §5)."""
    report, images = report or Report(), ImageChecker()
    test_dir = folder / "mis_test" if (folder / "mis_test").is_dir() else folder
    files = [test_dir / f"mis_{split}.json" for split in MIS_SPLITS
             if (test_dir / f"mis_{split}.json").is_file()]
    if not (test_dir / "mis_easy.json").is_file():
        report.add(rel(test_dir / "mis_easy.json", folder), "not found")
    for file in files:
        seen: set[Any] = set()
        for where, item in array_records(file, folder, report):
            report.records += 1
            check_mis_item(where, item, test_dir, taxonomy, seen, images, report)
    return report
