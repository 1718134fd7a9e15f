"""The reviewers' decision log, ``RUN/decisions.jsonl``: read and appended by the gallery, the
``apply-decisions`` command and the build.

The log is written by people and their tools, so its reader is forgiving where the stage files'
reader is strict: a last line that lacks only its newline is kept, a line that is not UTF-8 or
not a decision is named and skipped. It is appended here rather than through
``rundir.JsonlAppender``, whose group markers and tail cut are made for files the build alone
writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from mis_data.core.records import LateStep, ReviewDecision

DECISIONS = "decisions.jsonl"
REVIEW_STAGE = LateStep.review.value
REVIEW_QUEUE = "review_queue"


def read_decisions(path: Path) -> tuple[list[ReviewDecision], list[str]]:
    """Every valid decision of a JSONL file in file order, and one line per line skipped.

    The log is written by people and their tools, not only by ``append_decisions``: a last line
    without its newline is kept when it is complete JSON (an editor or a script that leaves the
    newline out), and a line that is not UTF-8 is named and skipped, never fatal, so one bad
    byte cannot stop a build, ``apply-decisions`` or the gallery.
    """
    decisions: list[ReviewDecision] = []
    problems: list[str] = []
    for number, raw, is_tail in log_lines(path):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(f"{path.name} line {number}: not UTF-8 text (byte 0x{raw[error.start]:02x} "
                            f"at byte {error.start + 1} of the line)")
            continue
        if is_tail and not complete_json(raw):
            problems.append(f"{path.name} line {number}: cut off (no newline at the end and not "
                            "complete JSON)")
            continue
        try:
            decisions.append(ReviewDecision.model_validate_json(text))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "line"
            problems.append(f"{path.name} line {number}: {where}: {first['msg']}")
    return decisions, problems


def log_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes, is the last line without a newline) of every non-blank line."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, raw, number == len(lines)


def complete_json(raw: bytes) -> bool:
    """True when a line is one whole JSON value (a line cut by a crash is not)."""
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def settle_tail(path: Path) -> str | None:
    """Before appending: a last line without its newline gets one when it is complete JSON, and
    is cut when it is not (what a crash mid-write leaves), with a line saying so."""
    if not path.exists():
        return None
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return None
    start = data.rfind(b"\n") + 1
    tail = data[start:]
    if complete_json(tail):
        with open(path, "ab") as handle:
            handle.write(b"\n")
        return None
    with open(path, "rb+") as handle:
        handle.truncate(start)
    if not tail.strip():
        return None
    number = data.count(b"\n") + 1
    shown = tail[:80].decode("utf-8", "replace")
    return (f"{path.name} line {number}: cut off (no newline at the end and not complete JSON); "
            f"removed before appending: {shown!r}")


def append_decisions(path: Path, decisions: list[ReviewDecision]) -> str | None:
    """Append decisions as one write (a crash keeps all or a cut partial line), then fsync;
    returns what was said about the file's last line (``settle_tail``), if anything."""
    if not decisions:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    note = settle_tail(path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(decision.model_dump_json() + "\n" for decision in decisions))
        handle.flush()
        os.fsync(handle.fileno())
    return note
