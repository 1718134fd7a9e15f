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
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class CachedReply:
    text: str | None
    refusal: str | None
    input_tokens: int
    output_tokens: int
    image: bytes | None = None


class ResponseCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT, refusal TEXT, "
            "input_tokens INTEGER, output_tokens INTEGER, image BLOB)")

    def get(self, key: str) -> CachedReply | None:
        row = self.connection.execute(
            "SELECT text, refusal, input_tokens, output_tokens, image FROM replies WHERE key = ?",
            (key,)).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, reply: CachedReply) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?)",
            (key, reply.text, reply.refusal, reply.input_tokens, reply.output_tokens, reply.image))

    def close(self) -> None:
        self.connection.close()
