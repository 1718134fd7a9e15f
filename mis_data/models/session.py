"""What every request of one build (or eval) shares, whichever server answers it.

The response cache (answered before? then no request at all), in-flight sharing (the same
question asked twice at once is sent once), the cost cap and the usage meter. The HTTP client
(``client.py``) puts each request through ``Session.once``; nothing here knows about HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mis_data.core.rundir import dump_json, read_json_or_none, write_text_atomic
from mis_data.models.base import BudgetExceeded, Usage, UsageMeter
from mis_data.models.cache import CachedReply, ResponseCache


class Session:
    """The state every request of one build or eval shares: cache, requests in flight, cost cap and
    usage. One per client; ``close`` it when done."""

    def __init__(self, cache_path: Path, max_cost: float | None = None) -> None:
        self.cache = ResponseCache(cache_path)
        self.max_cost = max_cost
        self.usage = UsageMeter()
        previous = read_json_or_none(cache_path.parent / "usage.json") or {}
        self.spent_before = float(previous.get("total", {}).get("cost_usd", 0.0))
        self._inflight: dict[str, asyncio.Future[CachedReply]] = {}

    def spent(self) -> float:
        """Dollars spent by this run folder, earlier invocations included."""
        return self.spent_before + self.usage.total.cost_usd

    def check_budget(self, estimate: float) -> None:
        """Raise ``BudgetExceeded`` when ``estimate`` more dollars would pass the cap; called before
        sending, so the build stops ahead of the cap instead of after it."""
        if self.max_cost is not None and self.spent() + estimate > self.max_cost:
            raise BudgetExceeded(
                f"stopping before the cost cap: ${self.spent():.4f} spent, the next request may "
                f"cost ${estimate:.4f}, cap ${self.max_cost:.2f}. Everything so far is kept; rerun "
                "the same command with a higher --max-cost to continue.")

    async def once(self, key: str, stage: str, model: str,
                   send: Callable[[], Awaitable[CachedReply]]) -> CachedReply:
        """Answer from the cache, or join the same request in flight, or send it and cache it."""
        cached = self.cache.get(key)
        if cached is not None:
            self.usage.record(stage, model, Usage(cached=1))
            return cached
        if key in self._inflight:  # the same question is already on its way
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[CachedReply] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            reply = await send()
            self.cache.put(key, reply)
            future.set_result(reply)
            return reply
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    def close(self) -> None:
        """Close the response cache; the session is unusable afterwards."""
        self.cache.close()


class UsageLog:
    """The folder's ``usage.json`` with this session's usage in it, rewritten as the session
    goes (``save``), so a session that is killed leaves what it spent: the next session's cost
    cap and totals include it. A session that sent nothing is not added."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "usage.json"
        self.before = list((read_json_or_none(self.path) or {}).get("sessions", []))
        self.last: dict[str, Any] | None = None

    def save(self, session: dict[str, Any]) -> dict[str, Any]:
        """Write the sessions before this one plus ``session`` (unless nothing changed)."""
        sessions = self.before + ([session] if session["total"]["requests"] else [])
        total: dict[str, float] = {}
        for entry in sessions:
            for key, value in entry["total"].items():
                total[key] = total.get(key, 0) + value
        data = {"sessions": sessions, "total": total}
        if data != self.last or not self.path.exists():
            write_text_atomic(self.path, dump_json(data))
            self.last = data
        return data


def record_usage(folder: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Add one session's usage (``UsageMeter.as_dict``) to the folder's ``usage.json``, which
    the next session's cost cap reads; a session that sent nothing is not added."""
    return UsageLog(folder).save(session)
