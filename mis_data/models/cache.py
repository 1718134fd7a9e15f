"""The response cache: every answered request, keyed by what was asked, in the run folder.

SQLite in WAL mode, one connection used from the event loop thread only, so concurrent stage
workers never race on it. The key hashes the model, endpoint, messages (images as sha256, never
bytes), response schema and generation parameters: a rerun of an interrupted build asks the
server nothing it already answered. The API key is never part of a key or a row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def cache_key(payload: dict[str, Any]) -> str:
    """The cache key of a request: a sha256 of its canonical JSON, so key order in ``payload`` never
    matters."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class CachedReply:
    """A server's answer as kept: text or a refusal, a generated image, or ``blocked`` (the
    provider's moderation verdict on the request, kept so that a rerun never asks again)."""

    text: str | None
    refusal: str | None
    input_tokens: int
    output_tokens: int
    image: bytes | None = None
    blocked: str | None = None


COLUMNS = "text, refusal, input_tokens, output_tokens, image, blocked"


class ResponseCache:
    """Answered requests by key in SQLite; use it from the event loop thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # several processes may write (Ray workers): wait for another's write, do not fail
        self.connection = sqlite3.connect(path, isolation_level=None, timeout=60)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT, refusal TEXT, "
            "input_tokens INTEGER, output_tokens INTEGER, image BLOB, blocked TEXT)")
        columns = {row[1] for row in self.connection.execute("PRAGMA table_info(replies)")}
        if "blocked" not in columns:  # a cache made before blocks were kept
            self.connection.execute("ALTER TABLE replies ADD COLUMN blocked TEXT")

    def get(self, key: str) -> CachedReply | None:
        """The kept reply for ``key``, or None when it was never answered."""
        row = self.connection.execute(
            f"SELECT {COLUMNS} FROM replies WHERE key = ?", (key,)).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, reply: CachedReply) -> None:
        """Keep ``reply`` under ``key``, replacing any earlier one; autocommitted at once."""
        self.connection.execute(
            f"INSERT OR REPLACE INTO replies ({COLUMNS}, key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (reply.text, reply.refusal, reply.input_tokens, reply.output_tokens, reply.image,
             reply.blocked, key))

    def close(self) -> None:
        """Close the database; the cache is unusable afterwards."""
        self.connection.close()
