"""What every exporter shares: atomic export folders and image placement.

An export is written into a hidden temporary folder and renamed into place only when complete,
so a crash mid-export leaves the previous export (or none), never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mis_data.core.samples import Sample
from mis_data.images.store import ImageStore

# The system turn of the chat-style exports. Short and neutral: the safety behaviour must come
# from the labels, not from a system prompt the evaluation will not use.
SYSTEM_PROMPT = "You are a helpful and harmless assistant."
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class RunInfo:
    """What an export may say about the run that made it (the dataset card needs all of it).

    Built by the pipeline from the run's ``config.yaml``, rejects and split plan, so exporters
    never read the run folder themselves and stay testable with hand-made samples.
    """

    name: str = "mis"
    backend: str = "offline"
    models: dict[str, Any] = field(default_factory=dict)
    prompt_sha256: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    split_seed: int = 0
    val_size: float = 0.0
    license: str = "cc-by-nc-4.0"
    image_source: str = "typography"
    images_per_sample: int = 2
    rejects: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    # Per benchmark name: its kind, image and question matches, samples dropped.
    decontamination: dict[str, dict[str, Any]] = field(default_factory=dict)
    formats: tuple[str, ...] = ("mis", "internvl", "llamafactory", "hf")
    # Absolute image paths (and InternVL root/annotation) in the train exports, for training
    # from another folder: InternVL and ms-swift resolve relative paths against the working
    # folder. Off by default, so an export is the same bytes wherever the run lives.
    absolute_paths: bool = False

    @property
    def offline(self) -> bool:
        """True for a build by the offline backend, which the card must say loudly."""
        return self.backend == "offline"


def cell_columns(sample: Sample) -> dict[str, Any]:
    """A build with twins tags every row of every export with its HoliSafe cell and a twin
    with its source's id (``twin_of``, None otherwise); a build without twins adds nothing."""
    return {"cell": sample.cell, "twin_of": sample.twin_of} if sample.cell is not None else {}


def place_image(store: ImageStore, sha256: str, destination: Path) -> None:
    """Put a stored image at ``destination``: a hard link when possible, else a copy; an image
    already there is replaced, and missing folders are made.

    The link is tried first, and the folder made or the old file removed only when it fails:
    an export places thousands of images, mostly into new files of folders that exist.
    """
    source = store.path_for(sha256)
    try:
        os.link(source, destination)
        return
    except FileExistsError:
        destination.unlink()
    except FileNotFoundError:  # the folder is not made yet (or the source is missing: see below)
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # another file system: a copy, never written through an old link
        destination.unlink(missing_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def place_sample_images(store: ImageStore, sample: Sample, folder: Path, prefix: str) -> list[str]:
    """Place every image of a sample at ``<prefix>/<id>/object<k>.png`` under ``folder``."""
    paths = []
    for slot, image in enumerate(sample.images, start=1):
        relative = f"{prefix}/{sample.id}/object{slot}.png" if prefix else f"{sample.id}/object{slot}.png"
        place_image(store, image.sha256, folder / relative)
        paths.append(relative)
    return paths


def published_folder(folder: Path) -> Path:
    """Where an exporter's folder ends up: ``build_atomically`` builds ``.<name>.partial`` and
    renames it to ``<name>``, so an absolute path must name the final folder, not the temporary
    one. A folder that is not a ``build_atomically`` temporary is returned as it is."""
    folder = folder.resolve()
    name = folder.name
    if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
        return folder.with_name(name[1:-len(PARTIAL_SUFFIX)])
    return folder


def absolute_paths(info: RunInfo | None) -> bool:
    """Whether train exports write absolute paths; off when there is no ``RunInfo``."""
    return info is not None and info.absolute_paths


def write_json(path: Path, data: Any) -> None:
    """JSON with a fixed key order as given, two-space indent, trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per line, non-ASCII kept as is, each line ending in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                    encoding="utf-8")


def build_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(temp_dir)`` and swap the finished folder into ``target``."""
    temp = target.parent / f".{target.name}{PARTIAL_SUFFIX}"
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
