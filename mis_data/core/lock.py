"""One writer per folder: a run folder (or an eval folder) is written by one command at a time.

Two builds on one folder would append every record twice and race on the exports, so every
command that writes a folder first takes an exclusive ``fcntl.flock`` on ``FOLDER/.lock`` and
writes its pid and command into it. A second writer is refused at once with the holder's pid.
The kernel drops the lock when its process ends, however it ends, so a lock file left by a
killed process (its pid is dead) is simply taken over; the file itself stays, emptied on release,
so that no two processes can ever lock two different files of the same name. Readers (info,
stats, validate, a gallery without --serve) take no lock: every file they read is whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class FolderInUse(Exception):
    """Another live mis-data process holds the folder's lock."""


def holder_text(handle: int) -> str:
    """Who holds the lock, as its file says (the holder may not have written it yet)."""
    try:
        holder: Any = json.loads(os.pread(handle, 4096, 0) or b"null")
    except ValueError:
        holder = None
    if isinstance(holder, dict) and "pid" in holder:
        return f"mis-data pid {holder['pid']} ({holder.get('command', '?')})"
    return "another mis-data process"


def refusal(folder: Path, handle: int) -> FolderInUse:
    """The error a second writer gets, naming the holder; returned rather than raised so that the
    caller can close its handle first."""
    return FolderInUse(f"{folder} is in use by {holder_text(handle)}; wait for it or stop it")


class FolderLock:
    """The exclusive lock on one folder, taken on creation (``FolderInUse`` if held)."""

    def __init__(self, folder: Path, command: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = refusal(folder, self._handle)
            os.close(self._handle)
            raise error from None
        with contextlib.suppress(OSError):  # who holds it only words a refusal; a full disk
            os.ftruncate(self._handle, 0)   # must not leave the lock held by a failed command
            os.pwrite(self._handle, json.dumps({"pid": os.getpid(), "command": command}).encode(),
                      0)

    def release(self) -> None:
        """Empty the file (no holder is named once it is free), then let go."""
        if self._handle < 0:
            return
        with contextlib.suppress(OSError):  # a full disk must not keep the lock held
            os.ftruncate(self._handle, 0)
        os.close(self._handle)  # closing the last descriptor releases the flock
        self._handle = -1

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_free(folder: Path) -> None:
    """Refuse early, creating nothing, when another process holds the folder's lock (a build
    checks this before printing its plan; the lock itself is taken once the config is valid)."""
    try:
        handle = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise refusal(folder, handle) from None
    finally:
        os.close(handle)
