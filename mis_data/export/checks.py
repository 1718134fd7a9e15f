"""What every format check shares: the report, an image opener and located record readers.

The real loaders are poor judges: InternVL swaps a broken sample for a random other one,
LLaMA-Factory skips it with a log line, ms-swift pads missing ``<image>`` tags. So each format's
check (``<format>_check.py``, beside its writer) mirrors what the consumer asserts and reports
*every* problem with its place — JSONL by line number (``file:12: ...``), JSON arrays by item
index (``file[3]: ...``) — instead of stopping at the first.

Besides problems (the consumer would fail or drop data) a report has warnings: things that load
only under a condition the file cannot guarantee — mostly relative paths that resolve from one
folder only (InternVL's meta, ms-swift's images). They are printed but do not fail validation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mis_data.core.records import MAX_IMAGES

IMAGE_TOKEN = "<image>"
INTERNVL_SPECIAL = ("<img>", "</img>", "<IMG_CONTEXT>")


@dataclass
class Report:
    """Problems found (one line each, already located) and how many records were read."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    records: int = 0
    # Images every row must have (``images_per_sample``; ``--images``); None: as the first row.
    images_per_row: int | None = None

    def add(self, where: str, message: str) -> None:
        """Record a problem that fails validation; ``where`` locates it (``file:line`` or ``file[index]``)."""
        self.problems.append(f"{where}: {message}")

    def image_count(self, where: str, count: int) -> None:
        """Every row has the same number of images, 2 to 4: the build's ``images_per_sample``
        when known, else as many as the first row (a dataset never mixes counts)."""
        if not 2 <= count <= MAX_IMAGES:
            self.add(where, f"{count} images; a sample has 2 to {MAX_IMAGES}")
        elif self.images_per_row is None:
            self.images_per_row = count
        elif count != self.images_per_row:
            self.add(where, f"{count} images, expected {self.images_per_row}")

    def warn(self, where: str, message: str) -> None:
        """Record a warning once, however many records repeat it; warnings do not fail validation."""
        line = f"{where}: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    @property
    def ok(self) -> bool:
        """True when no problem was found (warnings do not count)."""
        return not self.problems


class ImageChecker:
    """Opens each image once (``convert("RGB")`` like the loaders) and remembers its size."""

    def __init__(self) -> None:
        self._sizes: dict[Path, tuple[int, int] | str] = {}

    def check(self, path: Path) -> tuple[int, int] | str:
        """The image's (width, height), or a one-line reason it cannot be used."""
        if path not in self._sizes:
            if not path.is_file():
                self._sizes[path] = f"image not found: {path}"
            else:
                try:
                    with Image.open(path) as image:
                        self._sizes[path] = image.convert("RGB").size
                except Exception as error:  # any decoder failure is the same problem to a loader
                    self._sizes[path] = f"image does not open: {path} ({type(error).__name__})"
        return self._sizes[path]


def rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` for messages, or the full path when it lies outside."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def load_json(path: Path, base: Path, report: Report) -> Any:
    """A JSON file's content, or None after reporting why it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        report.add(rel(path, base), f"not valid JSON: {error}")
        return None


def jsonl_records(path: Path, base: Path, report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line``, record) for each JSON object line; bad lines become problems."""
    name = rel(path, base)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                report.add(where, f"not valid JSON: {error.msg}")
                continue
            if not isinstance(record, dict):
                report.add(where, "a line must be a JSON object")
                continue
            yield where, record


def array_records(path: Path, base: Path, report: Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file[index]``, item) for each object of a JSON array file."""
    data = load_json(path, base, report)
    name = rel(path, base)
    if data is None:
        return
    if not isinstance(data, list):
        report.add(name, "must be a JSON array of items")
        return
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            report.add(f"{name}[{index}]", "an item must be a JSON object")
            continue
        yield f"{name}[{index}]", item
