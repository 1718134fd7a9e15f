"""The run folder: the single source of truth of a build.

Each stage appends one JSON line per finished record to its own file. What one work item writes
(its records, its rejects, its side records) is one group: it counts only once every line of it
is written, so a crash, a full disk or a file-size limit anywhere in it leaves it either whole or
redone on resume, never half counted (``group_bytes``, ``RunDir.group``, ``RunDir.recover``).
Whole files (manifest, splits, exports) are written to a temporary name and renamed into place,
so they are either old or new, never half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from mis_data.core.config import BuildConfig, ConfigError, RunConfig, read_run_config
from mis_data.core.ids import Shard, parent_id
from mis_data.core.lock import FolderLock
from mis_data.core.records import RejectRecord

RecordT = TypeVar("RecordT", bound=BaseModel)

REJECTS = "rejects"
# Logs people write by hand or from the gallery: their own reader keeps a last line that lacks
# only its newline (``decision_log.settle_tail``), so recovery leaves them alone.
PEOPLE_LOGS = ("decisions.jsonl",)
# The sizes of the files a group spanning several files is being written to; gone once written.
JOURNAL = ".group.json"


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
    """Write UTF-8 text so that readers see the old content or the new, never a mix."""
    write_bytes_atomic(path, text.encode("utf-8"))


def dump_json(data: Any) -> str:
    """Deterministic pretty JSON (sorted keys, trailing newline) for files compared by bytes."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``dump_json`` output atomically: equal data always gives byte-equal files."""
    write_text_atomic(path, dump_json(data))


def read_json_or_none(path: Path) -> Any:
    """A JSON file's content, or None when it does not exist."""
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# A group is every line one piece of work writes to a file (a pair's three questions), written
# in one go. Each line of a group but its last ends with a space before the newline: JSON
# readers ignore it, and a file cut at any byte leaves a trailing group with no line ending in a
# bare newline, which is detected and never counted. Files written before groups existed have
# no such spaces, so each of their lines is a complete group of one.
CONTINUED = b" \n"


def group_bytes(lines: list[str]) -> bytes:
    """Lines (JSON, no newline) as one group: every line but the last marked as continued."""
    return "".join(line + (" \n" if i < len(lines) - 1 else "\n")
                   for i, line in enumerate(lines)).encode("utf-8")


def complete_lines(path: Path) -> Iterator[str]:
    """The lines of a JSONL file's complete groups, each ending in a bare newline; a group a
    cut write left unfinished (a partial line, or continued lines with no last one) is skipped.

    Read as bytes: a cut can split a multi-byte character, which must not stop the reader."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        group: list[bytes] = []
        for line in handle:
            if not line.endswith(b"\n"):
                return
            if line.endswith(CONTINUED):
                group.append(line[:-2] + b"\n")
                continue
            group.append(line)
            yield from (member.decode("utf-8") for member in group if member.strip())
            group = []


def complete_size(path: Path) -> int:
    """Bytes of a JSONL file up to the end of its last complete group: just past the last
    newline that has no space before it."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - 65536)
            first = max(0, start - 1)  # one byte more, to see what precedes a newline at start
            handle.seek(first)
            block = handle.read(end - first)
            newline = len(block)
            while (newline := block.rfind(b"\n", 0, newline)) >= 0 and first + newline >= start:
                if first + newline == 0 or block[newline - 1:newline] != b" ":
                    return first + newline + 1
            end = start
    return 0


def cut_partial_group(path: Path) -> bool:
    """Drop what a cut write left after the last complete group, before appending; True if
    anything was cut."""
    if not path.exists():
        return False
    size, keep = path.stat().st_size, complete_size(path)
    if keep < size:
        os.truncate(path, keep)
    return keep < size


