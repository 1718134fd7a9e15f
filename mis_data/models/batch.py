"""The Batch API: requests collected, written as JSONL, uploaded, polled, matched by custom_id.

A stage's requests are queued instead of sent; when no new request has arrived for a moment
(or a file is full), the queue is written as one or more JSONL files under the API's limits
(50,000 lines, 190 MB), uploaded with ``purpose="batch"`` and submitted. Every batch id is kept
in ``batches.json`` beside the cache *before* polling starts, so a rerun after a crash resumes
polling the batches already paid for instead of submitting them again. Results are matched back
by ``custom_id`` (the cache key), in whatever order the output file lists them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI

from mis_data.core.rundir import dump_json, read_json_or_none, write_text_atomic
from mis_data.models.base import ServersDown

log = logging.getLogger("mis_data")
MAX_LINES = 50_000
MAX_BYTES = 190 * 2**20
POLL_FAILURES = 10  # polls of one batch that may fail in a row before the build stops
# What a poll or a download may meet on the way and survive by trying again.
PASSING_FAULTS = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                  openai.RateLimitError)


@dataclass
class BatchResult:
    """One request's outcome: the chat completion body, or an error message."""

    body: dict[str, Any] | None
    error: str | None = None
    status: int | None = None  # the HTTP status of a request the provider answered with an error
    error_body: dict[str, Any] | None = None  # and its body (a moderation block names itself here)


