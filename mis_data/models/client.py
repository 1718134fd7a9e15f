"""The real backend: any OpenAI-compatible server (OpenAI, vLLM, SGLang, ...) via ``AsyncOpenAI``.

Every request passes, in order: the response cache (answered before? no HTTP at all), the cost
cap, the model's concurrency semaphore and RPM/TPM limiter, then the call with our own retries
(the SDK's are off so that ``Retry-After`` and ``x-ratelimit-reset-*`` are honoured and counted).
Structured output asks for a strict ``json_schema``; a server that rejects it is asked with
``json_object``, then plain text, and the mode that worked is remembered per model. Refusals end
the item at once. Images travel as base64 data URLs built at send time, never stored. With
``--batch``, chat requests go through the Batch API instead (``batch.py``), cached the same way.
Free-text requests (``complete``, for the model under test of ``mis-data eval``) take the same
path — cache, in-flight sharing, cost cap, limiter, retries — with no response format.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.lib._pydantic import to_strict_json_schema
from PIL import Image
from pydantic import BaseModel

from mis_data.config import BuildConfig, ModelSpec
from mis_data.images.store import ImageStore
from mis_data.models.base import (
    BudgetExceeded,
    ChatMessage,
    ImagePart,
    ImageRequest,
    ImageResult,
    ModelResult,
    RawReply,
    StructuredRequest,
    TextRequest,
    TextResult,
    Usage,
    UsageMeter,
    answer_with_feedback,
)
from mis_data.models.batch import BatchRunner
from mis_data.models.cache import CachedReply, ResponseCache, cache_key
from mis_data.models.limits import RateLimiter, image_tokens, retry_delay
from mis_data.records import REFUSAL_OPENER, RejectReason
from mis_data.rundir import read_json_or_none

log = logging.getLogger("mis_data")
MODES = ("json_schema", "json_object", "text")
SCHEMA_REJECTED = re.compile(r"response_format|json_schema|json_object|structured", re.IGNORECASE)


class TransportFailure(Exception):
    """Retries exhausted or a non-retryable error: the item fails with ``api_error``."""


class ModelLane:
    """One configured model: its client, limits and remembered structured-output mode."""

    def __init__(self, spec: ModelSpec, client: AsyncOpenAI, window: float) -> None:
        self.spec = spec
        self.client = client
        self.semaphore = asyncio.Semaphore(spec.concurrency)
        self.limiter = RateLimiter(spec.rpm, spec.tpm, window)
        self.mode_index = 0


class OpenAIClient:
    """Implements ``ModelClient`` against OpenAI-compatible HTTP servers."""

    name = "openai"

    def __init__(self, config: BuildConfig | None, store: ImageStore, cache_path: Path,
                 max_cost: float | None = None, batch: bool = False,
                 rate_window: float = 60.0, batch_poll_seconds: float = 10.0,
                 roles: Mapping[str, ModelSpec] | None = None) -> None:
        """``roles`` (role name -> model) replaces a build config's roles, for callers that
        are not a build (``mis-data eval``: the model under test and its judge)."""
        self.config = config
        self.batching = batch
        self.store = store
        self.cache = ResponseCache(cache_path)
        self.max_cost = max_cost
        self.usage = UsageMeter()
        previous = read_json_or_none(cache_path.parent / "usage.json") or {}
        self.spent_before = float(previous.get("total", {}).get("cost_usd", 0.0))
        clients: dict[tuple[str | None, str], AsyncOpenAI] = {}
        self.lanes: dict[str, ModelLane] = {}
        if roles is None:
            if config is None:
                raise ValueError("OpenAIClient needs a build config or explicit roles")
            roles = build_roles(config)
        for role, spec in roles.items():
            key = (spec.base_url, spec.api_key_env)
            if key not in clients:
                clients[key] = AsyncOpenAI(api_key=spec.api_key() or "missing",
                                           base_url=spec.base_url, max_retries=0,
                                           timeout=spec.timeout)
            self.lanes[role] = ModelLane(spec, clients[key], rate_window)
        self._clients = list(clients.values())
        self.batches = {id(c): BatchRunner(c, cache_path.parent / "batches.json",
                                           poll_seconds=batch_poll_seconds)
                        for c in self._clients} if batch else {}
        self._inflight: dict[str, asyncio.Future[CachedReply]] = {}

    def model_name(self, role: str) -> str:
        return self.lanes[role].spec.model

    async def aclose(self) -> None:
        for runner in self.batches.values():
            await runner.aclose()
        for client in self._clients:
            await client.close()
        self.cache.close()

    # -- cost ------------------------------------------------------------------------------
    def spent(self) -> float:
        return self.spent_before + self.usage.total.cost_usd

    def check_budget(self, estimate: float) -> None:
        if self.max_cost is not None and self.spent() + estimate > self.max_cost:
            raise BudgetExceeded(
                f"stopping before the cost cap: ${self.spent():.4f} spent, the next request may "
                f"cost ${estimate:.4f}, cap ${self.max_cost:.2f}. Everything so far is kept; rerun "
                "the same command with a higher --max-cost to continue.")

    # -- messages --------------------------------------------------------------------------
    def image_url(self, sha256: str, spec: ModelSpec) -> tuple[dict[str, Any], int]:
        data = self.store.read(sha256)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max(width, height) > spec.max_image_side:
                image.thumbnail((spec.max_image_side, spec.max_image_side))
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                data, (width, height) = buffer.getvalue(), image.size
        url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        return ({"type": "image_url", "image_url": {"url": url, "detail": spec.detail}},
                image_tokens(width, height, spec.detail))

    def wire_messages(self, messages: list[ChatMessage], spec: ModelSpec
                      ) -> tuple[list[dict[str, Any]], int]:
        """Messages as the API wants them, and an input-token estimate."""
        wire, tokens = [], 0
        for message in messages:
            parts = []
            for part in message.parts:
                if isinstance(part, ImagePart):
                    url, cost = self.image_url(part.sha256, spec)
                    parts.append(url)
                    tokens += cost
                else:
                    parts.append({"type": "text", "text": part.text})
                    tokens += len(part.text) // 4 + 1
            only_text = all(p["type"] == "text" for p in parts)
            wire.append({"role": message.role,
                         "content": parts[0]["text"] if only_text and len(parts) == 1 else parts})
        return wire, tokens

    @staticmethod
    def key_messages(messages: list[ChatMessage]) -> list[Any]:
        return [{"role": m.role, "parts": [{"image": p.sha256} if isinstance(p, ImagePart)
                                           else {"text": p.text} for p in m.parts]}
                for m in messages]

    # -- the call ----------------------------------------------------------------------------
    async def call_with_retries(self, lane: ModelLane, tokens: int, make_call: Any) -> Any:
        spec = lane.spec
        for attempt in range(1, spec.max_retries + 2):
            await lane.limiter.acquire(tokens)
            try:
                async with lane.semaphore:
                    return await make_call()
            except openai.APIStatusError as error:
                retryable = error.status_code == 429 or error.status_code >= 500
                headers = dict(error.response.headers) if error.response is not None else {}
                if error.status_code == 400 and SCHEMA_REJECTED.search(str(error.message)):
                    raise
                if not retryable or attempt > spec.max_retries:
                    raise TransportFailure(f"HTTP {error.status_code}: {short(error.message)}") from None
            except (openai.APIConnectionError, openai.APITimeoutError) as error:
                headers = {}
                if attempt > spec.max_retries:
                    raise TransportFailure(f"{type(error).__name__}: {short(str(error))}") from None
            delay = retry_delay(attempt, headers)
            log.info("retry %d for %s in %.2f s", attempt, spec.model, delay)
            await asyncio.sleep(delay)
        raise TransportFailure("retries exhausted")

    def response_format(self, lane: ModelLane, model: type[BaseModel]) -> tuple[Any, str]:
        mode = MODES[lane.mode_index]
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {
                "name": model.__name__, "strict": True, "schema": to_strict_json_schema(model)}}, mode
        if mode == "json_object":
            return {"type": "json_object"}, mode
        return openai.NOT_GIVEN, mode

    async def ask(self, lane: ModelLane, request: StructuredRequest,
                  messages: list[ChatMessage]) -> CachedReply:
        spec = lane.spec
        schema = to_strict_json_schema(request.response_model)
        key = cache_key({"model": spec.model, "base_url": spec.base_url,
                         "messages": self.key_messages(messages), "schema": schema,
                         "temperature": spec.temperature, "seed": spec.seed,
                         "max_tokens": spec.max_tokens})
        if self.batching:
            return await self.once(key, request.stage, spec, lambda: self.send_in_batch(
                lane, request, messages, schema, key))
        return await self.once(key, request.stage, spec,
                               lambda: self.send(lane, request, messages, schema))

    async def once(self, key: str, stage: str, spec: ModelSpec,
                   send: Callable[[], Awaitable[CachedReply]]) -> CachedReply:
        """Answer from the cache, or join the same request in flight, or send it and cache it."""
        cached = self.cache.get(key)
        if cached is not None:
            self.usage.record(stage, spec.model, Usage(cached=1))
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

    async def send(self, lane: ModelLane, request: StructuredRequest, messages: list[ChatMessage],
                   schema: dict[str, Any]) -> CachedReply:
        spec = lane.spec
        wire, tokens = self.wire_messages(messages, spec)
        self.check_budget((tokens * spec.prices.input + spec.max_tokens * spec.prices.output) / 1e6)
        while True:
            response_format, mode = self.response_format(lane, request.response_model)
            sent = wire if mode == "json_schema" else [
                {"role": "system", "content": "Answer with one JSON object that follows this JSON "
                                              f"schema:\n{json.dumps(schema)}"}, *wire]
            try:
                completion = await self.call_with_retries(
                    lane, tokens + spec.max_tokens,
                    lambda sent=sent, response_format=response_format:
                    lane.client.chat.completions.create(
                        model=spec.model, messages=sent, response_format=response_format,
                        temperature=spec.temperature, max_tokens=spec.max_tokens,
                        seed=spec.seed if spec.seed is not None else openai.NOT_GIVEN))
                break
            except openai.BadRequestError:
                if lane.mode_index + 1 >= len(MODES):
                    raise TransportFailure("the server rejects every structured-output mode") from None
                lane.mode_index += 1
                log.warning("%s rejects %s; falling back to %s", spec.model, mode,
                            MODES[lane.mode_index])
        return self.to_reply(request, spec, completion.model_dump())

    async def send_in_batch(self, lane: ModelLane, request: StructuredRequest,
                            messages: list[ChatMessage], schema: dict[str, Any], key: str) -> CachedReply:
        """The same request through the Batch API; the result arrives when the batch completes."""
        spec = lane.spec
        wire, tokens = self.wire_messages(messages, spec)
        self.check_budget((tokens * spec.prices.input + spec.max_tokens * spec.prices.output) / 1e6)
        body: dict[str, Any] = {
            "model": spec.model, "messages": wire, "temperature": spec.temperature,
            "max_tokens": spec.max_tokens,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": request.response_model.__name__, "strict": True, "schema": schema}}}
        if spec.seed is not None:
            body["seed"] = spec.seed
        result = await self.batches[id(lane.client)].result(key, body)
        if result.body is None:
            raise TransportFailure(short(result.error or "batch request failed"))
        return self.to_reply(request, spec, result.body)

    def to_reply(self, request: StructuredRequest | TextRequest, spec: ModelSpec,
                 completion: dict[str, Any]) -> CachedReply:
        """Usage, cost and refusal detection for one chat completion (sent or batched)."""
        choice = (completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = completion.get("usage") or {}
        input_tokens = int(usage.get("prompt_tokens") or 0)
        output_tokens = int(usage.get("completion_tokens") or 0)
        self.usage.record(request.stage, spec.model, Usage(
            requests=1, input_tokens=input_tokens, output_tokens=output_tokens,
            cost_usd=(input_tokens * spec.prices.input + output_tokens * spec.prices.output) / 1e6))
        text = message.get("content")
        refusal = message.get("refusal")
        if choice.get("finish_reason") == "content_filter":
            refusal = refusal or "blocked by the server's content filter"
        elif text and "{" not in text and REFUSAL_OPENER.match(text):
            refusal = text
        return CachedReply(text=text, refusal=refusal, input_tokens=input_tokens,
                           output_tokens=output_tokens)

    async def structured(self, request: StructuredRequest) -> ModelResult:
        lane = self.lanes[request.role]

        async def attempt(messages: list[ChatMessage]) -> RawReply:
            try:
                reply = await self.ask(lane, request, messages)
            except TransportFailure as error:
                return RawReply(failure=RejectReason.api_error, detail=str(error))
            if reply.refusal:
                self.usage.refusal(request.sub_category)
            return RawReply(text=reply.text, refusal=reply.refusal)

        return await answer_with_feedback(request, attempt, lane.spec.model)

    async def complete(self, request: TextRequest) -> TextResult:
        """A free-text answer; a refusal comes back as the answer, with ``refused`` set."""
        lane = self.lanes[request.role]
        spec = lane.spec
        key = cache_key({"kind": "text", "model": spec.model, "base_url": spec.base_url,
                         "messages": self.key_messages(request.messages),
                         "temperature": spec.temperature, "seed": spec.seed,
                         "max_tokens": spec.max_tokens})
        try:
            reply = await self.once(key, request.stage, spec,
                                    lambda: self.send_text(lane, request))
        except TransportFailure as error:
            return TextResult(reason=RejectReason.api_error, detail=str(error), model=spec.model)
        if reply.refusal:
            self.usage.refusal(request.sub_category)
        cost = (reply.input_tokens * spec.prices.input
                + reply.output_tokens * spec.prices.output) / 1e6
        return TextResult(text=reply.text if reply.text else (reply.refusal or ""),
                          refused=bool(reply.refusal), model=spec.model,
                          input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                          cost_usd=cost)

    async def send_text(self, lane: ModelLane, request: TextRequest) -> CachedReply:
        spec = lane.spec
        wire, tokens = self.wire_messages(request.messages, spec)
        self.check_budget((tokens * spec.prices.input + spec.max_tokens * spec.prices.output) / 1e6)
        try:
            completion = await self.call_with_retries(
                lane, tokens + spec.max_tokens, lambda: lane.client.chat.completions.create(
                    model=spec.model, messages=wire, temperature=spec.temperature,
                    max_tokens=spec.max_tokens,
                    seed=spec.seed if spec.seed is not None else openai.NOT_GIVEN))
        except openai.BadRequestError as error:  # no response format to fall back from
            raise TransportFailure(f"HTTP 400: {short(error.message)}") from None
        return self.to_reply(request, spec, completion.model_dump())

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        lane = self.lanes["image"]
        spec = lane.spec
        key = cache_key({"model": spec.model, "base_url": spec.base_url, "prompt": request.prompt,
                         "size": spec.size, "kind": "image"})
        cached = self.cache.get(key)
        if cached is not None and cached.image:
            self.usage.record(request.stage, spec.model, Usage(cached=1))
            return ImageResult(data=cached.image, model=spec.model)
        self.check_budget(spec.prices.per_image)
        extra = {} if spec.model.startswith("gpt-image") else {"response_format": "b64_json"}
        try:
            response = await self.call_with_retries(lane, 1, lambda: lane.client.images.generate(
                model=spec.model, prompt=request.prompt, size=spec.size, n=1, **extra))
            data = base64.b64decode(response.data[0].b64_json or "")
        except TransportFailure as error:
            return ImageResult(reason=RejectReason.api_error, detail=str(error), model=spec.model)
        except (openai.BadRequestError, ValueError, IndexError) as error:
            return ImageResult(reason=RejectReason.api_error, detail=short(str(error)), model=spec.model)
        self.usage.record(request.stage, spec.model, Usage(requests=1, images=1,
                                                           cost_usd=spec.prices.per_image))
        self.cache.put(key, CachedReply(text=None, refusal=None, input_tokens=0, output_tokens=0,
                                        image=data))
        return ImageResult(data=data, model=spec.model)


def build_roles(config: BuildConfig) -> dict[str, ModelSpec]:
    """The models of a build by role: text, vision, image and ``judge:<i>``."""
    roles = {"text": config.models.text, "vision": config.models.vision,
             "image": config.models.image}
    roles.update({f"judge:{i}": spec for i, spec in enumerate(config.models.judges)})
    return roles


def short(text: str, limit: int = 300) -> str:
    """One line of a server message; keys never appear in server messages we pass on."""
    line = " ".join(str(text).split())
    line = re.sub(r"sk-[A-Za-z0-9_\-]{6,}", "sk-***", line)
    return line[:limit]
