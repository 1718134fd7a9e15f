"""The awareness export as its readers take it: ``datasets.load_dataset("json", ...)`` and
``mis-data eval --protocol awareness`` (docs/eval.md, README "Safety awareness").

Every line is an object with the export's columns; ``subset`` is one of the five and
``expected`` the answer that subset needs (``No`` for unsafe, ``Yes`` for benign); ids are
unique; every image path, relative to the folder, opens, as many per row as the build has. Then
the file is loaded with ``datasets`` as a user would, so a column whose type changes from row
to row (which the JSON loader refuses) is caught here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mis_data.export.awareness import COLUMNS, EXPECTED, FILE, SUBSETS
from mis_data.export.checks import ImageChecker, Report, jsonl_records


def check_row(where: str, row: dict[str, Any], folder: Path, images: ImageChecker,
              report: Report) -> None:
    """One line's columns, subset and expected answer, and its images."""
    missing = [column for column in COLUMNS if column not in row]
    if missing:
        report.add(where, f"missing column(s) {', '.join(missing)}")
    extra = sorted(set(row) - set(COLUMNS))
    if extra:
        report.add(where, f"unexpected column(s) {', '.join(extra)}")
    subset = row.get("subset")
    if subset not in SUBSETS:
        report.add(where, f"subset {subset!r} is not one of {', '.join(SUBSETS)}")
    elif row.get("expected") != EXPECTED[subset]:
        report.add(where, f"expected {row.get('expected')!r}, but a {subset} item expects "
                          f"{EXPECTED[subset]!r}")
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        report.add(where, "'question' must be a non-empty string")
    if (subset in ("twin", "alarming_text")) != bool(row.get("twin_of")):
        report.add(where, "'twin_of' is set on benign twins and only on them")
    paths = row.get("images")
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        report.add(where, "'images' must be a list of relative paths")
        return
    report.image_count(where, len(paths))
    for path in paths:
        if Path(path).is_absolute():
            report.add(where, f"image path {path} is absolute; the export names images relative "
                              "to its folder")
        size = images.check(folder / path)
        if isinstance(size, str):
            report.add(where, size)


def validate_awareness(folder: Path, report: Report | None = None, **_: Any) -> Report:
    """Every line of ``awareness.jsonl``, then a ``load_dataset("json")`` of the file."""
    report, images = report or Report(), ImageChecker()
    file = folder if folder.is_file() else folder / FILE
    base = file.parent
    if not file.is_file():
        report.add(FILE, "file not found")
        return report
    seen: set[str] = set()
    for where, row in jsonl_records(file, base, report):
        report.records += 1
        if row.get("id") in seen:
            report.add(where, f"id {row.get('id')!r} appears twice")
        seen.add(str(row.get("id")))
        check_row(where, row, base, images, report)
    load_with_datasets(file, report)
    return report


def load_with_datasets(file: Path, report: Report) -> None:
    """Load the file as a ``datasets`` user would; a failure is one problem naming the file."""
    from datasets import load_dataset

    from mis_data.images.sources import quiet_datasets

    with tempfile.TemporaryDirectory(prefix="mis-validate-") as cache, quiet_datasets():
        try:
            loaded = load_dataset("json", data_files=str(file), split="train", cache_dir=cache)
        except Exception as error:
            first = (str(error).splitlines() or [""])[0][:300]
            report.add(file.name, f"load_dataset('json') failed: {type(error).__name__}: {first}")
            return
    if loaded.num_rows != report.records:
        report.add(file.name, f"load_dataset('json') read {loaded.num_rows} rows of "
                              f"{report.records}")