class BatchRunner:
    """Sends queued requests as Batch API jobs and resolves each caller's future when its batch
    finishes. Batch ids are saved to ``state_path`` before polling, so a rerun resumes them instead
    of paying twice."""

    def __init__(self, client: AsyncOpenAI, state_path: Path, idle_seconds: float = 0.3,
                 poll_seconds: float = 5.0) -> None:
        self.client = client
        self.state_path = state_path
        self.idle_seconds = idle_seconds
        self.poll_seconds = poll_seconds
        self.queue: dict[str, tuple[dict[str, Any], asyncio.Future[BatchResult]]] = {}
        self.waiting: dict[str, asyncio.Future[BatchResult]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._pollers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.submitted = 0

    # -- state on disk -------------------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        """The saved batches (id -> keys and status); an empty state when there is no file yet."""
        return read_json_or_none(self.state_path) or {"batches": {}}

    def save_batch(self, batch_id: str, keys: list[str], status: str) -> None:
        """Record a batch's keys and last status; rewritten atomically, so a crash never loses a
        submitted batch."""
        state = self.load_state()
        state["batches"][batch_id] = {"keys": keys, "status": status}
        write_text_atomic(self.state_path, dump_json(state))

    def pending_batch_of(self, key: str) -> str | None:
        """The unfinished batch that already holds request ``key``, if any: the request must wait
        for it, not be submitted again."""
        for batch_id, entry in self.load_state()["batches"].items():
            if entry["status"] not in ("completed", "failed", "expired", "cancelled") \
                    and key in entry["keys"]:
                return batch_id
        return None

    # -- submitting ----------------------------------------------------------------------------
    async def result(self, key: str, body: dict[str, Any]) -> BatchResult:
        """The outcome of one request, through a batch (resuming one already submitted)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BatchResult] = loop.create_future()
        pending = self.pending_batch_of(key)
        if pending is not None:
            self.waiting[key] = future
            if not any(task.get_name() == pending for task in self._pollers):
                self._start_polling(pending)
        else:
            self.queue[key] = (body, future)
            self._changed.set()
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_when_idle())
        return await future

    async def _flush_when_idle(self) -> None:
        while self.queue:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), self.idle_seconds)
                if sum(1 for _ in self.queue) < MAX_LINES:
                    continue
            except TimeoutError:
                pass
            await self._submit()

    async def _submit(self) -> None:
        items, self.queue = self.queue, {}
        lines: list[tuple[str, bytes]] = []
        for key, (body, future) in items.items():
            self.waiting[key] = future
            line = json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                               "body": body}).encode() + b"\n"
            lines.append((key, line))
        for chunk in chunks(lines):
            keys = [key for key, _ in chunk]
            try:
                uploaded = await self.client.files.create(
                    file=("mis-data-batch.jsonl", b"".join(line for _, line in chunk)),
                    purpose="batch")
                batch = await self.client.batches.create(
                    input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                    completion_window="24h", metadata={"tool": "mis-data"})
            except Exception as error:  # any failure to submit fails these items, not the build
                self._settle(keys, BatchResult(
                    body=None, error=f"batch submission failed: {type(error).__name__}"))
                continue
            self.save_batch(batch.id, keys, batch.status)
            self.submitted += 1
            log.info("submitted batch %s with %d requests", batch.id, len(keys))
            self._start_polling(batch.id)

    def _start_polling(self, batch_id: str) -> None:
        task = asyncio.create_task(self._poll(batch_id), name=batch_id)
        self._pollers.add(task)
        task.add_done_callback(self._pollers.discard)

    # -- collecting ----------------------------------------------------------------------------
    async def _poll(self, batch_id: str) -> None:
        """Wait for one batch and hand out its results. A poll or download that fails on the
        way (a timeout, a dropped connection, a 5xx or 429) is tried again at the next poll:
        the batch is paid for and keeps running. After ``POLL_FAILURES`` failures in a row the
        requests waiting for it stop the build with ``ServersDown`` (the batch stays in
        ``batches.json``, so running the same command again resumes polling it)."""
        keys = self.load_state()["batches"][batch_id]["keys"]
        failures = 0
        while True:
            try:
                batch = await self.client.batches.retrieve(batch_id)
                if batch.status in ("completed", "failed", "expired", "cancelled"):
                    found = await self._download(batch)
                    break
                failures = 0
            except PASSING_FAULTS as error:
                failures += 1
                if failures >= POLL_FAILURES:
                    self._settle(keys, ServersDown(
                        f"the Batch API did not answer {failures} polls of {batch_id} in a row "
                        f"({type(error).__name__}); the batch is kept in batches.json: run the "
                        "same command again to resume polling it"))
                    return
                log.warning("polling %s failed (%s); trying again", batch_id,
                            type(error).__name__)
            await asyncio.sleep(self.poll_seconds)
        self.save_batch(batch_id, keys, batch.status)
        missing = BatchResult(body=None, error=f"batch {batch.status}: no result")
        self._settle(keys, lambda key: found.get(key, missing))

    async def _download(self, batch: Any) -> dict[str, BatchResult]:
        """Each request's result in a finished batch, from its output and error files."""
        found: dict[str, BatchResult] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self.client.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        row = json.loads(line)
                        found[row["custom_id"]] = line_result(row)
        return found

    def _settle(self, keys: list[str],
                outcome: BatchResult | Callable[[str], BatchResult] | BaseException) -> None:
        """Give every request still waiting for one of ``keys`` its result (``outcome``, or
        ``outcome`` of its key), or raise ``outcome`` in it."""
        for key in keys:
            future = self.waiting.pop(key, None)
            if future is None or future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome if isinstance(outcome, BatchResult) else outcome(key))

    async def aclose(self) -> None:
        """Stop polling and flushing; batches already submitted keep running on the server and are
        resumed by the next run."""
        for task in [*self._pollers, *([self._flusher] if self._flusher else [])]:
            task.cancel()


def line_result(row: dict[str, Any]) -> BatchResult:
    """One line of a batch's output or error file: the completion, or why there is none, with the
    status and error body the provider gave the request (what a direct request would have got)."""
    response = row.get("response") or {}
    status = response.get("status_code")
    if status == 200:
        return BatchResult(body=response.get("body"))
    body = response.get("body") if isinstance(response.get("body"), dict) else None
    nested = (body or {}).get("error")
    message = (row.get("error") or {}).get("message") or (
        nested.get("message") if isinstance(nested, dict) else None)
    return BatchResult(body=None, error=str(message or f"status {status}"),
                       status=status if isinstance(status, int) else None, error_body=body)


def chunks(lines: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    """Split request lines into files under the API's line and size limits."""
    result: list[list[tuple[str, bytes]]] = [[]]
    size = 0
    for item in lines:
        if result[-1] and (len(result[-1]) >= MAX_LINES or size + len(item[1]) > MAX_BYTES):
            result.append([])
            size = 0
        result[-1].append(item)
        size += len(item[1])
    return result
