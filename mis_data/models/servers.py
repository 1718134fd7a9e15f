"""The servers of one model role: which one takes the next request, and which are resting.

A group running open models puts one vLLM or SGLang server on each GPU node; a role then names
several endpoints. The next request goes to the server with the fewest requests in flight,
within that server's own concurrency. A server that cannot be reached (connection refused, a
timeout, a 5xx) is left out for a cool-down while the others carry its requests; when every
server is resting, requests wait for the first to come back. With one server nothing rests:
its failures are retried with backoff, as for a hosted API.

The pool also knows how long the whole role has been unreachable: since every one of its
servers last failed to connect (or timed out) with no answer after. The client stops the build
once that passes the model's ``all_down_seconds`` (``ServersDown``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from openai import AsyncOpenAI

log = logging.getLogger("mis_data")


def display_url(url: str | None) -> str:
    """A server's address for logs and stats, without any credentials in it."""
    if not url:
        return "default"
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class Server:
    """One endpoint of a role with its own HTTP client and concurrency; the pool keeps its
    bookkeeping (in flight, resting, unreachable) on it."""

    url: str
    client: AsyncOpenAI
    concurrency: int
    in_flight: int = 0
    resting_until: float = 0.0
    order: int = field(default=0, compare=False)
    answered_at: float = 0.0  # when it last answered anything, even an HTTP error
    unreachable_since: float | None = None  # when its unbroken run of connection failures began

    def free(self, now: float) -> bool:
        """Whether it can take a request at ``now``: below its concurrency and not resting."""
        return self.in_flight < self.concurrency and self.resting_until <= now


class ServerPool:
    """Hands a role's servers to requests (least busy first), rests failing ones and measures how
    long the whole role has been down."""

    def __init__(self, servers: list[Server], cooldown: float,
                 changed: asyncio.Condition | None = None) -> None:
        """``changed`` is shared by pools whose roles share servers: a server one role gives
        back wakes the requests of every role waiting for it."""
        self.servers = servers
        self.cooldown = cooldown
        self._changed = changed or asyncio.Condition()

    async def acquire(self) -> Server:
        """The free server with the fewest requests in flight; waits while none is free."""
        async with self._changed:
            while True:
                now = time.monotonic()
                free = [server for server in self.servers if server.free(now)]
                if free:
                    server = min(free, key=lambda s: (s.in_flight, s.order))
                    server.in_flight += 1
                    return server
                resting = [s.resting_until for s in self.servers if s.resting_until > now]
                timeout = min(resting) - now if resting else None
                with contextlib.suppress(TimeoutError):  # a resting server may be back
                    await asyncio.wait_for(self._changed.wait(), timeout)

    async def release(self, server: Server) -> None:
        """Give back a server taken by ``acquire`` and wake the requests waiting for one; call it
        exactly once per ``acquire``."""
        async with self._changed:
            server.in_flight -= 1
            self._changed.notify_all()

    def rest(self, server: Server, why: str) -> bool:
        """Leave ``server`` out for the cool-down; False when it is the only server."""
        if len(self.servers) < 2 or self.cooldown <= 0:
            return False
        if server.resting_until <= time.monotonic():
            log.warning("%s: %s; resting it for %.0f s, the other servers take its requests",
                        server.url, why, self.cooldown)
        server.resting_until = time.monotonic() + self.cooldown
        return True

    def others_awake(self, server: Server) -> bool:
        """Whether another server is not resting now, so a retry can go there at once instead of
        backing off."""
        now = time.monotonic()
        return any(other is not server and other.resting_until <= now for other in self.servers)

    def answered(self, server: Server) -> None:
        """The server answered (a reply or an HTTP error): it is reachable."""
        server.answered_at = time.monotonic()
        server.unreachable_since = None

    def unreachable(self, server: Server, started: float) -> None:
        """A request started at ``started`` could not connect or timed out: the server has
        been unreachable since then, or since its last answer if that came later."""
        if server.unreachable_since is None:
            server.unreachable_since = max(started, server.answered_at)

    def down_for(self) -> float | None:
        """Seconds every server has been unreachable without a break; None while one is not."""
        since = [server.unreachable_since for server in self.servers]
        if not since or any(moment is None for moment in since):
            return None
        return time.monotonic() - max(moment for moment in since if moment is not None)

    def names(self) -> str:
        """The servers' addresses, comma-separated, for messages."""
        return ", ".join(server.url for server in self.servers)
