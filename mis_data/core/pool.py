"""Asyncio tasks that live and die together: ``gather_all`` waits for a group and stops every
task of it when one raises; ``run_pool`` is a bounded pool of workers over a list (for the
eval), built on it. The build's stages stream into each other instead (``stages.base``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

ItemT = TypeVar("ItemT")


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
