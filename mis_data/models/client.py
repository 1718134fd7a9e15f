"""The real backend: any OpenAI-compatible server (OpenAI, vLLM, SGLang, ...) via ``AsyncOpenAI``.

This module is the HTTP side: per role a lane (its servers, RPM/TPM limiter and remembered
structured-output mode), retries of our own (the SDK's are off, so ``Retry-After`` and
``x-ratelimit-reset-*`` are honoured and counted), failover between a role's servers, and the
structured-output fallbacks: a server that rejects a strict ``json_schema`` is asked with
``json_object``, then plain text. What every request shares (cache, in-flight sharing, cost cap,
usage) is the ``Session``; how a request looks on the wire is ``wire.py``. Refusals end the item
at once. With ``--batch``, structured requests go through the Batch API (``batch.py``), cached
the same way. Free-text requests (``complete``, for the model under test of ``mis-data eval``)
take the same path with no response format.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from mis_data.core.config import BuildConfig, ModelSpec
from mis_data.core.records import DECLINED_REASONS, REFUSAL_OPENER, RejectReason
from mis_data.images.store import ImageStore
from mis_data.models.base import (
    ChatMessage,
    ImageRequest,
    ImageResult,
    ModelResult,
    ProviderUnusable,
    RawReply,
    ServersDown,
    StructuredRequest,
    TextRequest,
    TextResult,
    Usage,
    answer_with_feedback,
)
from mis_data.models.batch import BatchRunner
from mis_data.models.cache import CachedReply, cache_key
from mis_data.models.limits import RateLimiter, SharedLimits, retry_delay
from mis_data.models.servers import Server, ServerPool, display_url
from mis_data.models.session import Session
from mis_data.models.wire import (
    MODES,
    request_key,
    response_format,
    strict_schema,
    wire_messages,
    with_schema_prompt,
)

log = logging.getLogger("mis_data")
SCHEMA_REJECTED = re.compile(r"response_format|json_schema|json_object|structured", re.IGNORECASE)
# How providers say that their moderation stopped a request (OpenAI chat: ``invalid_prompt``;
# images: ``moderation_blocked``, DALL-E's ``content_policy_violation``; Azure:
# ``content_filter``), by error code or, for servers that only write a message, by its words.
BLOCK_CODES = frozenset({"moderation_blocked", "content_policy_violation", "invalid_prompt",
                         "content_filter", "safety_violation", "responsible_ai_policy_violation"})
BLOCK_WORDS = re.compile(r"content[ _-]?polic|moderation|safety system|usage polic|flagged|"
                         r"content[ _-]?filter|safety filter", re.IGNORECASE)
# A request the server will refuse the same way every time (too long, malformed): rejected,
# never retried. Statuses that mean the model or key cannot be used at all stop the build.
REJECTED_STATUSES = frozenset({400, 413, 422})
UNUSABLE_STATUSES = frozenset({401, 403, 404})


class TransportFailure(Exception):
    """Retries exhausted or a server failure: the item fails with ``api_error``, retried by a
    rerun."""


class ProviderBlocked(Exception):
    """The provider's moderation refused the request: a ``blocked`` verdict, kept in the cache."""


class RequestRejected(Exception):
    """A 4xx the same request would get again: ``request_rejected``, final."""


def provider_block(error: openai.APIStatusError) -> str | None:
    """The provider's message when ``error`` is a moderation block, else None."""
    return block_in(error.body if isinstance(error.body, dict) else {}, error.code, error.message)


def block_in(body: dict[str, Any], code: object = None, message: str = "") -> str | None:
    """The provider's message when an error body (sent directly or as a batch line) is a
    moderation block, else None."""
    nested = body.get("error")
    inner = nested if isinstance(nested, dict) else body
    codes = {str(value) for value in (code, inner.get("code"), inner.get("type")) if value}
    text = str(inner.get("message") or message)
    if codes & BLOCK_CODES or BLOCK_WORDS.search(text):
        return short(text)
    return None


class ModelLane:
    """One configured model: its servers, limits and remembered structured-output mode."""

    def __init__(self, role: str, spec: ModelSpec, servers: list[Server],
                 limiter: RateLimiter, changed: asyncio.Condition) -> None:
        self.role = role
        self.spec = spec
        # the served model its rate limits belong to: the model at every address it lists
        self.name = " ".join([spec.model, *sorted(str(e.base_url) for e in spec.servers())])
        self.pool = ServerPool(servers, spec.cooldown_seconds, changed)
        self.limiter = limiter
        self.mode_index = 0

    def stop_if_down(self) -> None:
        """``ServersDown`` once every server has been unreachable for ``all_down_seconds``."""
        down = self.pool.down_for()
        if down is not None and down >= self.spec.all_down_seconds:
            raise ServersDown(
                f"every server of the {self.role} role ({self.spec.model} at {self.pool.names()}) "
                f"refused connections or timed out for {down:.0f} s; finished work is kept: run "
                "the same command again when they are back")


