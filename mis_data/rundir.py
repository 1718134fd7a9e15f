"""The run folder: the single source of truth of a build.

Each stage appends one JSON line per finished record to its own file. A line counts only once
its newline is written, so a crash mid-write leaves at most a partial last line, which readers
ignore and writers cut off before appending. Whole files (manifest, splits, exports) are written
to a temporary name and renamed into place, so they are either old or new, never half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

from mis_data.records import RETRYABLE_REASONS, RejectRecord

RecordT = TypeVar("RecordT", bound=BaseModel)

REJECTS = "rejects"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def dump_json(data: Any) -> str:
    """Deterministic pretty JSON (sorted keys, trailing newline) for files compared by bytes."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, dump_json(data))


def read_json_or_none(path: Path) -> Any:
    """A JSON file's content, or None when it does not exist."""
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def complete_lines(path: Path) -> Iterator[str]:
    """The lines of a JSONL file that were fully written; a partial last line is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.endswith("\n") and line.strip():
                yield line


def cut_partial_tail(path: Path) -> None:
    """Drop a trailing line without its newline, left by a crash, before appending."""
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        position = size
        while position > 0:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                handle.truncate(position + newline + 1)
                return
        handle.truncate(0)


class JsonlAppender:
    """Appends records to one JSONL file; each line is flushed as soon as it is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cut_partial_tail(path)
        self.path = path
        self._handle: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, record: BaseModel) -> None:
        self._handle.write(record.model_dump_json() + "\n")
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()


class RunDir:
    """Typed access to the files of one run folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._appenders: dict[str, JsonlAppender] = {}

    # -- paths ---------------------------------------------------------------------------
    def stage_file(self, stage: str) -> Path:
        return self.path / f"{stage}.jsonl"

    @property
    def images_dir(self) -> Path:
        return self.path / "images"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    @property
    def splits_dir(self) -> Path:
        return self.path / "splits"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def cache_path(self) -> Path:
        return self.path / "cache.sqlite"

    def exists(self) -> bool:
        return self.config_path.exists()

    # -- reading -------------------------------------------------------------------------
    def read(self, stage: str, model: type[RecordT]) -> list[RecordT]:
        """All records of a stage in first-seen order; a redone id keeps its latest record."""
        by_id: dict[object, RecordT] = {}
        for line in complete_lines(self.stage_file(stage)):
            record = model.model_validate_json(line)
            by_id[getattr(record, "id", len(by_id))] = record
        return list(by_id.values())

    def read_by_id(self, stage: str, model: type[RecordT]) -> dict[str, RecordT]:
        return {record.id: record for record in self.read(stage, model)}  # type: ignore[attr-defined]

    def rejects(self) -> list[RejectRecord]:
        """Current rejects: the last word per (stage, id), minus items that later succeeded."""
        latest: dict[tuple[str, str], RejectRecord] = {}
        for line in complete_lines(self.stage_file(REJECTS)):
            reject = RejectRecord.model_validate_json(line)
            latest[(reject.stage, reject.id)] = reject
        done_by_stage: dict[str, set[str]] = {}
        current = []
        for (stage, item_id), reject in latest.items():
            if stage not in done_by_stage:
                done_by_stage[stage] = self.output_ids(stage)
            if item_id not in done_by_stage[stage]:
                current.append(reject)
        return current

    def output_ids(self, stage: str) -> set[str]:
        ids = set()
        for line in complete_lines(self.stage_file(stage)):
            ids.add(json.loads(line)["id"])
        return ids

    def done_ids(self, stage: str) -> set[str]:
        """Ids a stage need not process again: written records and final rejects."""
        done = self.output_ids(stage)
        for reject in self.rejects():
            if reject.stage == stage and reject.reason not in RETRYABLE_REASONS:
                done.add(reject.id)
        return done

    # -- writing -------------------------------------------------------------------------
    def appender(self, stage: str) -> JsonlAppender:
        if stage not in self._appenders:
            self._appenders[stage] = JsonlAppender(self.stage_file(stage))
        return self._appenders[stage]

    def append(self, stage: str, records: Iterable[BaseModel]) -> None:
        appender = self.appender(stage)
        for record in records:
            appender.write(record)

    def reject(self, reject: RejectRecord) -> None:
        self.appender(REJECTS).write(reject)

    def close(self) -> None:
        for appender in self._appenders.values():
            appender.close()
        self._appenders.clear()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
