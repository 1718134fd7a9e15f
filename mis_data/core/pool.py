"""A bounded pool of asyncio workers over a list, for the eval: it takes items in order, keeps at
most ``width`` in flight, and stops every worker when one item raises. The build's stages
stream into each other instead, in ``stages.base.run_items``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

ItemT = TypeVar("ItemT")


async def run_pool(items: Sequence[ItemT], width: int,
                   handle: Callable[[ItemT], Awaitable[None]]) -> None:
    """Call ``handle`` on every item, ``width`` at a time, in list order; the first error
    cancels the other workers and is raised."""
    queue = deque(items)

    async def worker() -> None:
        while queue:
            await handle(queue.popleft())

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(width, len(items))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