class OpenAIClient:
    """Implements ``ModelClient`` against OpenAI-compatible HTTP servers."""

    name = "openai"

    def __init__(self, config: BuildConfig | None, store: ImageStore, cache_path: Path,
                 max_cost: float | None = None, batch: bool = False,
                 rate_window: float = 60.0, batch_poll_seconds: float = 10.0,
                 roles: Mapping[str, ModelSpec] | None = None,
                 shared: SharedLimits | None = None) -> None:
        """``roles`` (role name -> model) replaces a build config's roles, for callers that
        are not a build (``mis-data eval``: the model under test and its judge); ``shared``
        are a cluster's limits, asked on top of this client's own (``executor: ray``)."""
        self.config = config
        self.shared = shared
        self.batching = batch
        self.store = store
        self.session = Session(cache_path, max_cost)
        self.usage = self.session.usage
        if roles is None:
            if config is None:
                raise ValueError("OpenAIClient needs a build config or explicit roles")
            roles = build_roles(config)
        self._clients_by_server: dict[tuple[str | None, str], AsyncOpenAI] = {}
        # One budget per served model: roles (and stages, which now run at once) that name the
        # same model at the same address share its concurrency and its rate limits, as the
        # server's GPUs and a provider's per-model limits are shared.
        self._servers: dict[tuple[str | None, str, str], Server] = {}
        self._limiters: dict[tuple[str | None, ...], RateLimiter] = {}
        self._server_changed = asyncio.Condition()
        self.rate_window = rate_window
        self.lanes = {role: self.make_lane(role, spec) for role, spec in roles.items()}
        # A role's fallback models, asked in order when its model refuses or is blocked.
        self.fallbacks = {role: [self.make_lane(role, fallback) for fallback in spec.fallback]
                          for role, spec in roles.items() if spec.fallback}
        self._clients = list(self._clients_by_server.values())
        self.batches = {id(c): BatchRunner(c, cache_path.parent / "batches.json",
                                           poll_seconds=batch_poll_seconds)
                        for c in self._clients} if batch else {}

    def make_lane(self, role: str, spec: ModelSpec) -> ModelLane:
        """A model's servers (one HTTP client per server and key variable), limits and mode."""
        servers = []
        for order, endpoint in enumerate(spec.servers()):
            variable = endpoint.api_key_env or spec.api_key_env
            key = (endpoint.base_url, variable)
            if key not in self._clients_by_server:
                self._clients_by_server[key] = AsyncOpenAI(
                    api_key=spec.api_key(variable) or "missing", base_url=endpoint.base_url,
                    max_retries=0, timeout=spec.timeout)
            concurrency = endpoint.concurrency or spec.concurrency
            served = (endpoint.base_url, spec.model, variable)
            if served not in self._servers:
                self._servers[served] = Server(url=display_url(endpoint.base_url),
                                               client=self._clients_by_server[key],
                                               concurrency=concurrency, order=order)
            server = self._servers[served]
            server.concurrency = max(server.concurrency, concurrency)  # the largest declared
            servers.append(server)
        model = (spec.model, *sorted(str(e.base_url) for e in spec.servers()))
        if model not in self._limiters:
            self._limiters[model] = RateLimiter(spec.rpm, spec.tpm, self.rate_window)
        return ModelLane(role, spec, servers, self._limiters[model], self._server_changed)

    def lanes_of(self, role: str) -> list[ModelLane]:
        """The role's model, then its fallbacks."""
        return [self.lanes[role], *self.fallbacks.get(role, [])]

    def model_name(self, role: str) -> str:
        """The configured model of ``role`` (not its fallbacks)."""
        return self.lanes[role].spec.model

    async def aclose(self) -> None:
        """Stop batch polling, close every HTTP client and the session's cache."""
        for runner in self.batches.values():
            await runner.aclose()
        for client in self._clients:
            await client.close()
        self.session.close()

    def spent(self) -> float:
        """Dollars spent by the run folder so far, earlier invocations included."""
        return self.session.spent()

    # -- the call ----------------------------------------------------------------------------
    async def call_with_retries(self, lane: ModelLane, tokens: int, stage: str,
                                make_call: Callable[[AsyncOpenAI], Awaitable[Any]]) -> Any:
        """One request through the lane's servers: the least busy free one takes it; a server
        that fails rests while the retry goes to another, or waits for backoff when alone.

        Every attempt that got no usable answer is counted as a request of ``stage`` here (it
        was sent, and a server may bill it); a usable one is counted with its tokens by the
        caller. While every server of the lane is unreachable, connection failures do not use
        up the item's retries (the item is not at fault): it waits, and once the lane has been
        down for ``all_down_seconds`` the whole build stops with ``ServersDown``."""
        spec = lane.spec
        attempt = 0
        while True:
            attempt += 1
            await lane.limiter.acquire(tokens)
            if self.shared is not None:
                await self.shared.admit(lane.name, spec.rpm, spec.tpm, tokens)
            server = await lane.pool.acquire()
            if self.shared is not None:
                try:
                    await self.shared.enter(f"{spec.model} at {server.url}", server.concurrency)
                except BaseException:
                    await lane.pool.release(server)
                    raise
            started, ok, headers, failed_over = time.monotonic(), False, {}, False
            reached = usable = False  # the server answered at all; with something usable
            try:
                result = await make_call(server.client)
                ok = reached = usable = True
                return result
            except openai.APIStatusError as error:
                reached = True
                status = error.status_code
                retryable = status == 429 or status >= 500
                headers = dict(error.response.headers) if error.response is not None else {}
                blocked = provider_block(error) if status in REJECTED_STATUSES else None
                if blocked is not None:
                    ok = True  # the server works; it judged this request
                    raise ProviderBlocked(blocked) from None
                if status == 400 and SCHEMA_REJECTED.search(str(error.message)):
                    ok = True  # the server works; the fallback to the next mode is the caller's
                    raise
                if status in UNUSABLE_STATUSES:
                    raise ProviderUnusable(
                        f"{spec.model} at {server.url} answers HTTP {status}: "
                        f"{short(error.message)} (check the model name, base_url and the key "
                        f"in ${spec.api_key_env})") from None
                if status in REJECTED_STATUSES:
                    ok = True
                    raise RequestRejected(f"HTTP {status}: {short(error.message)}") from None
                if not retryable or attempt > spec.max_retries:
                    raise TransportFailure(f"HTTP {status}: {short(error.message)}") from None
                if error.status_code >= 500:
                    failed_over = lane.pool.rest(server, f"HTTP {error.status_code}")
            except (openai.APIConnectionError, openai.APITimeoutError) as error:
                lane.pool.unreachable(server, started)
                lane.stop_if_down()
                if attempt > spec.max_retries and lane.pool.down_for() is None:
                    raise TransportFailure(f"{type(error).__name__}: {short(str(error))}") from None
                failed_over = lane.pool.rest(server, type(error).__name__)
            finally:
                if reached:
                    lane.pool.answered(server)
                self.usage.server(spec.model, server.url, ok, time.monotonic() - started)
                if not usable:
                    self.usage.record(stage, spec.model, Usage(requests=1))
                if self.shared is not None:
                    await self.shared.leave(f"{spec.model} at {server.url}")
                await lane.pool.release(server)
            if failed_over and lane.pool.others_awake(server):
                log.info("retry %d for %s on another server", attempt, spec.model)
                continue
            delay = retry_delay(min(attempt, spec.max_retries + 1), headers)
            down = lane.pool.down_for()
            if down is not None:  # back in time to stop when the lane's time is up
                delay = min(delay, max(0.0, spec.all_down_seconds - down) + 0.01)
            log.info("retry %d for %s in %.2f s", attempt, spec.model, delay)
            await asyncio.sleep(delay)

    def wire(self, messages: list[ChatMessage], spec: ModelSpec) -> tuple[list[dict[str, Any]], int]:
        """The messages on the wire, after checking the cost cap for them."""
        wire, tokens = wire_messages(self.store, messages, spec)
        self.session.check_budget(self.token_cost(spec, tokens, spec.max_tokens))
        return wire, tokens

    def token_cost(self, spec: ModelSpec, input_tokens: int, output_tokens: int) -> float:
        """Dollars for a chat request's tokens: at the batch share of the price with ``--batch``
        (every chat request then goes through the Batch API), else at the list price."""
        share = spec.prices.batch if self.batching else 1.0
        return share * (input_tokens * spec.prices.input + output_tokens * spec.prices.output) / 1e6

    @staticmethod
    def sampling(spec: ModelSpec) -> dict[str, Any]:
        """The generation parameters every chat request of ``spec`` sends; no seed unless one is
        configured."""
        return {"model": spec.model, "temperature": spec.temperature,
                "max_tokens": spec.max_tokens,
                "seed": spec.seed if spec.seed is not None else openai.NOT_GIVEN}

    async def ask(self, lane: ModelLane, request: StructuredRequest,
                  messages: list[ChatMessage]) -> CachedReply:
        """The structured reply to ``messages``, from the cache, a request already in flight, or a
        new request (sent directly or through a batch)."""
        spec = lane.spec
        schema = strict_schema(request.response_model)
        key = request_key(spec, messages, schema=schema)
        if self.batching:
            return await self.session.once(key, request.stage, spec.model, lambda: self.send_in_batch(
                lane, request, messages, schema, key))
        return await self.session.once(key, request.stage, spec.model,
                                       lambda: self.send(lane, request, messages, schema))

    async def send(self, lane: ModelLane, request: StructuredRequest, messages: list[ChatMessage],
                   schema: dict[str, Any]) -> CachedReply:
        """Send a structured request, stepping down the structured-output modes while the server
        rejects them; the mode that works is remembered on the lane."""
        spec = lane.spec
        wire, tokens = self.wire(messages, spec)
        while True:
            mode = MODES[lane.mode_index]
            sent, wanted = with_schema_prompt(wire, mode, schema), response_format(
                mode, request.response_model)

            def create(client: AsyncOpenAI, sent: list[dict[str, Any]] = sent,
                       wanted: Any = wanted) -> Awaitable[Any]:
                return client.chat.completions.create(
                    messages=cast("list[ChatCompletionMessageParam]", sent),  # wire dicts of this shape
                    response_format=wanted, **self.sampling(spec))

            try:
                completion = await self.call_with_retries(
                    lane, tokens + spec.max_tokens, request.stage, create)
                break
            except ProviderBlocked as blocked:
                return self.blocked_reply(request, spec, str(blocked))
            except openai.BadRequestError:
                if lane.mode_index + 1 >= len(MODES):
                    raise TransportFailure("the server rejects every structured-output mode") from None
                lane.mode_index += 1
                log.warning("%s rejects %s; falling back to %s", spec.model, mode,
                            MODES[lane.mode_index])
        return self.to_reply(request, spec, completion.model_dump())

    def blocked_reply(self, request: StructuredRequest | TextRequest | ImageRequest,
                      spec: ModelSpec, message: str) -> CachedReply:
        """The provider's block, counted (the request itself is counted where it was sent)
        and kept in the cache like an answer."""
        self.count(request, spec, "blocked")
        return CachedReply(text=None, refusal=None, input_tokens=0, output_tokens=0,
                           blocked=message)

    def count(self, request: StructuredRequest | TextRequest | ImageRequest, spec: ModelSpec,
              what: str) -> None:
        """One request's outcome, for the refusal and block rates of ``stats``."""
        task = getattr(request, "task", "") or request.stage
        self.usage.outcome(request.stage, task, spec.model,
                           getattr(request, "sub_category", None), what)

    async def send_in_batch(self, lane: ModelLane, request: StructuredRequest,
                            messages: list[ChatMessage], schema: dict[str, Any], key: str) -> CachedReply:
        """The same request through the Batch API; the result arrives when the batch completes."""
        return await self.in_batch(lane, request, messages, key, response_format(
            "json_schema", request.response_model))

    async def in_batch(self, lane: ModelLane, request: StructuredRequest | TextRequest,
                       messages: list[ChatMessage], key: str, wanted: Any = None) -> CachedReply:
        """A chat request (structured when ``wanted`` names a response format, free text
        otherwise) through the Batch API, billed at the batch price because it was sent there."""
        spec = lane.spec
        wire, _ = self.wire(messages, spec)
        body: dict[str, Any] = {
            "model": spec.model, "messages": wire, "temperature": spec.temperature,
            "max_tokens": spec.max_tokens}
        if wanted is not None:
            body["response_format"] = wanted
        if spec.seed is not None:
            body["seed"] = spec.seed
        client = lane.pool.servers[0].client  # the Batch API is a hosted service: one endpoint
        result = await self.batches[id(client)].result(key, body)
        retries = 0
        while result.body is None and result.status not in REJECTED_STATUSES \
                and retries < spec.max_retries:
            # Expired before its turn, or failed by the server (5xx, 429): what a direct request
            # would retry goes into a later batch, in this build (the provider bills none of it).
            retries += 1
            log.info("resubmitting %s in a new batch (%s)", request.item_id,
                     short(result.error or "no result"))
            result = await self.batches[id(client)].result(key, body)
        if result.body is None:
            # A line the provider answered with an error is what a direct request would have got:
            # a block is a verdict (cached, never asked again), another 4xx is final.
            if result.status in REJECTED_STATUSES:
                blocked = block_in(result.error_body or {}, message=result.error or "")
                if blocked is not None:
                    return self.blocked_reply(request, spec, blocked)
                raise RequestRejected(f"HTTP {result.status}: {short(result.error or '')}")
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
            cost_usd=self.token_cost(spec, input_tokens, output_tokens)))
        text = message.get("content")
        refusal = message.get("refusal")
        if choice.get("finish_reason") == "content_filter":
            refusal = refusal or "blocked by the server's content filter"
        elif text and "{" not in text and REFUSAL_OPENER.match(text):
            refusal = text
        self.count(request, spec, "refused" if refusal else "answered")
        return CachedReply(text=text, refusal=refusal, input_tokens=input_tokens,
                           output_tokens=output_tokens)

    async def structured(self, request: StructuredRequest) -> ModelResult:
        """The role's model answers; when it refuses (after the reframing) or the provider
        blocks the request, each fallback model is asked in turn."""
        declined: list[str] = []
        lanes = self.lanes_of(request.role)
        for lane in lanes:
            result = await answer_with_feedback(request, self.attempt_on(lane, request),
                                                lane.spec.model)
            if result.reason in DECLINED_REASONS:
                declined.append(lane.spec.model)
                if lane is not lanes[-1]:
                    log.info("%s declined %s (%s); asking %s", lane.spec.model, request.item_id,
                             result.reason.value, lanes[lanes.index(lane) + 1].spec.model)
                    continue
            result.declined_by = declined
            return result
        raise AssertionError("unreachable: the last lane returns")

    def attempt_on(self, lane: ModelLane, request: StructuredRequest
                   ) -> Callable[[list[ChatMessage]], Awaitable[RawReply]]:
        """The ``Attempt`` for ``answer_with_feedback`` on ``lane``: transport failures and blocks
        become a ``RawReply.failure``, so the item is rejected instead of the build failing."""
        async def attempt(messages: list[ChatMessage]) -> RawReply:
            try:
                reply = await self.ask(lane, request, messages)
            except TransportFailure as error:
                self.count(request, lane.spec, "failed")
                return RawReply(failure=RejectReason.api_error, detail=str(error))
            except RequestRejected as error:
                self.count(request, lane.spec, "failed")
                return RawReply(failure=RejectReason.request_rejected, detail=str(error))
            if reply.blocked:
                return RawReply(failure=RejectReason.blocked,
                                detail=f"{lane.spec.model}: {reply.blocked}")
            if reply.refusal:
                self.usage.refusal(request.sub_category)
            return RawReply(text=reply.text, refusal=reply.refusal)

        return attempt

    async def complete(self, request: TextRequest) -> TextResult:
        """A free-text answer; a refusal comes back as the answer, with ``refused`` set."""
        lane = self.lanes[request.role]
        spec = lane.spec
        key = request_key(spec, request.messages, kind="text")
        try:
            reply = await self.session.once(key, request.stage, spec.model, lambda: (
                self.in_batch(lane, request, request.messages, key) if self.batching
                else self.send_text(lane, request)))
        except TransportFailure as error:
            return TextResult(reason=RejectReason.api_error, detail=str(error), model=spec.model)
        except RequestRejected as error:
            return TextResult(reason=RejectReason.request_rejected, detail=str(error),
                              model=spec.model)
        if reply.blocked:
            return TextResult(reason=RejectReason.blocked, detail=reply.blocked, model=spec.model)
        if reply.refusal:
            self.usage.refusal(request.sub_category)
        cost = self.token_cost(spec, reply.input_tokens, reply.output_tokens)
        return TextResult(text=reply.text if reply.text else (reply.refusal or ""),
                          refused=bool(reply.refusal), model=spec.model,
                          input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                          cost_usd=cost)

    async def send_text(self, lane: ModelLane, request: TextRequest) -> CachedReply:
        """Send a free-text request; a 400 cannot fall back to another mode, so it rejects the
        request."""
        spec = lane.spec
        wire, tokens = self.wire(request.messages, spec)
        try:
            completion = await self.call_with_retries(
                lane, tokens + spec.max_tokens, request.stage,
                lambda client: client.chat.completions.create(
                    messages=cast("list[ChatCompletionMessageParam]", wire),  # wire dicts of this shape
                    **self.sampling(spec)))
        except ProviderBlocked as blocked:
            return self.blocked_reply(request, spec, str(blocked))
        except openai.BadRequestError as error:  # no response format to fall back from
            raise RequestRejected(f"HTTP 400: {short(error.message)}") from None
        return self.to_reply(request, spec, completion.model_dump())

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """The image model draws the prompt; when the provider blocks it, each fallback image
        model is asked in turn. A block is kept in the cache, so a rerun never asks again."""
        declined: list[str] = []
        lanes = self.lanes_of("image")
        for lane in lanes:
            result = await self.draw_on(lane, request)
            if result.reason != RejectReason.blocked or lane is lanes[-1]:
                result.declined_by = [*declined, *([lane.spec.model] if result.reason else [])]
                return result
            declined.append(lane.spec.model)
        raise AssertionError("unreachable: the last lane returns")

    async def draw_on(self, lane: ModelLane, request: ImageRequest) -> ImageResult:
        """One image model's attempt: from the cache (an image or a kept block) or drawn now and
        cached. Failures are an ``ImageResult`` reason."""
        spec = lane.spec
        key = cache_key({"model": spec.model, "prompt": request.prompt, "size": spec.size,
                         "kind": "image"})
        cached = self.session.cache.get(key)
        if cached is not None and (cached.image or cached.blocked):
            self.usage.record(request.stage, spec.model, Usage(cached=1))
            if cached.blocked:
                return ImageResult(reason=RejectReason.blocked, detail=cached.blocked,
                                   model=spec.model)
            return ImageResult(data=cached.image, model=spec.model)
        self.session.check_budget(spec.prices.per_image)
        # Any values: spread into an overloaded SDK call, whose keywords each have their own type
        extra: dict[str, Any] = ({} if spec.model.startswith("gpt-image")
                                 else {"response_format": "b64_json"})
        try:
            response = await self.call_with_retries(
                lane, 1, request.stage, lambda client: client.images.generate(
                    model=spec.model, prompt=request.prompt, size=spec.size, n=1, **extra))
        except ProviderBlocked as blocked:
            self.session.cache.put(key, self.blocked_reply(request, spec, str(blocked)))
            return ImageResult(reason=RejectReason.blocked, detail=str(blocked), model=spec.model)
        except TransportFailure as error:
            self.count(request, spec, "failed")
            return ImageResult(reason=RejectReason.api_error, detail=str(error), model=spec.model)
        except RequestRejected as error:
            self.count(request, spec, "failed")
            return ImageResult(reason=RejectReason.request_rejected, detail=str(error),
                               model=spec.model)
        except (openai.BadRequestError, ValueError, IndexError) as error:
            self.count(request, spec, "failed")
            return ImageResult(reason=RejectReason.api_error, detail=short(str(error)), model=spec.model)
        try:
            data = base64.b64decode(response.data[0].b64_json or "")
        except (ValueError, IndexError) as error:  # answered, so sent and counted, but unusable
            self.usage.record(request.stage, spec.model, Usage(requests=1))
            return ImageResult(reason=RejectReason.api_error, detail=short(str(error)), model=spec.model)
        self.usage.record(request.stage, spec.model, Usage(requests=1, images=1,
                                                           cost_usd=spec.prices.per_image))
        self.count(request, spec, "answered")
        self.session.cache.put(key, CachedReply(text=None, refusal=None, input_tokens=0,
                                                output_tokens=0, image=data))
        return ImageResult(data=data, model=spec.model)


def build_roles(config: BuildConfig) -> dict[str, ModelSpec]:
    """The models of a build by role: text, vision, image, ``judge:<i>`` and, with ``rewrite:``,
    the responder (the vision model when ``models.responder`` is not set)."""
    roles = {"text": config.models.text, "vision": config.models.vision,
             "image": config.models.image}
    if config.rewrite is not None:
        roles["responder"] = config.models.responder or config.models.vision
    roles.update({f"judge:{i}": spec for i, spec in enumerate(config.models.judges)})
    return roles


def short(text: str, limit: int = 300) -> str:
    """One line of a server message; keys never appear in server messages we pass on."""
    line = " ".join(str(text).split())
    line = re.sub(r"sk-[A-Za-z0-9_\-]{6,}", "sk-***", line)
    return line[:limit]