def write_all(handle: int, data: bytes) -> None:
    """Every byte of ``data``, however many ``write`` calls the kernel needs."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view):]


class JsonlAppender:
    """Appends groups of lines to one JSONL file, unbuffered.

    A group is all or nothing: a kill leaves a detectable partial group (``complete_lines``),
    and an ``OSError`` mid-group (a full disk, a file-size limit) cuts the file back to its size
    before the group, then propagates, so nothing half-written stays behind for a later write.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cut_partial_group(path)
        self.path = path
        self._handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def size(self) -> int:
        """The file's size in bytes now: where the next group starts, for ``cut_back``."""
        return os.fstat(self._handle).st_size

    def write_group(self, data: bytes) -> None:
        """Append one group's bytes (``group_bytes``). On an ``OSError`` the file is cut back to its
        size before the group, and the error, naming the file, propagates."""
        before = self.size()
        try:
            write_all(self._handle, data)
        except OSError as error:
            self.cut_back(before)
            raise OSError(error.errno, error.strerror, str(self.path)) from None

    def write_many(self, records: Sequence[BaseModel]) -> None:
        """All the records as one group."""
        self.write_group(group_bytes([record.model_dump_json() for record in records]))

    def cut_back(self, size: int) -> None:
        """Undo a group: the file as it was at ``size`` bytes."""
        os.ftruncate(self._handle, size)

    def close(self) -> None:
        """Flush the file to disk and close it; a second call does nothing."""
        if self._handle >= 0:
            os.fsync(self._handle)
            os.close(self._handle)
            self._handle = -1


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
        self._reject_written: dict[tuple[str, str], int] = {}
        self._reject_clock = 0
        self._config: RunConfig | None = None
        self._pending: dict[str, list[BaseModel]] | None = None

    # -- paths ---------------------------------------------------------------------------
    def stage_file(self, stage: str) -> Path:
        """A stage's JSONL file (``rejects`` has one too): ``RUN/<stage>.jsonl``."""
        return self.path / f"{stage}.jsonl"

    @property
    def images_dir(self) -> Path:
        """The image store: every image of the run, named by its content hash."""
        return self.path / "images"

    @property
    def export_dir(self) -> Path:
        """Where the exporters write the dataset in each format of ``exports:``."""
        return self.path / "export"

    @property
    def splits_dir(self) -> Path:
        """Where the final splits are written as whole files."""
        return self.path / "splits"

    @property
    def manifest_path(self) -> Path:
        """The build's summary, rewritten each time the run is finished; absent before that."""
        return self.path / "manifest.json"

    @property
    def config_path(self) -> Path:
        """The run's ``config.yaml``: its presence is what makes a folder a run folder."""
        return self.path / "config.yaml"

    @property
    def cache_path(self) -> Path:
        """The cache of model answers, so that a rerun does not pay for a request again."""
        return self.path / "cache.sqlite"

    def exists(self) -> bool:
        """Whether the folder is a run folder (it has its ``config.yaml``)."""
        return self.config_path.exists()

    def config(self) -> RunConfig:
        """The run's ``config.yaml`` (resolved config, prompt hashes, identity), read once."""
        if self._config is None:
            if not self.exists():
                raise ConfigError(f"{self.path}: not a run folder (no config.yaml)")
            self._config = read_run_config(self.config_path)
        return self._config

    def write_config(self, run_config: RunConfig) -> None:
        """Write ``config.yaml`` atomically and make it what ``config`` returns from now on."""
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
        """Ids a stage's file holds, kept current by writes; when the records are not loaded yet only
        the ids are parsed, with no validation."""
        if stage not in self._ids:
            if stage in self._records:
                self._ids[stage] = set(self._records[stage])
            else:
                self._ids[stage] = {json.loads(line)["id"]
                                    for line in complete_lines(self.stage_file(stage))}
        return self._ids[stage]

    def _latest_rejects(self) -> dict[tuple[str, str], RejectRecord]:
        if self._reject_log is None:
            self._reject_log, self._reject_written, self._reject_clock = {}, {}, 0
            for line in complete_lines(self.stage_file(REJECTS)):
                self._log_reject(RejectRecord.model_validate_json(line))
        return self._reject_log

    def _log_reject(self, reject: RejectRecord) -> None:
        """Keep the latest reject per (stage, id), and when it was written (a running count)."""
        assert self._reject_log is not None
        key = (reject.stage, reject.id)
        self._reject_log[key] = reject
        self._reject_clock += 1
        self._reject_written[key] = self._reject_clock

    def rejects(self) -> list[RejectRecord]:
        """Current rejects: the last word per (stage, id), minus items that later succeeded
        (a record with that id, or one hanging from it: ``parent_id``) or were decided again
        one level down (a pair refused, then its questions rejected once a fallback answered)."""
        covered: dict[str, set[str]] = {}
        log = self._latest_rejects()
        latest_child: dict[tuple[str, str], int] = {}
        for (stage, item_id), written in self._reject_written.items():
            parent = parent_id(item_id)
            if parent != item_id:
                key = (stage, parent)
                latest_child[key] = max(latest_child.get(key, 0), written)
        current = []
        for key, reject in log.items():
            stage, item_id = key
            if stage not in covered:
                ids = self.output_ids(stage)
                covered[stage] = ids | {parent_id(record_id) for record_id in ids}
            if item_id not in covered[stage] and latest_child.get(key, 0) < self._reject_written[key]:
                current.append(reject)
        return current

    # -- writing -------------------------------------------------------------------------
    def appender(self, stage: str) -> JsonlAppender:
        """The stage file's appender, opened on first use and kept until ``close``. Lines written
        through it directly bypass the cached records and ids: stages use ``append``."""
        if stage not in self._appenders:
            self._appenders[stage] = JsonlAppender(self.stage_file(stage))
        return self._appenders[stage]

    def append(self, stage: str, records: Iterable[BaseModel]) -> None:
        """Append records as one group (inside ``group``: as part of that group)."""
        records = list(records)
        if self._pending is not None:
            self._pending.setdefault(stage, []).extend(records)
        else:
            self._commit({stage: records})

    @contextmanager
    def group(self) -> Iterator[None]:
        """Everything appended inside is one group, written when the block ends: on resume it
        is in every file it touched or in none (an error inside writes nothing)."""
        if self._pending is not None:  # nested: part of the enclosing group
            yield
            return
        self._pending = {}
        try:
            yield
            pending = self._pending
        finally:
            self._pending = None
        self._commit(pending)

    def _commit(self, pending: dict[str, list[BaseModel]]) -> None:
        """Write a group's lines file by file. Spanning several files, it is announced in the
        journal first, so a kill between two files is undone by ``recover``; an ``OSError``
        cuts every file back at once and propagates."""
        pending = {stage: records for stage, records in pending.items() if records}
        if not pending:
            return
        appenders = {stage: self.appender(stage) for stage in pending}
        sizes = {stage: appender.size() for stage, appender in appenders.items()}
        journal = len(pending) > 1
        if journal:
            self._open_journal(sizes)
        try:
            for stage, records in pending.items():
                appenders[stage].write_many(records)
        except OSError:
            for stage, size in sizes.items():
                appenders[stage].cut_back(size)
            self.journal_path.unlink(missing_ok=True)
            raise
        if journal:
            self.journal_path.unlink()
        for stage, records in pending.items():
            self._remember(stage, records)

    @property
    def journal_path(self) -> Path:
        """The journal of a group spanning several files: present only while one is written, or
        after a crash until ``recover`` runs."""
        return self.path / JOURNAL

    def _open_journal(self, sizes: dict[str, int]) -> None:
        data = json.dumps({self.stage_file(stage).name: size for stage, size in sizes.items()})
        handle = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            write_all(handle, data.encode("utf-8"))
        except OSError:
            self.journal_path.unlink(missing_ok=True)
            raise
        finally:
            os.close(handle)

    def recover(self) -> list[str]:
        """Undo what a crashed writer left half-written, before anything is appended: the group
        the journal names, in every file it touched, then a partial group at the end of any
        JSONL file. A writer calls it holding the folder's lock; returns the files it cut."""
        try:
            sizes = json.loads(self.journal_path.read_bytes())
        except FileNotFoundError:
            sizes = {}
        except ValueError:  # the journal's own write was cut: no line of its group was written
            sizes = {}
        cut = []
        for name, size in sizes.items():
            path = self.path / name
            if path.exists() and path.stat().st_size > size:
                os.truncate(path, size)
                cut.append(name)
        self.journal_path.unlink(missing_ok=True)
        cut += [path.name for path in sorted(self.path.glob("*.jsonl"))
                if path.name not in PEOPLE_LOGS and cut_partial_group(path)]
        if cut:  # what was read before is stale
            self._records.clear()
            self._ids.clear()
            self._reject_log = None
        return sorted(set(cut))

    def write_records(self, stage: str, records: Iterable[BaseModel]) -> None:
        """Replace a stage's whole file atomically (stages decided as a whole)."""
        records = list(records)
        write_text_atomic(self.stage_file(stage),
                          "".join(record.model_dump_json() + "\n" for record in records))
        self._records.pop(stage, None)
        self._ids[stage] = set()
        self._remember(stage, records)

    def _remember(self, stage: str, records: list[BaseModel]) -> None:
        if stage == REJECTS:
            self._latest_rejects()
            for reject in records:
                self._log_reject(reject)  # type: ignore[arg-type]
            return
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
        """Log a reject, as one group (inside ``group``: as part of that group)."""
        self.append(REJECTS, [reject])

    def close(self) -> None:
        """Flush and close every stage file; a later ``append`` opens its file again."""
        for appender in self._appenders.values():
            appender.close()
        self._appenders.clear()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_path(config: BuildConfig, run_dir: Path | None, shard: Shard | None = None) -> Path:
    """A build's run folder: ``--run-dir``, else ``runs/<config name>`` (for shard ``i/N``
    ``runs/<config name>-shard-i-of-N``)."""
    if run_dir is not None:
        return Path(run_dir)
    if shard is None:
        return Path("runs") / config.name
    return Path("runs") / f"{config.name}-shard-{shard.index}-of-{shard.count}"


def lock_run(path: Path, command: str, new: bool = False) -> FolderLock:
    """Take a run folder's lock (``FolderInUse`` if another process writes it), then undo what
    a crashed writer left half-written, before this command reads or writes anything. Only a
    build (``new``) may lock a folder that is not a run folder yet."""
    if not new and not RunDir(path).exists():
        raise ConfigError(f"{path}: not a run folder (no config.yaml)")
    lock = FolderLock(Path(path), command)
    try:
        RunDir(path).recover()
    except BaseException:
        lock.release()
        raise
    return lock
