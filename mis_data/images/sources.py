"""Reading outside inputs safely: query files, Hugging Face datasets and image folders.

Everything a researcher points the build at is untrusted: a CSV with an empty row, a dataset
without the named column, a folder holding a symlink to ``/etc`` or an image that is really a
text file. A broken *source* (missing file, missing column) is a ConfigError before any work; a
broken *item* becomes a reject naming the item and the reason, and every other item goes on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mis_data.core.config import (
    ConfigError,
    HFDatasetConcepts,
    ImageFolderConcepts,
    ImagePool,
    QueryFileConcepts,
    ShippedConcepts,
    read_yaml,
)
from mis_data.core.records import RejectReason, RejectRecord, Step, normalize_object
from mis_data.images.store import BadImage, ImageStore

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
STAGE = Step.concepts.value  # a source's rejects belong to the concepts step


@dataclass(frozen=True)
class ConceptInput:
    """One query or image a model turns into a concept; ``where`` names it in messages."""

    where: str
    source: str
    text: str | None = None
    image_sha256: str | None = None
    file_stem: str | None = None


def inside(folder: Path, path: Path) -> bool:
    """True when ``path`` (after following links) stays inside ``folder``."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def folder_images(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files of a folder (recursive, sorted) and (name, reason) for those refused."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: image folder not found")
    files, refused = [], []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.is_dir():
            continue
        name = path.relative_to(folder).as_posix()
        if not inside(folder, path):
            refused.append((name, "path escapes the source folder (link to outside)"))
        elif not path.is_file():
            refused.append((name, "missing file (broken link)"))
        else:
            files.append(path)
    return files, refused


def read_query_file(source: QueryFileConcepts) -> list[tuple[str, Any]]:
    """(where, text) from a JSONL or CSV file; ``text`` is None for an unusable row."""
    path = source.path
    if not path.is_file():
        raise ConfigError(f"{path}: query file not found")
    raw = path.read_text(encoding="utf-8", errors="replace")
    rows: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(raw))
        if source.column not in (reader.fieldnames or []):
            raise ConfigError(f"{path}: no column {source.column!r} (columns: "
                              f"{', '.join(reader.fieldnames or [])})")
        for number, row in enumerate(reader, start=2):
            rows.append((f"{path.name}:{number}", row.get(source.column)))
    else:
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                rows.append((f"{path.name}:{number}", None))
                continue
            rows.append((f"{path.name}:{number}",
                         value.get(source.column) if isinstance(value, dict) else None))
    return rows[: source.limit] if source.limit else rows


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence ``datasets``' progress bars for one call, restoring the caller's setting: a
    build shows its own progress, and an error must stay one line."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def load_hf(name: str, *args: Any, **kwargs: Any) -> Any:
    """``datasets.load_dataset``, regenerated from the files when ``name`` is a local folder:
    ``datasets`` keys its cache of a folder on the card alone, so a folder whose files changed
    under an unchanged card would give the old rows back. A Hub name keeps the normal cache."""
    import datasets

    if Path(name).exists():
        kwargs.setdefault("download_mode", "force_redownload")
    return datasets.load_dataset(name, *args, **kwargs)


def read_hf_texts(source: HFDatasetConcepts) -> list[tuple[str, Any]]:
    """(where, text) from a Hugging Face dataset (hub name or local folder) loaded with datasets."""
    try:
        with quiet_datasets():
            dataset = load_hf(source.name, source.config, split=source.split)
    except Exception as error:  # datasets raises many types; all mean "cannot load this source"
        raise ConfigError(f"dataset {source.name!r}: cannot load split {source.split!r}: "
                          f"{str(error).splitlines()[0][:200]}") from None
    if source.column not in dataset.column_names:
        raise ConfigError(f"dataset {source.name!r}: no column {source.column!r} "
                          f"(columns: {', '.join(dataset.column_names)})")
    texts = dataset[source.column]
    rows = [(f"{Path(source.name).name}[{index}]", text) for index, text in enumerate(texts)]
    return rows[: source.limit] if source.limit else rows


def concept_files(path: Path) -> list[Path]:
    """The YAML files of a shipped source, sorted so the order never depends on the disk."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if files:
            return files
        raise ConfigError(f"{path}: no concept files (*.yaml) in this folder")
    raise ConfigError(f"{path}: concept source not found")


def shipped_entries(source: ShippedConcepts) -> list[tuple[str, dict[str, Any]]]:
    """(where, entry) for every entry of every file of a shipped source."""
    entries = []
    for file in concept_files(source.path):
        data = read_yaml(file)
        items = data.get("concepts") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ConfigError(f"{file}: expected a 'concepts' list")
        if not items:  # an empty list would plan and build an empty dataset without a word
            raise ConfigError(f"{file}: the 'concepts' list is empty")
        for index, entry in enumerate(items):
            entries.append((f"{file.name}[{index}]", entry))
    return entries


def check_source(source: Any) -> None:
    """Open a concept source far enough to fail with a config error before any work, and
    refuse one that yields nothing: it would plan and build an empty dataset with exit 0.
    Single broken items of a usable source become rejects later, each with its reason."""
    if isinstance(source, ShippedConcepts):
        shipped_entries(source)
    elif isinstance(source, QueryFileConcepts):
        if not any(usable_text(text) for _, text in read_query_file(source)):
            raise ConfigError(f"{source.path}: no query in this file (no row with a "
                              f"{source.column!r} text)")
    elif isinstance(source, HFDatasetConcepts):
        if not any(usable_text(text) for _, text in read_hf_texts(source)):
            raise ConfigError(f"dataset {source.name!r}: no query in split {source.split!r} "
                              f"(no row with a {source.column!r} text)")
    elif isinstance(source, ImageFolderConcepts) and not folder_images(source.path)[0]:
        raise ConfigError(f"{source.path}: no images in this concept folder")


def usable_text(text: Any) -> bool:
    """Whether a row's value is text with something in it (None, numbers and blanks are not)."""
    return isinstance(text, str) and bool(text.strip())


