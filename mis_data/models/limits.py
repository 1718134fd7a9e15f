"""Rate limits and retry timing for OpenAI-compatible servers.

``RateLimiter`` holds requests and estimated tokens over a sliding window (RPM and TPM).
``retry_delay`` reads the server's own hints (``retry-after-ms``, ``retry-after``,
``x-ratelimit-reset-requests`` / ``-tokens``) before falling back to exponential backoff with
jitter, so a build slows down exactly as much as the server asks and no more.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import deque
from collections.abc import Mapping
from typing import Protocol

DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"`` -> seconds; None when unreadable."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = DURATION_PART.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
        return None
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


def retry_delay(attempt: int, headers: Mapping[str, str] | None, base: float = 0.5,
                cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    headers = {key.lower(): value for key, value in (headers or {}).items()}
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    for name in ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        if name in headers:
            seconds = parse_duration(headers[name])
            if seconds is not None:
                return min(max(0.0, seconds), 120.0)
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def image_tokens(width: int, height: int, detail: str) -> int:
    """OpenAI's vision token rule: 85 for low detail, else 85 + 170 per 512-px tile."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    fitted_width, fitted_height = width * scale, height * scale
    scale = min(1.0, 768 / min(fitted_width, fitted_height))
    fitted_width, fitted_height = fitted_width * scale, fitted_height * scale
    return 85 + 170 * math.ceil(fitted_width / 512) * math.ceil(fitted_height / 512)


class RateLimiter:
    """At most ``rpm`` requests and ``tpm`` estimated tokens in any ``window`` seconds."""

    def __init__(self, rpm: int | None, tpm: int | None, window: float = 60.0) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window = window
        self._sent: deque[tuple[float, int]] = deque()
        self._tokens = 0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        """Wait until a request of ``tokens`` estimated tokens fits the window, then count it;
        returns at once when no limit is set."""
        if self.rpm is None and self.tpm is None:
            return
        tokens = min(tokens, self.tpm) if self.tpm else tokens
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._sent and self._sent[0][0] <= now - self.window:
                    self._tokens -= self._sent.popleft()[1]
                fits_rpm = self.rpm is None or len(self._sent) < self.rpm
                fits_tpm = self.tpm is None or self._tokens + tokens <= self.tpm
                if fits_rpm and fits_tpm:
                    self._sent.append((now, tokens))
                    self._tokens += tokens
                    return
                await asyncio.sleep(max(0.001, self._sent[0][0] + self.window - now))


class SharedLimits(Protocol):
    """Limits kept for a whole cluster (``executor: ray``): every worker's client asks before
    it sends, so a server sees the configured concurrency and a provider the configured rates
    however many workers send. The client's own limits still apply within each worker."""

    async def admit(self, model: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        """Wait until a request of ``tokens`` fits ``model``'s rates, counted for everyone."""

    async def enter(self, server: str, concurrency: int) -> None:
        """Wait for one of the ``concurrency`` slots of ``server`` (its model at its address)."""

    async def leave(self, server: str) -> None:
        """Give the slot back."""
