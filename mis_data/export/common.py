"""What every exporter shares: atomic export folders and image placement.

An export is written into a hidden temporary folder and renamed into place only when complete,
so a crash mid-export leaves the previous export (or none), never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mis_data.images.store import ImageStore


def place_image(store: ImageStore, sha256: str, destination: Path) -> None:
    """Put a stored image at ``destination``: a hard link when possible, else a copy."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = store.path_for(sha256)
    if destination.exists():
        destination.unlink()
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def write_json(path: Path, data: Any) -> None:
    """JSON with a fixed key order as given, two-space indent, trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                    encoding="utf-8")


def build_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(temp_dir)`` and swap the finished folder into ``target``."""
    temp = target.parent / f".{target.name}.partial"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir(parents=True)
    build(temp)
    old = target.parent / f".{target.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    temp.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return target
