"""Asyncio tasks that live and die together: ``gather_all`` waits for a group and stops every
task of it when one raises; ``run_pool`` is a bounded pool of workers over a list (for the
eval), built on it. The build's stages stream into each other instead (``stages.base``).
``Mapper`` is where a build's CPU work runs: threads of this process, or Ray tasks."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class Mapper(Protocol):
    """Runs one function over many items, where the build's CPU work goes (pHash, exports)."""

    def map(self, fn: Callable[[ItemT], ResultT], items: Sequence[ItemT]) -> list[ResultT]:
        """``fn`` of every item, in the items' order."""


class ThreadMapper:
    """This process's threads: enough for work that releases the GIL (Pillow's decoding and
    the DCT of a pHash); ``executor: ray`` replaces it with Ray tasks."""

    def map(self, fn: Callable[[ItemT], ResultT], items: Sequence[ItemT]) -> list[ResultT]:
        """``fn`` of every item, in the items' order, on up to one thread per core."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
            return list(pool.map(fn, items))


async def run_pool(items: Sequence[ItemT], width: int,
                   handle: Callable[[ItemT], Awaitable[None]]) -> None:
    """Call ``handle`` on every item, ``width`` at a time, in list order; the first error
    cancels the other workers and is raised."""
    queue = deque(items)

    async def worker() -> None:
        while queue:
            await handle(queue.popleft())

    await gather_all([asyncio.create_task(worker())
                      for _ in range(max(1, min(width, len(items))))])


async def gather_all(tasks: Sequence[asyncio.Task[Any]]) -> list[Any]:
    """Every task's result, in order; the first error (or a cancellation of this wait) cancels
    the other tasks, waits until they have stopped, and is raised."""
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        await stop_all(tasks)


async def stop_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel the tasks not done yet and wait until every one has stopped."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
