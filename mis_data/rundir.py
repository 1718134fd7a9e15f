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

import yaml
from pydantic import BaseModel

from mis_data.config import ConfigError, RunConfig, read_run_config
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

    def write_many(self, records: list[BaseModel]) -> None:
        """One ``write`` for all the lines: a kill leaves them all, or a cut partial tail."""
        self._handle.write("".join(record.model_dump_json() + "\n" for record in records))
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()


def parent_id(record_id: str) -> str:
    """The id a derived id hangs from: ``<pair>-2`` (a question) and ``<pair>.1`` (an image)
    hang from ``<pair>``; a plain id is its own parent.

    Ids are hierarchical on purpose (``records.sample_id``): a reject of an item is superseded
    by any later record of that item or beneath it.
    """
    for separator in ("-", "."):
        head, found, tail = record_id.rpartition(separator)
        if found and head and tail.isdigit():
            return head
    return record_id


class RunDir:
    """Typed access to the files of one run folder.

    Stage records and the reject log are read once and then kept current by every append and
    whole-file write made through this object, so the stages of one build never re-read a file.
    Other files (splits, exports) are read fresh with ``read``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._appenders: dict[str, JsonlAppender] = {}
        self._records: dict[str, dict[str, BaseModel]] = {}
        self._ids: dict[str, set[str]] = {}
        self._reject_log: dict[tuple[str, str], RejectRecord] | None = None
        self._config: RunConfig | None = None

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

    def config(self) -> RunConfig:
        """The run's ``config.yaml`` (resolved config, prompt hashes, identity), read once."""
        if self._config is None:
            if not self.exists():
                raise ConfigError(f"{self.path}: not a run folder (no config.yaml)")
            self._config = read_run_config(self.config_path)
        return self._config

    def write_config(self, run_config: RunConfig) -> None:
        write_text_atomic(self.config_path, yaml.safe_dump(run_config.model_dump(mode="json"),
                                                           sort_keys=True))
        self._config = run_config

    # -- reading -------------------------------------------------------------------------
    def read(self, stage: str, model: type[RecordT]) -> list[RecordT]:
        """All records of a file in first-seen order; a redone id keeps its latest record."""
        by_id: dict[object, RecordT] = {}
        for line in complete_lines(self.stage_file(stage)):
            record = model.model_validate_json(line)
            by_id[getattr(record, "id", len(by_id))] = record
        return list(by_id.values())

    def read_by_id(self, stage: str, model: type[RecordT]) -> dict[str, RecordT]:
        """A file's records by id, read now (``records`` is the cached form stages use)."""
        return {record.id: record for record in self.read(stage, model)}  # type: ignore[attr-defined]

    def records(self, stage: str, model: type[RecordT]) -> dict[str, RecordT]:
        """A stage's records by id (latest wins), read once and kept current by writes."""
        if stage not in self._records:
            self._records[stage] = {record.id: record  # type: ignore[attr-defined]
                                    for record in self.read(stage, model)}
        return self._records[stage]  # type: ignore[return-value]

    def output_ids(self, stage: str) -> set[str]:
        if stage not in self._ids:
            if stage in self._records:
                self._ids[stage] = set(self._records[stage])
            else:
                self._ids[stage] = {json.loads(line)["id"]
                                    for line in complete_lines(self.stage_file(stage))}
        return self._ids[stage]

    def _latest_rejects(self) -> dict[tuple[str, str], RejectRecord]:
        if self._reject_log is None:
            self._reject_log = {}
            for line in complete_lines(self.stage_file(REJECTS)):
                reject = RejectRecord.model_validate_json(line)
                self._reject_log[(reject.stage, reject.id)] = reject
        return self._reject_log

    def rejects(self) -> list[RejectRecord]:
        """Current rejects: the last word per (stage, id), minus items that later succeeded
        (a record with that id, or one hanging from it: ``parent_id``)."""
        covered: dict[str, set[str]] = {}
        current = []
        for (stage, item_id), reject in self._latest_rejects().items():
            if stage not in covered:
                ids = self.output_ids(stage)
                covered[stage] = ids | {parent_id(record_id) for record_id in ids}
            if item_id not in covered[stage]:
                current.append(reject)
        return current

    def done_ids(self, stage: str) -> set[str]:
        """Ids a stage need not process again: written records and final rejects."""
        done = set(self.output_ids(stage))
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
        """Append records, all of one item in one write, so a crash keeps all or none."""
        records = list(records)
        self.appender(stage).write_many(records)
        self._remember(stage, records)

    def write_records(self, stage: str, records: Iterable[BaseModel]) -> None:
        """Replace a stage's whole file atomically (stages decided as a whole)."""
        records = list(records)
        write_text_atomic(self.stage_file(stage),
                          "".join(record.model_dump_json() + "\n" for record in records))
        self._records.pop(stage, None)
        self._ids[stage] = set()
        self._remember(stage, records)

    def _remember(self, stage: str, records: list[BaseModel]) -> None:
        known = self._records.get(stage)
        ids = self._ids.get(stage)
        for record in records:
            record_id = getattr(record, "id", None)
            if record_id is None:
                continue
            if known is not None:
                known[record_id] = record  # latest wins, in first-seen order, as ``read``
            if ids is not None:
                ids.add(record_id)

    def reject(self, reject: RejectRecord) -> None:
        self.appender(REJECTS).write_many([reject])
        self._latest_rejects()[(reject.stage, reject.id)] = reject

    def close(self) -> None:
        for appender in self._appenders.values():
            appender.close()
        self._appenders.clear()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
