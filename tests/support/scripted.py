"""A scripted model client for stage tests: answers come from a function of the request.

It goes through ``answer_with_feedback`` like every backend, so a stage's checks and the one
feedback round behave exactly as with a real server; what it cannot show (HTTP, retries,
caching) is covered by the loopback-server tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mis_data.images.typography import render_typography
from mis_data.models.base import (
    ChatMessage,
    ImageRequest,
    ImageResult,
    ModelResult,
    RawReply,
    StructuredRequest,
    Usage,
    UsageMeter,
    answer_with_feedback,
)
from mis_data.models.offline import OfflineClient

# A script returns a dict (the JSON answer), a str (raw reply text), a RawReply, or None to let
# the offline backend answer (so a test scripts only the task it is about).
Script = Callable[[StructuredRequest, int], Any]


class ScriptedClient:
    name = "scripted"

    def __init__(self, script: Script, offline: OfflineClient) -> None:
        self.script = script
        self.offline = offline
        self.usage = UsageMeter()
        self.requests: list[tuple[str, str, int]] = []

    def model_name(self, role: str) -> str:
        return f"scripted-{role}"

    async def aclose(self) -> None:
        return None

    async def structured(self, request: StructuredRequest) -> ModelResult:
        attempt_number = 0

        async def attempt(messages: list[ChatMessage]) -> RawReply:
            nonlocal attempt_number
            attempt_number += 1
            self.requests.append((request.task, request.item_id, attempt_number))
            self.usage.record(request.stage, self.model_name(request.role), Usage(requests=1))
            answer = self.script(request, attempt_number)
            if answer is None:
                answer = self.offline.answer(request.task, request.facts)
            if isinstance(answer, RawReply):
                return answer
            if isinstance(answer, str):
                return RawReply(text=answer)
            return RawReply(parsed=request.response_model.model_validate(answer))

        return await answer_with_feedback(request, attempt, self.model_name(request.role))

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        return ImageResult(data=render_typography(request.facts["object"], request.item_id, 64),
                           model="scripted-image")