def text_inputs(rows: list[tuple[str, Any]], label: str) -> tuple[list[ConceptInput], list[RejectRecord]]:
    """Rows as concept inputs, whitespace collapsed; an unusable row becomes a ``bad_source``
    reject, not an error."""
    inputs, problems = [], []
    for where, text in rows:
        if not usable_text(text):
            problems.append(RejectRecord(stage=STAGE, id=where, reason=RejectReason.bad_source,
                                         detail=f"{where}: empty or unreadable query"))
        else:
            inputs.append(ConceptInput(where=where, source=label, text=" ".join(text.split())))
    return inputs, problems


def image_inputs(source: ImageFolderConcepts, store: ImageStore
                 ) -> tuple[list[ConceptInput], list[RejectRecord]]:
    """The folder's images, stored, as concept inputs; an image refused or unreadable becomes a
    ``bad_image`` reject naming it."""
    files, refused = folder_images(source.path)
    problems = [RejectRecord(stage=STAGE, id=name, reason=RejectReason.bad_image,
                             detail=f"{name}: {reason}") for name, reason in refused]
    inputs = []
    for path in files[: source.limit] if source.limit else files:
        name = path.relative_to(source.path).as_posix()
        try:
            stored = store.put(path.read_bytes())
        except (BadImage, OSError) as error:
            problems.append(RejectRecord(stage=STAGE, id=name, reason=RejectReason.bad_image,
                                         detail=f"{name}: {error}"))
            continue
        inputs.append(ConceptInput(where=name, source=f"image_folder:{source.path.name}",
                                   image_sha256=stored.sha256, file_stem=path.stem))
    return inputs, problems


def concept_inputs(source: Any, store: ImageStore) -> tuple[list[ConceptInput], list[RejectRecord]]:
    """What a model must look at for one non-shipped concept source."""
    if isinstance(source, QueryFileConcepts):
        return text_inputs(read_query_file(source), f"queries:{source.path.name}")
    if isinstance(source, HFDatasetConcepts):
        return text_inputs(read_hf_texts(source), f"hf:{Path(source.name).name}")
    if isinstance(source, ImageFolderConcepts):
        return image_inputs(source, store)
    raise ConfigError(f"unknown concept source kind {getattr(source, 'kind', source)!r}")


def object_slug(text: str) -> str:
    """File-name form of an object: ``Kitchen Knives`` -> ``kitchen_knife``."""
    return normalize_object(text).replace(" ", "_")


def find_object_image(folder: Path, obj: str) -> tuple[Path | None, str]:
    """The image of ``obj`` in a folder of images named by object, or None and why not."""
    wanted = object_slug(obj)
    files, refused = folder_images(folder)
    for name, reason in refused:
        if object_slug(Path(name).stem) == wanted:
            return None, f"{name}: {reason}"
    for path in files:
        if object_slug(path.stem) == wanted:
            return path, ""
    return None, f"no image named {wanted}.* in {folder}"


def hf_image_index(name: str, split: str, image_column: str, label_column: str) -> dict[str, bytes]:
    """Image bytes by normalized label from a Hugging Face dataset (first row per label wins)."""
    import datasets

    try:
        with quiet_datasets():
            dataset = load_hf(name, split=split)
    except Exception as error:  # any load failure means the source is unusable
        raise ConfigError(f"dataset {name!r}: {str(error).splitlines()[0][:200]}") from None
    for column in (image_column, label_column):
        if column not in dataset.column_names:
            raise ConfigError(f"dataset {name!r}: no column {column!r} "
                              f"(columns: {', '.join(dataset.column_names)})")
    dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    index: dict[str, bytes] = {}
    for row in dataset:
        label = normalize_object(str(row[label_column]))
        image = row[image_column] or {}
        data = image.get("bytes") or (Path(image["path"]).read_bytes() if image.get("path") else b"")
        index.setdefault(label, data)
    return index


class ObjectImages:
    """Images named by object, from a folder or a labelled dataset (an ``ImagePool``): the
    lookup both the image stage and the MIS-real swap use."""

    def __init__(self, pool: ImagePool) -> None:
        if not pool.has_pool():
            raise ConfigError("an image source needs a folder or a hf_dataset")
        self.pool = pool
        self._index: dict[str, bytes] | None = None

    def check(self) -> None:
        """Fail now, with a config error, if the pool cannot be opened (before any work)."""
        if self.pool.folder is not None:
            folder_images(self.pool.folder)
        else:
            self.index()

    def index(self) -> dict[str, bytes]:
        """Image bytes by normalized label, loaded from the dataset once, on first use."""
        if self._index is None:
            pool = self.pool
            self._index = hf_image_index(pool.hf_dataset or "", pool.hf_split, pool.image_column,
                                         pool.label_column)
        return self._index

    def lookup(self, obj: str) -> tuple[bytes | None, str]:
        """(bytes, origin) of the object's image, or (None, why not)."""
        folder = self.pool.folder
        if folder is not None:
            path, reason = find_object_image(folder, obj)
            if path is None:
                return None, reason
            try:
                return path.read_bytes(), path.name
            except OSError as error:
                return None, f"{path.name}: cannot read ({error.strerror})"
        data = self.index().get(normalize_object(obj))
        name = self.pool.hf_dataset or ""
        if data is None:
            return None, f"no row labelled {obj!r} in {name}"
        return data, f"{Path(name).name}:{object_slug(obj)}"
